"""The SPHERE search core: pure Python, no Ray, no vLLM.

Models come in through the protocols of :mod:`sphere_ray.search.types`, so scripted fakes can drive
golden tests and Serve clients drive production runs.
"""

from sphere_ray.search.pruned import pruned_search, step_reward
from sphere_ray.search.sphere import PreferencePair, ProblemResult, SphereParams, default_orm, sphere_search
from sphere_ray.search.tree import Node, SearchTree, Solution
from sphere_ray.search.types import (
    STEP_SEPARATOR,
    Counters,
    Models,
    OutcomeReward,
    Policy,
    PrmRequest,
    Problem,
    ProcessRewardModel,
    SearchParams,
    StepRequest,
    StepSample,
)

__all__ = [
    "STEP_SEPARATOR",
    "Counters",
    "Models",
    "Node",
    "OutcomeReward",
    "Policy",
    "PreferencePair",
    "PrmRequest",
    "Problem",
    "ProblemResult",
    "ProcessRewardModel",
    "SearchParams",
    "SearchTree",
    "Solution",
    "SphereParams",
    "StepRequest",
    "StepSample",
    "default_orm",
    "pruned_search",
    "sphere_search",
    "step_reward",
]
