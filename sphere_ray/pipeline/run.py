"""The whole loop on one config: serve -> generate -> train DPO -> evaluate base vs trained -> report.

Round k (``round-<k>/``): the generation job deploys the Serve apps with the current policy and writes
pairs; the Serve apps are then shut down (their GPUs go to training); the DPO job trains a LoRA adapter
from the current policy and merges it; the merged model is the next round's policy. A round that yields no
pairs ends the loop (nothing to train on; said in the log and the report). Then the base model and the
last trained model are evaluated side by side, and the report is written.

``reuse_policy_app`` (CPU, or GPUs to spare): the last round's policy app is not shut down; training runs
beside its idle replica, and the final evaluation loads the trained weights into it in place
(:func:`~sphere_ray.serving.launch.swap_weights`) instead of deploying the trained model as a new app.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from sphere_ray.pipeline.config import PipelineConfig
from sphere_ray.serving.launch import app_running

__all__ = ["run_pipeline", "run_rounds"]

log = logging.getLogger(__name__)


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run every stage; return the run summary (also written to ``<output_dir>/run.json``)."""
    from sphere_ray.cluster import connect_ray
    from sphere_ray.pipeline.report import write_report

    connect_ray(cfg.ray_address)
    start = time.monotonic()
    rounds, trained = run_rounds(cfg, cfg.base_model)
    log.info("[eval] base%s", " vs trained" if trained else " only (no round trained a model)")
    from sphere_ray.evaluation.job import run_eval_job

    final = _final_eval_config(cfg, trained)
    evaluation = run_eval_job(final)
    if final.apps:
        from ray import serve

        serve.delete(final.apps["base"])  # the kept policy app: nothing uses it after the evaluation
    summary = {"rounds": rounds, "trained_model": trained, "eval": str(Path(cfg.output_dir) / "eval"),
               "wall_seconds": round(time.monotonic() - start, 1)}  # fmt: skip
    summary["report"] = str(write_report(cfg, summary, evaluation))
    Path(cfg.output_dir, "run.json").write_text(json.dumps(summary, indent=2))
    return summary


def run_rounds(cfg: PipelineConfig, policy: str) -> tuple[list[dict[str, Any]], str | None]:
    """Generate -> train rounds from ``policy``; ``(round records, the last trained model or None)``."""
    rounds, start = [], policy
    for k in range(1, cfg.rounds + 1):
        record = _round(cfg, k, policy)
        rounds.append(record)
        if record.get("trained_model") is None:
            break
        policy = record["trained_model"]
    return rounds, policy if policy != start else None


def _evaluate_base_on(cfg: PipelineConfig, app: str) -> None:
    """Evaluate the base model on the generation's running policy app (it serves the base model in round 1).

    The final evaluation then reuses these rows (the eval job resumes per model), so the base model is not
    deployed a second time.
    """
    from sphere_ray.evaluation.job import run_eval_job

    if not app_running(app):
        return  # the generation had nothing to do and deployed nothing: the final evaluation deploys the base
    log.info("[eval] base on the running %s app", app)
    run_eval_job(cfg.eval_config(None, apps={"base": app}))


def _free_replicas(cfg: PipelineConfig, k: int, app: str) -> None:
    """Shut the Serve apps down before training; ``reuse_policy_app`` keeps the last round's policy ``app``."""
    from ray import serve

    if not (cfg.reuse_policy_app and k == cfg.rounds and app_running(app)):
        serve.shutdown()  # free the replicas' CPUs/GPUs for training
        return
    for name in list(serve.status().applications):
        if name != app:
            serve.delete(name)
    log.info("[round %d] the %s app stays up: the evaluation loads the trained weights into it", k, app)


def _final_eval_config(cfg: PipelineConfig, trained: str | None) -> Any:
    """The final evaluation on one app, the trained weights loaded into it after the base model's run.

    That app is the kept policy app (``reuse_policy_app``), or else one the evaluation deploys: base and
    trained share one architecture (the trained model is the base with a merged adapter), so a second
    deploy is never needed.
    """
    gen_cfg = cfg.generate_config(1, cfg.base_model)
    app = gen_cfg.policy_app
    if not (cfg.reuse_policy_app and gen_cfg.start_serve and app_running(app)):  # only an app the pipeline deployed
        return cfg.eval_config(trained, swap_weights=True)
    return cfg.eval_config(trained, apps={"base": app, **({"trained": app} if trained else {})}, swap_weights=True)


def _round(cfg: PipelineConfig, k: int, policy: str) -> dict[str, Any]:
    from sphere_ray.generation.job import run_generate_job

    log.info("[round %d/%d] generate with %s", k, cfg.rounds, policy)
    gen_cfg = cfg.generate_config(k, policy)
    generated = run_generate_job(gen_cfg)
    if gen_cfg.start_serve:
        if policy == cfg.base_model:
            _evaluate_base_on(cfg, gen_cfg.policy_app)
        _free_replicas(cfg, k, gen_cfg.policy_app)
    record: dict[str, Any] = {"round": k, "policy": policy, "generate": gen_cfg.output_dir,
                              "pairs": generated["pairs"], "trained_model": None}  # fmt: skip
    if generated["pairs"] == 0:
        log.warning("[round %d] no pairs were generated: nothing to train on, the loop stops here", k)
        return record
    from sphere_ray.training.job import run_dpo_job

    log.info("[round %d/%d] DPO on %d pairs from %s", k, cfg.rounds, generated["pairs"], policy)
    train_cfg = cfg.train_config(k, policy)
    if not train_cfg.merge:
        raise ValueError("train.merge must be true in the pipeline: the next stage serves the merged model")
    trained = run_dpo_job(train_cfg)
    record.update(dpo=train_cfg.output_dir, trained_model=trained["outputs"]["merged"],
                  best_eval_loss=trained["best_eval_loss"])  # fmt: skip
    return record
