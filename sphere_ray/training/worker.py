"""What each Ray Train worker runs: the job's TRL trainer (DPO or SFT) with a PEFT LoRA adapter (optionally DeepSpeed).

The job's config names its trainer (:meth:`~sphere_ray.training.config.TrainJobOptions.trainer`); the
rest is one path: process group, DeepSpeed, model and tokenizer, LoRA, checkpoints, resume. For DPO the
reference model is the base model with the adapter disabled (TRL does this when it is given a
``peft_config`` and no ``ref_model``): no second copy of the weights. Checkpoints go to
Ray Train through ``RayTrainReportCallback`` (scored by ``eval_loss``); a restarted worker group,
or a rerun with the same storage and run name, resumes from the latest one.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "build_trainer", "dpo_trainer_class", "peak_memory_mb", "progress_callback", "sft_trainer_class",
    "train_loop_per_worker",
]  # fmt: skip

log = logging.getLogger(__name__)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point.

    Args:
        config: ``cfg`` (a :class:`~sphere_ray.training.config.TrainJobOptions` job config), ``train`` and
            ``eval`` (object refs of pyarrow tables in the trainer's TRL format; ``eval`` may be None), and
            optionally ``progress`` (a :class:`~sphere_ray.generation.progress.LineBoard` actor for the
            progress lines).
    """
    import ray
    import ray.train

    cfg = config["cfg"]
    train, held_out = ray.get(config["train"]), (ray.get(config["eval"]) if config["eval"] is not None else None)
    local_dir = tempfile.mkdtemp(prefix=f"sphere-{cfg.run_name}-")
    try:
        resume, step = _restore(ray.train.get_checkpoint(), local_dir)
        trainer = build_trainer(
            cfg, train, held_out, local_dir, resumed_from_step=step, progress=config.get("progress")
        )
        trainer.train(resume_from_checkpoint=resume)
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)


