"""The training jobs: Parquet -> Ray Train ``TorchTrainer`` (TRL DPO or SFT + LoRA) -> adapter, merged model.

* :func:`run_dpo_job`: SPHERE's preference pairs -> DPO.
* :func:`run_sft_job`: Dual-Phase SFT samples -> SFT (loss on the completion, packed sequences).

Both are :func:`run_train_job`: read, clean and split the rows (:mod:`sphere_ray.training.data`,
:mod:`sphere_ray.training.samples`), put them in the object store, run the workers
(:mod:`sphere_ray.training.worker`), then export from the best Ray Train checkpoint (lowest
``eval_loss``; the latest when eval is off):

``<output_dir>/adapter/``   the LoRA adapter (PEFT format) and tokenizer
``<output_dir>/merged/``    base + adapter, a plain model folder vLLM and the Serve apps load (``merge: true``)
``<output_dir>/metrics.json``  TRL's log history: loss, eval_loss (DPO: rewards/*; SFT: mean_token_accuracy) per step
``<output_dir>/summary.json``  data counts, best checkpoint, timings, lineage
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sphere_ray.config import config_hash
from sphere_ray.files import write_json
from sphere_ray.generation.lineage import git_sha, package_versions
from sphere_ray.training.config import DPOJobConfig, SFTJobConfig, TrainJobOptions
from sphere_ray.training.data import load_pair_splits
from sphere_ray.training.export import export_adapter, merge_adapter

__all__ = ["WORKER_ENV", "run_dpo_job", "run_sft_job", "run_train_job", "trainer_log_history", "worker_env"]

log = logging.getLogger(__name__)

WORKER_ENV = {"MALLOC_ARENA_MAX": "1"}
"""Environment of the Ray Train workers. Ray Train runs the training loop in a worker thread, and glibc
gives non-main threads their own malloc arenas, whose heaps are capped at 64 MiB: every larger tensor
(logits, activations) is then a fresh mmap, page-faulted and zeroed each step. One arena (the main one,
as in a plain script) measured 60 -> 80 tokens/s for SmolLM2 DPO on 2 cores (``benchmarks/dpo.py``)."""


def run_dpo_job(cfg: DPOJobConfig) -> dict[str, Any]:
    """DPO on the pairs at ``cfg.pairs``; the summary (:func:`run_train_job`).

    Raises:
        ValueError: unreadable or empty pairs (see :func:`~sphere_ray.training.data.load_pair_splits`).
    """
    return run_train_job(cfg, lambda tok: load_pair_splits(cfg.pairs, tok, cfg.max_length, cfg.eval_fraction,
                                                           cfg.split_seed))  # fmt: skip


def run_sft_job(cfg: SFTJobConfig) -> dict[str, Any]:
    """SFT on the samples at ``cfg.data``; the summary (:func:`run_train_job`).

    Raises:
        ValueError: unreadable or empty samples (see :func:`~sphere_ray.training.samples.load_sft_splits`).
    """
    from sphere_ray.training.samples import load_sft_splits

    return run_train_job(cfg, lambda tok: load_sft_splits(cfg.data, tok, cfg.max_length, cfg.eval_fraction,
                                                          cfg.split_seed))  # fmt: skip


def run_train_job(cfg: TrainJobOptions, load: Callable[[Any], Any]) -> dict[str, Any]:
    """Train on the connected (or a new local) Ray cluster; write the outputs and return the summary.

    Args:
        cfg: the job's config.
        load: tokenizer -> :class:`~sphere_ray.training.data.TrainSplits`.
    """
    from transformers import AutoTokenizer

    from sphere_ray.cluster import connect_ray
    from sphere_ray.models.embedded import resolve_model

    connect_ray(cfg.ray_address, log_to_driver=True)
    start = time.monotonic()
    if Path(cfg.model).is_dir():  # Ray Train runs its workers in the run's folder: a relative path would miss
        cfg = dataclasses.replace(cfg, model=str(Path(cfg.model).resolve()))
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(cfg.model))
    splits = load(tokenizer)
    log.info("%s data: %s", cfg.METHOD, splits.summary())
    result = _fit(cfg, splits)
    out = Path(cfg.output_dir)
    best, best_metrics = _best_checkpoint(result, has_eval=splits.eval is not None)
    export_adapter(best, out / "adapter")
    write_json(out / "metrics.json", trainer_log_history(result.checkpoint))
    if cfg.merge:
        merge_adapter(resolve_model(cfg.model), out / "adapter", out / "merged")
    summary = {
        "data": splits.summary(), "best_checkpoint": best.path, "best_eval_loss": best_metrics.get("eval_loss"),
        "best_step": best_metrics.get("step"), "final_step": result.metrics.get("step"),
        "resumed_from_step": result.metrics.get("resumed_from_step", 0), "last_metrics": result.metrics,
        "outputs": {"adapter": str(out / "adapter"), "merged": str(out / "merged") if cfg.merge else None},
        "wall_seconds": round(time.monotonic() - start, 1), "lineage": _lineage(cfg),
    }  # fmt: skip
    write_json(out / "summary.json", summary)
    return summary


def worker_env(threads: int | None) -> dict[str, str]:
    """:data:`WORKER_ENV`, plus ``OMP_NUM_THREADS`` when the job sets the workers' thread count."""
    return {**WORKER_ENV, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}


