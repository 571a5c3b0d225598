"""Search knobs shared by every job config that runs the SPHERE search (a dataclass base)."""

from __future__ import annotations

from dataclasses import dataclass

from sphere_ray.config import option
from sphere_ray.search import SearchParams, SphereParams
from sphere_ray.search.prompts import CORRECTION_TEMPLATE, SOLVE_TEMPLATE

__all__ = ["SearchOptions"]


@dataclass
class SearchOptions:
    """Fields of :class:`~sphere_ray.search.SphereParams`, flat, for YAML recipes and the CLI."""

    num_candidates: int = option(5, "E: candidate steps per expansion (paper: 5)")
    small_num_candidates: int = option(0, "candidates per expansion for the small policy; 0 means 2E")
    temperature: float = option(0.8, "sampling temperature of the step candidates (paper: 0.8)")
    max_depth: int = option(6, "the most steps one solution may have")
    max_step_tokens: int = option(128, "token budget of one step")
    seed: int = option(0, "base seed of the search")
    solve_template: str = option(SOLVE_TEMPLATE, "user turn for stages 1 and 3; must contain {problem}")
    correction_template: str = option(CORRECTION_TEMPLATE, "user turn for stage 2; {problem} and {solution}")
    reference_fallback: bool = option(
        False, "not in the paper: when self-correction fails, pair the problem's reference solution vs Sol_max"
    )

    def __post_init__(self) -> None:
        self.sphere_params()  # SearchParams/SphereParams raise ValueError naming the field

    def sphere_params(self) -> SphereParams:
        """The search parameters these fields describe."""
        search = SearchParams(self.num_candidates, self.temperature, self.max_depth, self.max_step_tokens, self.seed)
        return SphereParams(
            search, self.small_num_candidates, self.solve_template, self.correction_template, self.reference_fallback
        )
