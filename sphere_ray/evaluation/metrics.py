"""Scores from the per-sample rows (pure functions; the tests recompute them from the JSONL).

Rows are dicts with ``model, benchmark, problem_id, sample, extracted, correct`` and, with self-correction,
``revised_correct``. Per (model, benchmark):

* ``pass@1``: mean over problems of the fraction of correct samples (plain accuracy with one sample);
* ``pass@k`` (k = samples per problem, when > 1): share of problems with at least one correct sample;
* ``maj@k``: share of problems whose most frequent extracted answer (ties: first seen) is correct;
* self-correction: accuracy before and after the review, and the counts right->wrong and wrong->right.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["bootstrap_diff", "by_problem", "compare", "problem_accuracy", "score"]


def by_problem(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by problem id (samples in order)."""
    groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in rows:
        groups[r["problem_id"]].append(r)
    return {k: sorted(v, key=lambda r: r["sample"]) for k, v in groups.items()}


def score(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The scores of one model on one benchmark (see the module docstring)."""
    problems = by_problem(rows)
    if not problems:
        return {"problems": 0, "samples": 0}
    k = max(len(v) for v in problems.values())
    acc = [sum(r["correct"] for r in v) / len(v) for v in problems.values()]
    out: dict[str, Any] = {"problems": len(problems), "samples": k, "pass@1": sum(acc) / len(acc)}
    if k > 1:
        out[f"pass@{k}"] = sum(a > 0 for a in acc) / len(acc)
        out[f"maj@{k}"] = sum(_majority_correct(v) for v in problems.values()) / len(problems)
    reviewed = [r for r in rows if r.get("revised_correct") is not None]
    if reviewed:
        out["self_correction"] = {
            "before": sum(r["correct"] for r in reviewed) / len(reviewed),
            "after": sum(r["revised_correct"] for r in reviewed) / len(reviewed),
            "right_to_wrong": sum(r["correct"] and not r["revised_correct"] for r in reviewed),
            "wrong_to_right": sum(not r["correct"] and r["revised_correct"] for r in reviewed),
            "samples": len(reviewed),
        }
    return out


def _majority_correct(samples: list[dict[str, Any]]) -> bool:
    answered = [r for r in samples if r["extracted"]]
    if not answered:
        return False
    counts = collections.Counter(r["extracted"].strip() for r in answered)
    top = max(counts.values())
    winner = next(r for r in answered if counts[r["extracted"].strip()] == top)
    return bool(winner["correct"])


def bootstrap_diff(
    a: dict[str, float], b: dict[str, float], resamples: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Paired bootstrap over problems of mean(b) - mean(a): ``(difference, low 2.5%, high 97.5%)``.

    Args:
        a: problem id -> per-problem accuracy of the first model (only shared problems are used).
        b: the same for the second model.
        resamples: bootstrap resamples.
        seed: RNG seed.
    """
    ids = sorted(set(a) & set(b))
    if not ids:
        return 0.0, 0.0, 0.0
    diffs = [b[i] - a[i] for i in ids]
    rng = random.Random(seed)
    stats = sorted(sum(rng.choice(diffs) for _ in ids) / len(ids) for _ in range(resamples))
    low, high = stats[int(0.025 * (resamples - 1))], stats[int(0.975 * (resamples - 1))]
    return sum(diffs) / len(ids), low, high


def problem_accuracy(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Problem id -> fraction of correct samples."""
    return {k: sum(r["correct"] for r in v) / len(v) for k, v in by_problem(rows).items()}


def compare(rows: Sequence[dict[str, Any]], base: str, other: str, resamples: int, seed: int = 0) -> dict[str, Any]:
    """Per benchmark: Pass@1 of ``base`` and ``other``, the difference and its bootstrap 95% interval."""
    out = {}
    for bench in sorted({r["benchmark"] for r in rows}):
        bench_rows = [r for r in rows if r["benchmark"] == bench]
        acc = {m: problem_accuracy(r for r in bench_rows if r["model"] == m) for m in (base, other)}
        diff, low, high = bootstrap_diff(acc[base], acc[other], resamples, seed)
        out[bench] = {base: _mean(acc[base]), other: _mean(acc[other]), "diff": diff, "ci95": [low, high]}
    return out


def _mean(acc: dict[str, float]) -> float:
    return sum(acc.values()) / len(acc) if acc else 0.0
