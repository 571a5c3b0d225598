"""The SFT data job: problems -> dialogues (Phase 1) or pi_sft samples (Phase 2) over Serve with Ray Data -> Parquet.

The generation job's skeleton (:mod:`sphere_ray.generation.job`): stage the problems not yet done in
``output_dir`` (resume) as a Parquet queue, optionally deploy the Serve apps, stream the queue through a
Ray Data actor pool (:class:`~sphere_ray.dialogue.worker.DialogueWorker`: the dialogues of one problem,
graded and filtered), commit every ``commit_every`` problems, and write a summary with the acceptance
rate per rule and per template. Phase 2 then allocates the kept samples by difficulty over all problems
(:func:`~sphere_ray.dialogue.rejection.allocate`) into ``sft/`` and lists the never-solved problems.
Tables: :mod:`sphere_ray.dialogue.worker`.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import time
from typing import Any

from sphere_ray.config import config_hash
from sphere_ray.dialogue.config import SftDataJobConfig
from sphere_ray.dialogue.filters import acceptance
from sphere_ray.dialogue.rejection import allocate
from sphere_ray.dialogue.templates import BEHAVIOURS
from sphere_ray.dialogue.worker import PHASE2, SFT_DATA, DialogueBatchWorker, DialogueWorker
from sphere_ray.generation.job import commit_results, failure_reject, map_queue, open_run, retrying_args
from sphere_ray.generation.progress import Progress
from sphere_ray.generation.store import Batch, OutputStore

__all__ = ["run_sft_data_job", "summarize"]

log = logging.getLogger(__name__)


def run_sft_data_job(cfg: SftDataJobConfig) -> dict[str, Any]:
    """Run the job on the connected (or a new local) Ray cluster; return the summary."""
    start = time.monotonic()
    phase2 = cfg.phase == 2
    store, queue = open_run(cfg, PHASE2 if phase2 else SFT_DATA)
    progress = _Progress(queue.todo, cfg.progress_every_s)
    if queue.todo:
        worker_args = {
            "policy_app": cfg.policy_app, "params": dataclasses.asdict(cfg.dialogue_params()),
            "filters": dataclasses.asdict(cfg.filter_config()), "templates": cfg.templates,
            "behaviours": cfg.behaviours, "config_hash": config_hash(cfg), "system_prompt": cfg.system_prompt,
            "judge_app": cfg.judge_app, "judge_max_tokens": cfg.judge_max_tokens,
            "call_timeout_s": cfg.call_timeout_s, "call_retries": cfg.call_retries, "affinity": cfg.affinity,
            "pass_rate": dataclasses.asdict(cfg.pass_rate_params()) if phase2 else None, **retrying_args(cfg),
        }  # fmt: skip
        results = map_queue(cfg, queue, store, (DialogueWorker, DialogueBatchWorker), worker_args)
        progress.start_heartbeat()
        try:
            commit_results(cfg, results, store, progress.collect)
        finally:
            progress.stop()
    allocation = _allocate(cfg, store) if phase2 else None
    summary = summarize(store, queue.problems, time.monotonic() - start, progress)
    if allocation is not None:
        summary["allocation"] = allocation
    store.write_json("summary.json", summary)
    return summary


def _allocate(cfg: SftDataJobConfig, store: OutputStore) -> dict[str, Any]:
    """Phase 2: allocate the candidates of every committed problem into ``sft/``; list ``never_solved/``."""
    problems = store.read("problems").to_pylist()
    selected, never, report = allocate(problems, store.read("candidates").to_pylist(), cfg.allocation_params())
    store.write_derived("sft", selected)
    store.write_derived("never_solved", never)
    log.info("phase 2: %d of %d candidates kept (%s), %d problems never solved", report["selected"],
             report["candidates"], cfg.strategy, report["never_solved"])  # fmt: skip
    return report


class _Progress(Progress):
    """The SFT data job's line: samples kept of those drawn."""

    def __init__(self, total: int, every_s: float) -> None:
        super().__init__(total, every_s, metrics="sphere_sft_data")
        self.samples = self.kept = 0

    def collect(self, row: dict[str, Any], payload: dict[str, Any], batch: Batch) -> None:
        """Add one result row to ``batch`` and count it."""
        tokens = 0
        if row["ok"]:
            for table, rows in payload.items():
                batch[table].extend(rows)
            (p,) = payload["problems"]
            with self.lock:
                self.samples += p["samples"]
                self.kept += p["kept"]
            tokens = p["generated_tokens"]
        else:
            batch["rejects"].append(failure_reject(row, payload, "dialogue"))
        self.finished(row["ok"], tokens)

    def detail(self) -> str:
        """``12/40 samples kept``."""
        return f"{self.kept}/{self.samples} samples kept"


