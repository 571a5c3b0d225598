"""Dual-Phase SFT end to end (``sphere-ray run --method dual_phase``), on one config.

Stages, each the project's own job, in ``output_dir``:

``phase1/``    multi-turn self-verification dialogues of the base model, rule-filtered (the SFT data job, phase 1)
``sft/``       pi_sft: SFT of the base model on ``phase1/sft`` (the SFT job; merged model in ``sft/merged``)
``phase2/``    difficulty-aware rejection sampling with pi_sft (the SFT data job, phase 2)
``rej/``       pi_rej: SFT on ``phase2/sft``, from pi_sft (``rej_from: sft``) or the base (``rej_from: base``)
``rft_data/``  baseline: one-turn samples of the base model, correct and well-formed ones kept, with as many
               generated tokens per problem as phase 1 and phase 2 spent together (``baseline: true``)
``rft/``       pi_rft: SFT of the base model on ``rft_data/sft``
``sphere/``    optionally SPHERE rounds from pi_rej (``sphere:``: the combined recipe)
``eval/``      base, pi_sft, pi_rej, pi_rft (and SPHERE's model) on the evaluation benchmarks
``report/``    ``report.md`` and its figures (:mod:`sphere_ray.pipeline.dual_report`)

A stage whose data keeps no sample trains nothing; the stages that need its model are skipped, said in the
log and the report, and the models that exist are still evaluated. Every job resumes its own folder, so a
rerun of the pipeline continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sphere_ray.config import option, section
from sphere_ray.dialogue.config import SftDataJobConfig
from sphere_ray.evaluation.config import EvalJobConfig
from sphere_ray.pipeline.config import PipelineConfig, build_section
from sphere_ray.training.config import SFTJobConfig

__all__ = ["RFT_DEFAULTS", "DualPhaseConfig", "run_dual_phase"]

log = logging.getLogger(__name__)

RFT_DEFAULTS: dict[str, Any] = {
    "phase": 2, "max_samples": 64, "min_samples": 64, "strategy": "uniform", "per_problem": 64,
    "filters": {"filters": ["final_correct", "one_final_answer", "not_truncated"]},
}  # fmt: skip
"""The plain rejection-sampling baseline (STaR / ReST-EM style): one-turn answers of the base model, no early
stop and no difficulty allocation (every correct sample kept), only the correctness and format rules; the
number of samples is set by the equal token budget."""


@dataclass
class DualPhaseConfig:
    """Dual-Phase SFT: phase 1 -> SFT (pi_sft) -> phase 2 -> SFT (pi_rej) -> baseline -> evaluate -> report."""

    method: str = option("dual_phase", "dual_phase (this pipeline) or sphere (recipes/pipeline_*.yaml)")
    output_dir: str = option("outputs/dual_phase", "run folder: phase1/ sft/ phase2/ rej/ rft*/ eval/ report/",
                             hashed=False)  # fmt: skip
    base_model: str = option("smollm2-135m-instruct", "phase 1's policy, the SFT start, and 'base' in the evaluation")
    phase1: dict[str, Any] = section("SFT data job fields of phase 1 (phase, output_dir, the policy model: set here)")
    sft: dict[str, Any] = section("SFT job fields of every SFT run (model, data, output_dir: set per run)")
    phase2: dict[str, Any] = section("SFT data job fields of phase 2, over phase1's (the policy is pi_sft)")
    rej_sft: dict[str, Any] = section("SFT job fields of pi_rej's run, over sft's")
    rej_from: str = option("sft", "pi_rej starts from: sft (pi_sft trained further) or base (the base model)")
    baseline: bool = option(True, "also train plain rejection-sampling fine-tuning at the same generated tokens")
    rft: dict[str, Any] = section("SFT data job fields of the baseline's sampler, over phase2's and RFT_DEFAULTS")
    sphere: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "SPHERE pipeline fields (generate, train, rounds) run from pi_rej: Dual-Phase SFT then "
                  "SPHERE DPO; null: none", "merge": True},
    )  # fmt: skip
    evaluate: dict[str, Any] = section("evaluation job fields (models: base and every trained model)")
    ray_address: str | None = option(None, "Ray cluster address (null: the job's cluster or a new local one)")
    log_level: str = option("INFO", "logging level", hashed=False)

    def __post_init__(self) -> None:
        if self.method != "dual_phase":
            raise ValueError(f"method must be dual_phase for this config, got {self.method!r}")
        if self.rej_from not in ("sft", "base"):
            raise ValueError(f"rej_from must be sft or base, got {self.rej_from!r}")
        for name in ("phase1", "sft", "phase2", "rej_sft", "rft", "evaluate"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping of that job's fields")
        self.phase1_config()  # every section must make a valid job config (errors name the section and field)
        self.phase2_config(self.base_model)
        self.rft_config(1000)
        self.sft_config("sft", self.base_model, "x")
        self.sft_config("rej", self.base_model, "x")
        self.eval_config({"base": self.base_model})
        if self.sphere is not None:
            self.sphere_config(self.base_model)

    def folder(self, stage: str) -> Path:
        """The folder of one stage (``phase1``, ``sft``, ``phase2``, ``rej``, ``rft_data``, ``rft``, ...)."""
        return Path(self.output_dir) / stage

    def phase1_config(self) -> SftDataJobConfig:
        """Phase 1: dialogues of the base model."""
        return self._data_config("phase1", self.phase1, {"phase": 1}, self.base_model)

    def phase2_config(self, pi_sft: str) -> SftDataJobConfig:
        """Phase 2: rejection sampling with ``pi_sft``."""
        return self._data_config("phase2", _over(self.phase1, self.phase2), {"phase": 2}, pi_sft)

    def rft_config(self, problem_token_budget: int) -> SftDataJobConfig:
        """The baseline's sampler: the base model, ``problem_token_budget`` generated tokens per problem."""
        values = _over(self.phase1, self.phase2, RFT_DEFAULTS, self.rft)
        fixed = {"phase": 2, "problem_token_budget": problem_token_budget}
        return self._data_config("rft_data", values, fixed, self.base_model)

    def sft_config(self, stage: str, model: str, data: str) -> SFTJobConfig:
        """An SFT run (``sft``, ``rej`` or ``rft``) of ``model`` on ``data``."""
        values = {**self.sft, **(self.rej_sft if stage == "rej" else {})}
        values.update(model=model, data=data, output_dir=str(self.folder(stage)))
        return build_section(SFTJobConfig, "rej_sft" if stage == "rej" else "sft", values)

    def sphere_config(self, policy: str) -> PipelineConfig:
        """SPHERE from ``policy`` (pi_rej), in ``sphere/``."""
        values = {**(self.sphere or {}), "base_model": policy, "output_dir": str(self.folder("sphere"))}
        return build_section(PipelineConfig, "sphere", {"ray_address": self.ray_address, **values})

    def eval_config(self, models: dict[str, str]) -> EvalJobConfig:
        """The evaluation of ``{name: model}`` (base first).

        Every model here is the base with merged adapters (one architecture), so when the evaluation deploys
        its own app it deploys one and loads each model's weights into it in turn (``swap_weights``), unless
        the ``evaluate`` section says otherwise.
        """
        values = {**self.evaluate, "models": [{"name": n, "model": m} for n, m in models.items()],
                  "output_dir": str(self.folder("eval"))}  # fmt: skip
        if values.get("start_serve", True):
            values.setdefault("swap_weights", True)
        return build_section(EvalJobConfig, "evaluate", values)

    def _data_config(self, stage: str, values: dict[str, Any], fixed: dict[str, Any], policy: str) -> SftDataJobConfig:
        overrides = dict(values.get("serve_overrides") or {})
        app = values.get("policy_app", "policy")
        overrides[app] = {**overrides.get(app, {}), "model": policy}
        values = {**values, **fixed, "output_dir": str(self.folder(stage)), "serve_overrides": overrides}
        return build_section(SftDataJobConfig, stage if stage != "rft_data" else "rft", values)


