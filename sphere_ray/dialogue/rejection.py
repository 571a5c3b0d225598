"""Phase 2 of Dual-Phase SFT: difficulty-aware rejection sampling with pi_sft.

Per problem (:func:`sample_until_settled`, in the Ray Data workers): pi_sft answers the problem in one turn
(it has learned to verify and backtrack inside its answer), ``samples`` at a time, until the pass-rate
estimate is settled (:func:`~sphere_ray.dialogue.allocation.settled`: ``max_samples`` drawn, or at least
``min_samples`` and a 95% Wilson interval no wider than ``settle_width``), or until the problem's samples
have used ``token_budget`` generated tokens (the rejection-sampling baseline's equal budget). Each sample is
graded and rule-filtered like Phase 1's.

Over all problems (:func:`allocate`, on the driver once every problem is done): the pass rates give each
solved problem a target (``uniform``, ``prop2diff`` or a pass-rate ``band``), and
:func:`~sphere_ray.dialogue.allocation.select` keeps that many rule-passing correct samples, hardest
problems first, under a token budget. Problems never solved are listed apart. No Ray here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sphere_ray.dialogue.allocation import STRATEGIES, Candidate, histogram, select, settled, targets
from sphere_ray.dialogue.dialogue import ChatPolicy, DialogueParams, run_dialogues
from sphere_ray.dialogue.sample import Dialogue
from sphere_ray.dialogue.templates import TemplatePool
from sphere_ray.search.types import Problem

__all__ = ["AllocationParams", "PassRateParams", "allocate", "sample_until_settled"]


@dataclass(frozen=True)
class PassRateParams:
    """When a problem's pass-rate estimate is settled (the job's fields of the same names)."""

    max_samples: int = 16
    min_samples: int = 4
    settle_width: float = 0.3
    token_budget: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_samples <= self.max_samples:
            raise ValueError(
                f"min_samples/max_samples: need 1 <= min <= max, got {self.min_samples}, {self.max_samples}"
            )
        if not 0 < self.settle_width <= 1:
            raise ValueError(f"settle_width must be in (0, 1], got {self.settle_width}")
        if self.token_budget is not None and self.token_budget < 1:
            raise ValueError(f"problem_token_budget must be >= 1 or null, got {self.token_budget}")

    def done(self, samples: Sequence[Dialogue]) -> bool:
        """Whether to stop drawing: the pass rate is settled, or the samples used up ``token_budget``."""
        if self.token_budget is not None and sum(d.tokens for d in samples) >= self.token_budget:
            return True
        return settled(sum(d.correct[-1] for d in samples), len(samples), max_samples=self.max_samples,
                       min_samples=self.min_samples, settle_width=self.settle_width)  # fmt: skip


@dataclass(frozen=True)
class AllocationParams:
    """How kept samples are allocated by difficulty (the job's fields of the same names)."""

    strategy: str = "prop2diff"
    per_problem: int = 4
    total_samples: int | None = None
    band: tuple[float, float] = (0.0, 1.0)
    token_budget: int | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {self.strategy!r}")
        if self.per_problem < 1:
            raise ValueError(f"per_problem must be >= 1, got {self.per_problem}")
        if self.total_samples is not None and self.total_samples < 1:
            raise ValueError(f"total_samples must be >= 1 or null, got {self.total_samples}")
        if len(self.band) != 2 or not 0 <= self.band[0] <= self.band[1] <= 1:
            raise ValueError(f"band must be [low, high] with 0 <= low <= high <= 1, got {list(self.band)}")
        if self.token_budget is not None and self.token_budget < 1:
            raise ValueError(f"token_budget must be >= 1 or null, got {self.token_budget}")


async def sample_until_settled(
    policy: ChatPolicy, problem: Problem, pool: TemplatePool, params: DialogueParams, rate: PassRateParams
) -> list[Dialogue]:
    """One-turn samples of ``problem``, ``params.samples`` per round, until ``rate.done`` (settled or budget spent).

    Round ``r`` samples with its own seed, so reruns draw the same samples; sample indices run on across
    rounds. With a ``token_budget`` the last round may overshoot it by up to one round's tokens.
    """
    out: list[Dialogue] = []
    while not rate.done(out):
        n = min(params.samples, rate.max_samples - len(out))
        round_params = dataclasses.replace(params, samples=n, max_turns=1, seed=params.seed + 1_000_003 * len(out))
        drawn, offset = await run_dialogues(policy, problem, pool, round_params), len(out)
        for d in drawn:
            d.sample += offset
        out += drawn
    return out


def allocate(
    problems: Sequence[dict[str, Any]], candidates: Sequence[dict[str, Any]], params: AllocationParams
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Choose the kept samples over all problems.

    Args:
        problems: marker rows (``problem_id``, ``source``, ``samples``, ``final_correct``).
        candidates: rule-passing correct samples (the SFT rows: ``problem_id``, ``sample``, ``tokens``, ...).
        params: the strategy, its sizes and the token budget.

    Returns:
        ``(selected candidate rows, never-solved rows {problem_id, source, samples}, report)``; the report
        holds the strategy, targets and selected counts, tokens, and pass-rate histograms (10 bins over
        [0, 1]) of the problems (``before``) and of the selected samples' problems (``after``, one per sample).

    Raises:
        ValueError: a ``prop2diff`` ``total_samples`` below one per solved problem.
    """
    rate = {p["problem_id"]: p["final_correct"] / p["samples"] if p["samples"] else 0.0 for p in problems}
    want = targets(rate, params.strategy, per_problem=params.per_problem, total=params.total_samples,
                   band=params.band)  # fmt: skip
    pool = [Candidate(c["problem_id"], c["sample"], c["tokens"], rate.get(c["problem_id"], 0.0)) for c in candidates]
    chosen = {(c.problem_id, c.sample) for c in select(pool, want, params.token_budget)}
    selected = [c for c in candidates if (c["problem_id"], c["sample"]) in chosen]
    never = [{"problem_id": p["problem_id"], "source": p["source"], "samples": p["samples"]}
             for p in problems if p["final_correct"] == 0]  # fmt: skip
    with_candidates = {c["problem_id"] for c in candidates}
    report = {
        "strategy": params.strategy, "problems": len(problems), "never_solved": len(never),
        "solved_without_a_kept_sample": sum(rate[p] > 0 and p not in with_candidates for p in rate),
        "target_samples": sum(want.values()), "candidates": len(candidates), "selected": len(selected),
        "selected_tokens": sum(c["tokens"] for c in selected), "token_budget": params.token_budget,
        "pass_rate_histogram": {"bins": 10, "before": histogram(list(rate.values())),
                                "after": histogram([rate[c["problem_id"]] for c in selected])},
    }  # fmt: skip
    return selected, never, report
