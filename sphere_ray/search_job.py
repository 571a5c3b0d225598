"""The local search job: problems -> SPHERE search (in-process transformers models) -> pairs Parquet.

This is the single-process development path (and the embedded default's main job). Outputs, in
``output_dir``:

* ``pairs.parquet`` — the pairs (:data:`sphere_ray.pairs.PAIR_SCHEMA`), config in key-value metadata;
* ``trees.jsonl`` — one row per problem: stage, outcome, every explored tree, counters, seconds;
* ``rejects.jsonl`` — input rows that were not used, with the reason;
* ``summary.json`` — pairs per stage and level, outcomes, rejects by reason, tokens, PRM calls,
  wall seconds per pair, and the config.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sphere_ray.config import config_hash, option
from sphere_ray.files import write_json, write_jsonl
from sphere_ray.models.embedded import EMBEDDED_NAME, resolve_model
from sphere_ray.pairs import pairs_to_table, write_pairs
from sphere_ray.problems import load_problems
from sphere_ray.search import Counters, Models, ProblemResult, SphereParams, sphere_search
from sphere_ray.search_options import SearchOptions

__all__ = ["SearchJobConfig", "run_search_job"]

log = logging.getLogger(__name__)

_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class SearchJobConfig(SearchOptions):
    """SPHERE search on a problem file with in-process transformers models, pairs to Parquet."""

    problems: str = option("gsm8k_train_sample", "bundled set name or path to a .jsonl/.parquet problem file")
    limit: int | None = option(3, "use at most this many problems (null: all)")
    output_dir: str = option(
        "outputs/search", "folder for pairs.parquet, trees.jsonl, rejects.jsonl, summary.json", hashed=False
    )
    policy_model: str = option(EMBEDDED_NAME, "policy: model folder, hub name, or the embedded default's name")
    small_policy_model: str | None = option(
        EMBEDDED_NAME, "stage-3 small policy (same family, smaller); null skips stage 3"
    )
    prm_model: str = option(EMBEDDED_NAME, "LLM-as-judge PRM model (the policy family's model on CPU)")
    dtype: str = option("float32", "model dtype: float32 (CPU), bfloat16 or float16 (GPU)")
    device: str = option("cpu", "torch device for the in-process models (cpu, cuda, cuda:1, ...)")
    log_level: str = option("INFO", "logging level", hashed=False)

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 or null, got {self.limit}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if not self.output_dir:
            raise ValueError("output_dir must not be empty")
        for name in ("policy_model", "prm_model"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        super().__post_init__()


def build_models(cfg: SearchJobConfig) -> Models:
    """Load the policy, small policy and judge PRM in process (a model used twice is loaded once)."""
    from sphere_ray.serving.client import EnginePolicy, EnginePRM
    from sphere_ray.serving.engines import HFEngine
    from sphere_ray.serving.prm import JudgePRM

    def policy(model: str) -> EnginePolicy:
        return EnginePolicy(HFEngine(resolve_model(model), model, cfg.dtype, cfg.device))

    main = policy(cfg.policy_model)
    small = None
    if cfg.small_policy_model:
        small = main if cfg.small_policy_model == cfg.policy_model else policy(cfg.small_policy_model)
    judge = JudgePRM(resolve_model(cfg.prm_model), f"judge:{cfg.prm_model}", dtype=cfg.dtype, device=cfg.device)
    return Models(policy=main, prm=EnginePRM(judge), small_policy=small)


def run_search_job(cfg: SearchJobConfig, models: Models | None = None) -> dict[str, Any]:
    """Run the search over the configured problems and write the outputs; return the summary."""
    start = time.monotonic()
    loaded = load_problems(cfg.problems, cfg.limit)
    models = models or build_models(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results, timings = asyncio.run(_search_all(loaded.problems, models, cfg.sphere_params()))
    write_jsonl(out / "trees.jsonl", [{**r.to_dict(), "seconds": s} for r, s in zip(results, timings, strict=True)])
    write_jsonl(out / "rejects.jsonl", [dataclasses.asdict(r) for r in loaded.rejects])
    pairs = [p for r in results for p in r.pairs]
    meta = {"config": dataclasses.asdict(cfg), "policy": models.policy.name, "prm": models.prm.name}
    write_pairs(pairs_to_table(pairs, config_hash(cfg), meta), out / "pairs.parquet")
    summary = summarize(results, loaded.rejects, time.monotonic() - start)
    summary["config"] = dataclasses.asdict(cfg)
    summary["config_hash"] = config_hash(cfg)
    write_json(out / "summary.json", summary)
    return summary


async def _search_all(problems: list, models: Models, params: SphereParams) -> tuple[list[ProblemResult], list[float]]:
    results: list[ProblemResult] = []
    timings: list[float] = []
    for i, problem in enumerate(problems, 1):
        t0 = time.monotonic()
        result = await sphere_search(problem, models, params)
        results.append(result)
        timings.append(time.monotonic() - t0)
        log.info(
            "[%d/%d] %s: %s, %d pairs, %d tokens, %.1fs",
            i,
            len(problems),
            problem.id,
            result.outcome,
            len(result.pairs),
            result.counters.generated_tokens,
            timings[-1],
        )
    return results, timings


def summarize(results: list[ProblemResult], rejects: list, seconds: float) -> dict[str, Any]:
    """Counts per stage/level/outcome, rejects by reason, and cost per pair."""
    total = Counters()
    for r in results:
        total.add(r.counters)
    pairs = [p for r in results for p in r.pairs]
    n = len(pairs)
    return {
        "problems": len(results),
        "pairs": n,
        "pairs_by_stage_level": dict(collections.Counter(f"stage{p.stage}/{p.level}" for p in pairs)),
        "outcomes": dict(collections.Counter(r.outcome for r in results)),
        "rejects": len(rejects),
        "rejects_by_reason": dict(collections.Counter(r.reason for r in rejects)),
        "counters": dataclasses.asdict(total),
        "wall_seconds": round(seconds, 2),
        "seconds_per_pair": round(seconds / n, 2) if n else None,
        "tokens_per_pair": round(total.generated_tokens / n, 1) if n else None,
        "prm_calls_per_pair": round(total.prm_calls / n, 1) if n else None,
    }
