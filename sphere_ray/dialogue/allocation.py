"""Phase 2 of Dual-Phase SFT: difficulty-aware rejection sampling with pi_sft.

The paper re-balances its data towards hard problems without publishing the sampler; the anchors here
are DART-Math's (arXiv 2407.13690) two strategies and the pass-rate bands of Open-R1 / OpenThoughts:

* ``uniform``: the same number of kept correct samples for every solved problem;
* ``prop2diff``: kept samples proportional to the problem's fail rate, at least one each (the hardest
  problems get the most);
* ``band``: only problems whose pass rate lies in ``[band_low, band_high]``, a fixed number each.

A problem's pass rate is estimated from up to ``max_samples`` samples, stopping early once its 95%
Wilson interval is narrower than ``settle_width`` (:func:`settled`). Problems never solved are listed
apart (there is no correct sample to keep). :func:`select` then takes the kept samples round by round,
hardest problems first, under a total token budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["STRATEGIES", "Candidate", "histogram", "select", "settled", "targets", "wilson"]

STRATEGIES = ("uniform", "prop2diff", "band")


def wilson(correct: int, attempts: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a pass rate (``(0, 1)`` with no attempts)."""
    if attempts <= 0:
        return 0.0, 1.0
    p = correct / attempts
    denom = 1 + z * z / attempts
    centre = (p + z * z / (2 * attempts)) / denom
    half = z * math.sqrt(p * (1 - p) / attempts + z * z / (4 * attempts * attempts)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def settled(correct: int, attempts: int, *, max_samples: int, min_samples: int, settle_width: float) -> bool:
    """Whether a problem's pass-rate estimate is final.

    Final once ``max_samples`` are drawn, or ``min_samples`` are and the 95% Wilson interval is at most
    ``settle_width`` wide.
    """
    if attempts >= max_samples:
        return True
    lo, hi = wilson(correct, attempts)
    return attempts >= min_samples and hi - lo <= settle_width


def targets(
    pass_rates: Mapping[str, float],
    strategy: str,
    *,
    per_problem: int = 4,
    total: int | None = None,
    band: tuple[float, float] = (0.0, 1.0),
) -> dict[str, int]:
    """Samples to keep per solved problem (pass rate > 0; unsolved problems get none).

    Args:
        pass_rates: ``{problem id: estimated pass rate}``.
        strategy: ``uniform`` (``per_problem`` each), ``prop2diff`` (``total`` samples: one each, the rest
            split by fail rate with largest remainders; ``total`` defaults to ``per_problem`` x problems),
            or ``band`` (``per_problem`` each for pass rates within ``band``, inclusive).
        per_problem: samples per problem (uniform, band) or the mean (prop2diff's default ``total``).
        total: prop2diff's total.
        band: ``(low, high)`` pass-rate band.

    Raises:
        ValueError: unknown strategy, or a total below one sample per solved problem.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    solved = {pid: p for pid, p in pass_rates.items() if p > 0}
    if strategy == "uniform":
        return dict.fromkeys(solved, per_problem)
    if strategy == "band":
        lo, hi = band
        return {pid: per_problem if lo <= p <= hi else 0 for pid, p in solved.items()}
    total = per_problem * len(solved) if total is None else total
    if total < len(solved):
        raise ValueError(f"total: prop2diff needs at least one sample per solved problem ({len(solved)}), got {total}")
    return _prop2diff(solved, total)


def _prop2diff(solved: Mapping[str, float], total: int) -> dict[str, int]:
    ids = sorted(solved)
    fail = {pid: 1.0 - solved[pid] for pid in ids}
    spare, weight = total - len(ids), sum(fail.values())
    shares = {pid: spare * (fail[pid] / weight if weight else 1 / len(ids)) for pid in ids}
    out = {pid: 1 + math.floor(shares[pid]) for pid in ids}
    left = total - sum(out.values())
    for pid in sorted(ids, key=lambda i: (-(shares[i] - math.floor(shares[i])), -fail[i], i))[:left]:
        out[pid] += 1
    return out


@dataclass(frozen=True)
class Candidate:
    """A correct sample that passed the rules: its problem, index, generated tokens and the problem's pass rate."""

    problem_id: str
    sample: int
    tokens: int
    pass_rate: float


def select(
    candidates: Sequence[Candidate], want: Mapping[str, int], token_budget: int | None = None
) -> list[Candidate]:
    """Keep up to ``want[problem]`` candidates per problem, in rounds, under ``token_budget`` tokens.

    Round r takes the r-th candidate (by sample index) of every problem that wants more than r, hardest
    problems (lowest pass rate) first; a candidate that would exceed the budget is skipped. Without a
    budget the result is every problem's first ``min(want, available)`` candidates.
    """
    by_problem: dict[str, list[Candidate]] = {}
    for c in sorted(candidates, key=lambda c: (c.problem_id, c.sample)):
        by_problem.setdefault(c.problem_id, []).append(c)
    order = sorted(by_problem, key=lambda pid: (by_problem[pid][0].pass_rate, pid))
    kept, used = [], 0
    for r in range(max(want.values(), default=0)):
        for pid in order:
            pool = by_problem[pid]
            if r >= min(want.get(pid, 0), len(pool)):
                continue
            if token_budget is not None and used + pool[r].tokens > token_budget:
                continue
            kept.append(pool[r])
            used += pool[r].tokens
    return kept


def histogram(pass_rates: Sequence[float], bins: int = 10) -> list[int]:
    """Counts of pass rates in ``bins`` equal bins over [0, 1] (1.0 falls in the last)."""
    counts = [0] * bins
    for p in pass_rates:
        counts[min(bins - 1, int(p * bins))] += 1
    return counts