def _over(*sections: dict[str, Any]) -> dict[str, Any]:
    """Later sections' fields over earlier ones'; the ``filters`` and ``serve_overrides`` mappings key by key."""
    out: dict[str, Any] = {}
    for part in sections:
        for key, value in part.items():
            nested = key in ("filters", "serve_overrides") and isinstance(value, dict)
            out[key] = {**out.get(key, {}), **value} if nested else value
    return out


def run_dual_phase(cfg: DualPhaseConfig) -> dict[str, Any]:
    """Run every stage; return the run summary (also ``<output_dir>/run.json``)."""
    from sphere_ray.cluster import connect_ray
    from sphere_ray.evaluation.job import run_eval_job
    from sphere_ray.pipeline.dual_report import write_report

    connect_ray(cfg.ray_address)
    start = time.monotonic()
    run: dict[str, Any] = {"stages": {}, "models": {"base": cfg.base_model}, "skipped": []}
    phase1 = _data_stage(run, "phase1", cfg.phase1_config())
    pi_sft = _sft_stage(run, cfg, "sft", cfg.base_model, phase1["kept"])
    phase2_tokens = 0
    if pi_sft:
        phase2 = _data_stage(run, "phase2", cfg.phase2_config(pi_sft))
        phase2_tokens = phase2["generated_tokens"]
        start_model = pi_sft if cfg.rej_from == "sft" else cfg.base_model
        _sft_stage(run, cfg, "rej", start_model, phase2["allocation"]["selected"])
    else:
        run["skipped"].append("phase2, rej: pi_sft was not trained (phase 1 kept no sample)")
    if cfg.baseline:
        budget = phase1["generated_tokens"] + phase2_tokens
        per_problem = max(1, math.ceil(budget / max(phase1["problems_done"], 1)))
        run["rft_budget"] = {"dual_phase_tokens": budget, "per_problem": per_problem}
        log.info("[rft] baseline with %d generated tokens per problem (%d in all)", per_problem, budget)
        rft = _data_stage(run, "rft_data", cfg.rft_config(per_problem))
        _sft_stage(run, cfg, "rft", cfg.base_model, rft["allocation"]["selected"])
    if cfg.sphere is not None:
        _sphere_stage(run, cfg)
    log.info("[eval] %s", ", ".join(run["models"]))
    evaluation = run_eval_job(cfg.eval_config(run["models"]))
    run["wall_seconds"] = round(time.monotonic() - start, 1)
    run["report"] = str(write_report(cfg, run, evaluation))
    Path(cfg.output_dir, "run.json").write_text(json.dumps(run, indent=2))
    return run


