"""The training jobs' configs: TRL's ``DPOConfig`` / ``SFTConfig`` plus the data, LoRA, Ray Train and export fields.

Every ``DPOConfig`` / ``SFTConfig`` / ``TrainingArguments`` field is accepted in the recipe and on the CLI
(``--beta 0.5``). :class:`TrainJobOptions` holds what both jobs add to TRL (one worker, launch and export
path, :mod:`sphere_ray.training.job`); each job adds its data field and its defaults:

* :class:`DPOJobConfig` (SPHERE, arXiv 2503.04813): beta 0.8, lr 1e-6, warmup ratio 0.2
  (``warmup_steps: 0.2``), 10 epochs, LoRA r 64 / alpha 128 / dropout 0.05, best checkpoint by eval loss.
* :class:`SFTJobConfig` (Dual-Phase SFT, arXiv 2601.05616, whose SFT hyperparameters are not public):
  loss on the completion only (its end-of-turn token included), packed sequences, lr 1e-4, 3 epochs,
  the same LoRA.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from trl import DPOConfig, SFTConfig

from sphere_ray.config import option

__all__ = ["DEEPSPEED_DIR", "DPOJobConfig", "SFTJobConfig", "TrainJobOptions"]

DEEPSPEED_DIR = Path(__file__).resolve().parent / "deepspeed"
"""The committed DeepSpeed configs (``zero2.json``, ``zero3.json``, ``zero2_offload.json``)."""


@dataclass
class TrainJobOptions:
    """The fields every training job adds to its TRL config: base model, split, LoRA, Ray Train, export.

    A job is ``class XJobConfig(TrainJobOptions, TRLConfig)`` with ``TRL_CONFIG`` and ``METHOD`` set.
    """

    TRL_CONFIG: ClassVar[type]
    METHOD: ClassVar[str]

    # --- data and model
    model: str = option("smollm2-135m-instruct", "base model: embedded name, folder or hub id (the policy)")
    eval_fraction: float = option(0.1, "share of problems (not rows) held out for eval; 0 disables eval")
    split_seed: int = option(0, "seed of the problem-level train/eval split")
    # --- LoRA (PEFT)
    lora_r: int = option(64, "LoRA rank (SPHERE: 64)")
    lora_alpha: int = option(128, "LoRA alpha (SPHERE: 128)")
    lora_dropout: float = option(0.05, "LoRA dropout (SPHERE: 0.05)")
    lora_target_modules: list[str] | str = field(
        default="all-linear", metadata={"help": "modules LoRA adapts: a list or 'all-linear'", "hashed": True}
    )
    # --- Ray Train
    num_workers: int = option(1, "Ray Train workers (one per GPU on a GPU cluster)")
    use_gpu: bool = option(False, "one GPU per worker")
    cpus_per_worker: float = option(1.0, "CPUs reserved per worker")
    threads_per_worker: int | None = option(
        None, "torch (OpenMP) threads of a worker (null: Ray's choice, the whole CPUs in cpus_per_worker)", hashed=False
    )
    zero_stage: int = option(0, "DeepSpeed ZeRO stage: 0 (off, plain DDP), 2 or 3; uses deepspeed_config")
    deepspeed_config: str | None = option(
        None, "DeepSpeed JSON (null: sphere_ray/training/deepspeed/zero{stage}.json); 'auto' values filled by HF"
    )
    storage_path: str | None = option(
        None, "Ray Train storage (checkpoints) folder or URI; null: <output_dir>/ray. Shared storage on multi-node"
    )
    max_failures: int = option(2, "worker-group restarts from the last checkpoint before the job fails")
    checkpoints_to_keep: int = option(2, "Ray Train checkpoints kept (the best by eval loss and the latest)")
    # --- outputs
    merge: bool = option(True, "also write <output_dir>/merged: base + adapter, servable by vLLM / the Serve apps")
    ray_address: str | None = option(None, "Ray cluster address (null: the job's cluster or a new local one)")
    # --- job defaults over TRL's
    ddp_find_unused_parameters: bool | None = option(
        False, "DDP's unused-parameter search (a graph walk per step); off: every LoRA parameter gets a gradient"
    )
    eval_strategy: str = option("epoch", "when to evaluate: no | steps | epoch (checkpoints follow it)")
    save_strategy: str = option("epoch", "when to checkpoint: must match eval_strategy when eval is on")
    report_to: str | list[str] | None = field(
        default="none", metadata={"help": "none | tensorboard | wandb (or a list)", "hashed": False}
    )

    def __post_init__(self) -> None:
        """Check the job's fields, then TRL's with the hardware checks left to the workers.

        TRL's own ``__post_init__`` is not run on the driver: it validates precision and DeepSpeed
        against the driver's hardware (a CPU head node of a GPU cluster would fail on ``bf16``).
        The workers build the real arguments with :meth:`training_args`.
        """
        self._check_job_fields()
        if getattr(self, "deepspeed", None) is not None:
            raise ValueError("deepspeed: set zero_stage (and optionally deepspeed_config); the workers apply it")
        try:
            self.training_args(self.output_dir, hardware_checks=False)
        except ValueError as e:
            raise ValueError(f"invalid {self.METHOD} training argument: {e}") from e

    def training_args(self, output_dir: str, hardware_checks: bool = True, train_rows: int = 0) -> Any:
        """TRL's config (``TRL_CONFIG``) for a worker: this config's TRL fields, DeepSpeed and precision applied.

        On CPU (``use_gpu: false``) an unset ``bf16`` becomes false (fp32: bf16 is ~3x slower on CPU).
        With ``eval_fraction: 0`` there is no eval set, so evaluation is off. ``train_rows`` (training
        rows) lets a job size what depends on it (:meth:`job_overrides`).
        """
        values = {f.name: getattr(self, f.name) for f in fields(self.TRL_CONFIG) if f.init}
        values.update(output_dir=output_dir, deepspeed=self.deepspeed_file() if hardware_checks else None)
        values.update(self.job_overrides(train_rows))
        values.update(disable_tqdm=True)  # the workers log a plain progress line instead (worker.progress_callback)
        if self.eval_fraction == 0:
            values.update(eval_strategy="no")
        if not self.use_gpu:
            values.update(use_cpu=True, bf16=bool(self.bf16), fp16=False)
        if not hardware_checks:
            values.update(use_cpu=True, bf16=False, fp16=False)
        return self.TRL_CONFIG(**values)

    def job_overrides(self, train_rows: int) -> dict[str, Any]:
        """TRL fields this job derives from its own (none by default)."""
        return {}

    def trainer(self) -> tuple[type, dict[str, Any]]:
        """``(TRL trainer class, extra constructor arguments)`` the workers build."""
        raise NotImplementedError

    def passes_over_data(self, train_rows: int) -> float:
        """How many times training sees each of ``train_rows`` rows (epochs; from ``max_steps`` if set)."""
        if train_rows <= 0:
            return 0.0
        if self.max_steps <= 0:
            return float(self.num_train_epochs)
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps * self.num_workers
        return self.max_steps * batch / train_rows

    def deepspeed_file(self) -> str | None:
        """The DeepSpeed JSON the workers use (``None``: ZeRO off)."""
        if not self.zero_stage:
            return None
        return self.deepspeed_config or str(DEEPSPEED_DIR / f"zero{self.zero_stage}.json")

    def _check_job_fields(self) -> None:
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        for name in ("lora_r", "lora_alpha", "num_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.zero_stage not in (0, 2, 3):
            raise ValueError(f"zero_stage must be 0, 2 or 3, got {self.zero_stage}")
        if self.deepspeed_config and not self.zero_stage:
            raise ValueError("deepspeed_config is set but zero_stage is 0: set zero_stage to 2 or 3")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise ValueError(f"threads_per_worker must be >= 1 or null, got {self.threads_per_worker}")
        if self.cpus_per_worker <= 0 or self.max_failures < 0 or self.checkpoints_to_keep < 1:
            raise ValueError("cpus_per_worker must be > 0, max_failures >= 0 and checkpoints_to_keep >= 1")
        if not self.output_dir:
            raise ValueError("output_dir must be set")
        if self.eval_fraction > 0 and str(self.eval_strategy) != str(self.save_strategy):
            raise ValueError(
                f"save_strategy ({self.save_strategy}) must equal eval_strategy ({self.eval_strategy}) so that every "
                "checkpoint has an eval loss to rank it by"
            )


@dataclass
class DPOJobConfig(TrainJobOptions, DPOConfig):
    """SPHERE DPO: TRL DPOTrainer + PEFT LoRA on Ray Train workers, optionally under DeepSpeed ZeRO."""

    TRL_CONFIG: ClassVar[type] = DPOConfig
    METHOD: ClassVar[str] = "DPO"

    pairs: str = option("outputs/generate/pairs", "pairs Parquet file or folder (local or pyarrow URI, s3://...)")
    run_name: str = option("dpo", "Ray Train run name; a rerun with the same storage and name resumes it")
    # --- paper defaults over TRL's
    beta: float = option(0.8, "DPO beta (paper: 0.8)")
    learning_rate: float = option(1e-6, "peak learning rate (paper: 1e-6)")
    warmup_steps: float = option(0.2, "warmup: steps, or a ratio of total steps if < 1 (paper: ratio 0.2)")
    num_train_epochs: float = option(10.0, "epochs (paper: 10)")
    disable_dropout: bool = option(False, "zero all dropout (false keeps the LoRA dropout the paper uses)")
    precompute_ref_log_probs: bool | None = option(
        None,
        "reference log-probs in one pass before training, reused every epoch (no reference forward per step); "
        "null: on when training sees a pair more than once (more than one epoch) on a single worker (TRL keeps the "
        "reference columns of in-memory data in a per-process temporary file, so workers would not share them)",
    )
    train_sampling_strategy: str = option(
        "group_by_length", "batch order: group_by_length (similar lengths per batch: less padding) | random | ..."
    )
    output_dir: str | None = option("outputs/dpo", "where the adapter, merged model and metrics go")

    def job_overrides(self, train_rows: int) -> dict[str, Any]:
        """An unset ``precompute_ref_log_probs``: on for a lone worker that sees its pairs more than once."""
        if self.precompute_ref_log_probs is not None:
            return {}
        return {"precompute_ref_log_probs": self.passes_over_data(train_rows) > 1 and self.num_workers == 1}

    def trainer(self) -> tuple[type, dict[str, Any]]:
        """The length-grouped DPOTrainer; the reference is the base with the adapter off (``ref_model=None``)."""
        from sphere_ray.training.worker import dpo_trainer_class

        return dpo_trainer_class(), {"ref_model": None}


@dataclass
class SFTJobConfig(TrainJobOptions, SFTConfig):
    """Dual-Phase SFT: TRL SFTTrainer + PEFT LoRA on the same Ray Train workers, optionally under DeepSpeed ZeRO."""

    TRL_CONFIG: ClassVar[type] = SFTConfig
    METHOD: ClassVar[str] = "SFT"

    data: str = option(
        "outputs/sft_data/sft",
        "SFT Parquet file or folder: prompt/completion (the SFT data job's sft/) or messages (sft_multiturn/)",
    )
    run_name: str = option("sft", "Ray Train run name; a rerun with the same storage and name resumes it")
    learning_rate: float = option(1e-4, "peak learning rate (LoRA SFT; the paper does not publish its own)")
    warmup_steps: float = option(0.1, "warmup: steps, or a ratio of total steps if < 1")
    num_train_epochs: float = option(3.0, "epochs")
    max_length: int | None = option(
        4096, "tokens per sample: longer samples are dropped and counted, never cut (a cut chain loses its answer "
        "and its end-of-turn token); with packing, the tokens per packed row",
    )  # fmt: skip
    packing: bool = option(True, "pack samples into rows of max_length tokens (bfd: no sample is split)")
    completion_only_loss: bool | None = option(
        None, "loss on the completion only, its end-of-turn token included (null: on for prompt/completion data)"
    )
    assistant_only_loss: bool = option(False, "messages data: loss on the assistant turns only (TRL's chat masks)")
    output_dir: str | None = option("outputs/sft", "where the adapter, merged model and metrics go")

    def trainer(self) -> tuple[type, dict[str, Any]]:
        """TRL's SFTTrainer, nothing trained after the end-of-turn token."""
        from sphere_ray.training.worker import sft_trainer_class

        return sft_trainer_class(), {}

    def _check_job_fields(self) -> None:
        super()._check_job_fields()
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length must be >= 1 or null, got {self.max_length}")
        if self.packing and self.max_length is None:
            raise ValueError("max_length must be set when packing is on (it is the tokens per packed row)")
        if self.packing and self.packing_strategy == "wrapped":
            raise ValueError("packing_strategy 'wrapped' splits samples across rows; use bfd (the default)")