def _sample_rejects(rejects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rejects rows that are dropped samples (their ``raw`` holds the failed rules)."""
    out = []
    for r in rejects:
        try:
            raw = json.loads(r["raw"])
        except (TypeError, ValueError):
            continue
        if isinstance(raw, dict) and "reasons" in raw and r["row"] is not None:
            out.append(raw)
    return out


def summarize(store: OutputStore, num_problems: int, seconds: float, progress: _Progress) -> dict[str, Any]:
    """Totals over everything committed in the folder (all runs), plus this run's rate.

    Keys: problems, samples, kept, ``acceptance`` (overall, ``by_filter``, ``by_template``; Phase 2: of the rules,
    before the allocation), accuracy of the
    first and last turns, error-correction chains, turns and tokens of kept samples, behaviour cues per kept
    answer (turns after the first), problem failures and input rejects.
    """
    from sphere_ray.dialogue.filters import FILTER_NAMES

    problems = store.read("problems").to_pylist()
    columns = ["template_ids", "turns", "tokens", "corrected", "behaviour_counts", "judged_behaviours"]
    kept = store.read("sft", columns).to_pylist()
    rejects = store.read("rejects", ["row", "reason", "raw", "problem_id"]).to_pylist()
    dropped = _sample_rejects(rejects)
    samples = sum(p["samples"] for p in problems)
    passed = store.read("candidates", ["template_ids"]).to_pylist() if "candidates" in store.layout.tables else kept
    rows = [(k["template_ids"], []) for k in passed] + [(d.get("template_ids") or [], d["reasons"]) for d in dropped]
    failed = [r for r in rejects if r["reason"].startswith("dialogue failed")]
    return {
        "problems_in_input": num_problems, "problems_done": len(problems), "samples": samples, "kept": len(kept),
        "acceptance": acceptance(rows, FILTER_NAMES),
        "first_turn_accuracy": _ratio(sum(p["first_correct"] for p in problems), samples),
        "final_turn_accuracy": _ratio(sum(p["final_correct"] for p in problems), samples),
        "error_correction_chains": sum(p["corrected"] for p in problems),
        "kept_error_correction_chains": sum(k["corrected"] for k in kept),
        "kept_turns": dict(collections.Counter(k["turns"] for k in kept)),
        "kept_mean_tokens": _ratio(sum(k["tokens"] for k in kept), len(kept)),
        "kept_behaviour_cues_per_answer": {b: _ratio(sum(k["behaviour_counts"][b] for k in kept), len(kept))
                                           for b in BEHAVIOURS},
        "judge": _judge_summary(kept + dropped),
        "problems_never_solved": sum(p["final_correct"] == 0 for p in problems),
        "problem_failures": len(failed), "generated_tokens": sum(p["generated_tokens"] for p in problems),
        "this_run": {"problems": progress.done, "failed": progress.failed, "wall_seconds": round(seconds, 2),
                     "tokens_per_second": round(progress.tokens / seconds, 2) if seconds else None},
    }  # fmt: skip


def _judge_summary(samples: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Samples the LLM judge answered for, and per behaviour how often its verdict matched the cue detector's."""
    judged = [s for s in samples if s.get("judged_behaviours") is not None and s.get("behaviour_counts")]
    if not judged:
        return None
    agree = {b: _ratio(sum((s["behaviour_counts"][b] > 0) == (b in s["judged_behaviours"]) for s in judged),
                       len(judged)) for b in BEHAVIOURS}  # fmt: skip
    return {"samples_judged": len(judged), "samples": len(samples), "agreement_with_cues": agree}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None