def build_trainer(
    cfg: Any, train: Any, held_out: Any, output_dir: str, resumed_from_step: int = 0, progress: Any = None
) -> Any:
    """The job's TRL trainer over the tables, LoRA from ``cfg``, reporting to Ray Train.

    ``progress``: where the progress lines go (:func:`progress_callback`).
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sphere_ray.models.embedded import resolve_model

    if cfg.num_workers == 1 and not cfg.zero_stage:
        _leave_process_group()
    args = cfg.training_args(output_dir, train_rows=len(train))
    log.info(
        "worker: torch threads %d, OMP_NUM_THREADS=%s, distributed=%s world=%s",
        torch.get_num_threads(),
        os.environ.get("OMP_NUM_THREADS"),
        torch.distributed.is_initialized(),
        os.environ.get("WORLD_SIZE"),
    )
    if cfg.zero_stage:
        _init_deepspeed_comm(cfg.use_gpu)
    path = resolve_model(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM",
    )  # fmt: skip
    callback = _report_callback(RayTrainReportCallback, resumed_from_step)  # its clock includes data preparation
    trainer_class, extra = cfg.trainer()
    trainer = trainer_class(
        model=model, args=args, processing_class=tokenizer, peft_config=lora, **extra,
        train_dataset=Dataset(train), eval_dataset=Dataset(held_out) if held_out is not None else None,
        callbacks=[callback, progress_callback(cfg.METHOD, progress)],
    )  # fmt: skip
    return prepare_trainer(trainer)


@functools.cache
def dpo_trainer_class() -> type:
    """TRL's ``DPOTrainer`` that uses the pairs' length column.

    * ``group_by_length`` batching: TRL keeps only its token columns, so HF's length-grouped sampler
      would find no lengths; TRL's collator ignores the extra column.
    * The reference pass (``precompute_ref_log_probs``) runs over the pairs sorted by length, so its
      batches carry little padding (training order is the sampler's, not the dataset's).

    Built once per process (TRL is imported on first use).
    """
    from trl import DPOTrainer

    class LengthGroupedDPOTrainer(DPOTrainer):
        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if self.args.length_column_name not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, self.args.length_column_name]

        def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
            if self.args.length_column_name in dataset.column_names:
                dataset = dataset.sort(self.args.length_column_name).flatten_indices()
            return super()._precompute_ref_logps(dataset, name, batch_size)

    return LengthGroupedDPOTrainer


@functools.cache
def sft_trainer_class() -> type:
    """TRL's ``SFTTrainer`` that trains nothing after a sample's last end-of-turn token.

    TRL's completion mask starts where the completion does and runs to the end of the chat template's
    rendering, so it also covers what the template writes after the end-of-turn token (ChatML's
    ``<|im_end|>\n``: the newline), which the model never generates (generation stops at the token).
    Here the labels after the last end-of-turn (the tokenizer's EOS) token are masked before packing:
    the loss covers the completion and its end-of-turn token only.
    """
    from trl import SFTTrainer
    from trl.data_utils import pack_dataset

    class CompletionSFTTrainer(SFTTrainer):
        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, packing: bool, *rest: Any) -> Any:
            dataset = super()._prepare_dataset(dataset, processing_class, args, False, *rest)
            eos = getattr(processing_class, "tokenizer", processing_class).eos_token_id
            if eos is not None and "labels" in dataset.column_names:
                dataset = dataset.map(_mask_after_end_of_turn, fn_kwargs={"eos": eos}, num_proc=args.dataset_num_proc)
            if packing:
                dataset = pack_dataset(dataset.select_columns(["input_ids", "labels"]), args.max_length,
                                       args.packing_strategy, {"num_proc": args.dataset_num_proc})  # fmt: skip
            return dataset

    return CompletionSFTTrainer


def _mask_after_end_of_turn(example: dict[str, Any], eos: int) -> dict[str, Any]:
    """``labels`` with ``-100`` after the last trained end-of-turn token (unchanged when none is trained)."""
    labels = list(example["labels"])
    last = max((i for i, token in enumerate(labels) if token == eos), default=None)
    if last is not None:
        labels[last + 1 :] = [-100] * (len(labels) - last - 1)
    return {"labels": labels}


def _leave_process_group() -> None:
    """Train a lone worker as a plain process: no DDP wrapper, no gradient all-reduce per step.

    Ray Train sets up a process group and ``LOCAL_RANK`` even for one worker; accelerate then treats
    the process as distributed (``MULTI_CPU``/``MULTI_GPU``) and wraps the model in DDP at world size 1.
    """
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK"):
        os.environ.pop(name, None)


def _init_deepspeed_comm(use_gpu: bool) -> None:
    """Attach DeepSpeed's comm layer to the process group Ray Train created.

    ZeRO-3 partitions the weights while ``from_pretrained`` loads them, before the trainer would
    initialise DeepSpeed: without this DeepSpeed sees a world of size 1 there.
    """
    import deepspeed

    deepspeed.init_distributed(dist_backend="nccl" if use_gpu else "gloo", auto_mpi_discovery=False)


def _report_callback(base: type, resumed_from_step: int) -> Any:
    """Ray's report callback; its metrics also carry the resume step, train seconds and peak memory."""
    import time

    from accelerate import PartialState

    class ReportCallback(base):
        def __init__(self) -> None:
            super().__init__()
            self.start = (
                time.monotonic()
            )  # built before the trainer: includes tokenizing, packing, DPO's reference pass

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            extra = {"resumed_from_step": resumed_from_step, "train_seconds": time.monotonic() - self.start,
                     "distributed_type": str(PartialState().distributed_type.value)}  # fmt: skip
            state.log_history.append({**extra, **peak_memory_mb(), "step": state.global_step})
            try:
                super().on_save(args, state, control, **kwargs)
            finally:
                state.log_history.pop()

    return ReportCallback()


def progress_callback(method: str, board: Any = None) -> Any:
    """A transformers callback that writes one plain progress line per logging step on the main process.

    ``DPO progress step 6/12 (epoch 1.00), loss 0.6931, eval_loss 0.6902, 41s elapsed, ETA 41s``; the
    trainer's tqdm bar is off (``disable_tqdm``), so logs read the same in a terminal and in CI.

    Args:
        method: the line's first word.
        board: a :class:`~sphere_ray.generation.progress.LineBoard` actor handle: the lines are posted there
            (the job's driver logs them, :class:`~sphere_ray.generation.progress.LineRelay`); None: logged
            here, on the ``sphere_ray.training.progress`` logger.
    """
    import time

    from transformers import TrainerCallback

    from sphere_ray.generation.progress import clock

    shown = ("loss", "eval_loss", "train_loss", "rewards/accuracies", "rewards/margins", "learning_rate")
    line_log = logging.getLogger("sphere_ray.training.progress")
    line_log.setLevel(logging.INFO)
    if board is None and not line_log.handlers:  # a Ray Train worker's root logger has no handler: to stderr
        line_log.addHandler(logging.StreamHandler())
        line_log.propagate = False

    class LineProgress(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.start, self.first_step = time.monotonic(), state.global_step

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            elapsed, done = time.monotonic() - self.start, state.global_step - self.first_step
            left = state.max_steps - state.global_step
            eta = "done" if left <= 0 else f"ETA {clock(elapsed / done * left)}" if done else "ETA ?"
            values = ", ".join(f"{k} {logs[k]:.4g}" for k in shown if isinstance(logs.get(k), int | float))
            line = (f"{method} progress step {state.global_step}/{state.max_steps} (epoch {state.epoch or 0.0:.2f}), "
                    f"{values or '-'}, {clock(elapsed)} elapsed, {eta}")  # fmt: skip
            if board is None:
                line_log.info("%s", line)
                return
            try:
                board.add.remote(line)
            except Exception as e:  # best effort: progress never fails training
                log.debug("progress line not posted: %s", e)

    return LineProgress()


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process and, on GPU, peak allocated GPU memory (MiB)."""
    import resource

    import torch

    peak = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        peak["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def _restore(checkpoint: Any, local_dir: str) -> tuple[str | None, int]:
    """Copy Ray Train's latest checkpoint to ``local_dir``: ``(HF checkpoint path or None, its step)``."""
    if checkpoint is None:
        return None, 0
    target = Path(local_dir) / "resume"
    with checkpoint.as_directory() as d:
        source = Path(d) / "checkpoint"
        if not (source / "trainer_state.json").exists():
            log.warning("checkpoint %s has no trainer state; starting over", d)
            return None, 0
        shutil.copytree(source, target)
    step = json.loads((target / "trainer_state.json").read_text())["global_step"]
    log.info("resuming from %s (step %d)", checkpoint.path, step)
    return str(target), step