def _fit(cfg: TrainJobOptions, splits: Any) -> Any:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from sphere_ray.generation.progress import LineBoard, LineRelay
    from sphere_ray.training.worker import train_loop_per_worker

    has_eval = splits.eval is not None
    resources = {"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.use_gpu else {})}
    storage = cfg.storage_path or str(Path(cfg.output_dir, "ray").resolve())
    data = {"train": ray.put(splits.train), "eval": ray.put(splits.eval) if has_eval else None}
    board = ray.remote(num_cpus=0)(LineBoard).remote()  # the workers' progress lines; dies with this driver
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg, **data, "progress": board},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name=cfg.run_name, storage_path=storage, failure_config=FailureConfig(max_failures=cfg.max_failures),
            worker_runtime_env={"env_vars": worker_env(cfg.threads_per_worker)},
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.checkpoints_to_keep, checkpoint_score_attribute="eval_loss" if has_eval else None,
                checkpoint_score_order="min",
            ),
        ),
    )  # fmt: skip
    with LineRelay(board, cfg.METHOD):  # logged here, whether or not the workers' output reaches this console
        return trainer.fit()


def _best_checkpoint(result: Any, has_eval: bool) -> tuple[Any, dict[str, Any]]:
    """The checkpoint with the lowest ``eval_loss`` (the latest without eval)."""
    if result.error is not None:
        raise RuntimeError(f"training failed: {result.error}") from result.error
    candidates = [(c, m) for c, m in (result.best_checkpoints or []) if c is not None]
    if not candidates:
        raise RuntimeError("training produced no checkpoint (is save_strategy 'no'?)")
    if has_eval:
        scored = [(c, m) for c, m in candidates if m.get("eval_loss") is not None]
        if scored:
            return min(scored, key=lambda cm: cm[1]["eval_loss"])
    return max(candidates, key=lambda cm: cm[1].get("step", 0))


def trainer_log_history(checkpoint: Any) -> list[dict[str, Any]]:
    """TRL's log history (loss, eval_*, the trainer's metrics) from a checkpoint's ``trainer_state.json``."""
    with checkpoint.as_directory() as d:
        state = json.loads((Path(d) / "checkpoint" / "trainer_state.json").read_text())
    return state["log_history"]


def registered_checkpoint_step(run_dir: str | Path) -> int | None:
    """The step of the latest checkpoint Ray Train has registered for a run, or None while it has none.

    A checkpoint's folder is written by the worker before the controller registers its report; a worker
    killed in between restarts from the previous registered checkpoint. This reads the controller's
    ``checkpoint_manager_snapshot.json`` in the run's storage folder (``<output_dir>/ray/<run_name>``), so
    it is what a restart would resume from.
    """
    try:
        snapshot = json.loads((Path(run_dir) / "checkpoint_manager_snapshot.json").read_text())
        latest = snapshot["latest_checkpoint_result"]
        return int(latest["metrics"]["step"]) if latest else None
    except (OSError, ValueError, KeyError, TypeError):  # not written yet, or caught mid-write
        return None


def _lineage(cfg: TrainJobOptions) -> dict[str, Any]:
    config = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    return {
        "config": json.loads(json.dumps(config, default=str)), "config_hash": config_hash(cfg),
        "packages": package_versions(), "git_sha": git_sha(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