def _data_stage(run: dict[str, Any], stage: str, job: SftDataJobConfig) -> dict[str, Any]:
    from ray import serve

    from sphere_ray.dialogue.job import run_sft_data_job

    log.info("[%s] phase %d data with %s", stage, job.phase, job.serve_overrides[job.policy_app]["model"])
    summary = run_sft_data_job(job)
    if job.start_serve:
        serve.shutdown()  # free the replicas' CPUs/GPUs for training
    run["stages"][stage] = {"output_dir": job.output_dir, "summary": summary}
    return summary


def _sft_stage(run: dict[str, Any], cfg: DualPhaseConfig, stage: str, model: str, samples: int) -> str | None:
    """Train ``stage`` on its data folder's ``sft/`` if it holds samples; the merged model, or None."""
    from sphere_ray.training.job import run_sft_job

    data = {"sft": "phase1", "rej": "phase2", "rft": "rft_data"}[stage]
    if samples == 0:
        log.warning("[%s] %s/sft holds no sample: nothing to train on, %s is skipped", stage, data, stage)
        run["skipped"].append(f"{stage}: {data} kept no sample")
        return None
    job = cfg.sft_config(stage, model, str(cfg.folder(data) / "sft"))
    if not job.merge:
        raise ValueError(f"{'rej_sft' if stage == 'rej' else 'sft'}.merge must be true: later stages serve the model")
    log.info("[%s] SFT of %s on %d samples", stage, model, samples)
    try:
        summary = run_sft_job(job)
    except ValueError as e:  # e.g. every sample longer than max_length: nothing usable to train on
        log.warning("[%s] not trained: %s", stage, e)
        run["skipped"].append(f"{stage}: {e}")
        return None
    run["stages"][stage] = {"output_dir": job.output_dir, "start_model": model, "summary": summary}
    run["models"][stage] = summary["outputs"]["merged"]
    return summary["outputs"]["merged"]


def _sphere_stage(run: dict[str, Any], cfg: DualPhaseConfig) -> None:
    from sphere_ray.pipeline.run import run_rounds

    if "rej" not in run["models"]:
        run["skipped"].append("sphere: pi_rej was not trained")
        return
    sphere = cfg.sphere_config(run["models"]["rej"])
    rounds, trained = run_rounds(sphere, sphere.base_model)
    run["stages"]["sphere"] = {"output_dir": sphere.output_dir, "rounds": rounds}
    if trained:
        run["models"]["sphere"] = trained
