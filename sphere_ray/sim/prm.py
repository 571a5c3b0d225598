"""The simulated PRM (``kind: sim``): scores from :func:`sphere_ray.sim.text.prm_score`, timed like a pooling model.

Every scored prefix is one prefill through the replica's :class:`~sphere_ray.sim.engine.SimScheduler`
(a judge or pooling PRM reads the whole prefix and emits one value), so sibling candidates that share
their question and earlier steps hit the prefix cache as they do on vLLM.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sphere_ray.search.types import STEP_SEPARATOR
from sphere_ray.serving.prm import prefix_ends, register_prm
from sphere_ray.serving.schema import ScoreRequest, ScoreResponse
from sphere_ray.sim.calibration import step_model
from sphere_ray.sim.engine import SimOptions, SimScheduler
from sphere_ray.sim.text import prm_score

__all__ = ["SimPRM"]


@register_prm("sim")
class SimPRM:
    """Simulated PRM with the ``score`` API of the real families.

    Args:
        model: the PRM it stands in for (calibration row).
        name: name reported in responses.
        noise: chance a final step's verdict is flipped.
        **options: :class:`~sphere_ray.sim.engine.SimOptions` fields.
    """

    def __init__(self, model: str = "Qwen/Qwen2.5-Math-PRM-7B", name: str = "sim", noise: float = 0.1,
                 **options: Any) -> None:  # fmt: skip
        opts = SimOptions.model_validate(options)
        self.name, self.noise = name, noise
        self.scheduler = SimScheduler(step_model(model, opts.device, opts.kv_fraction), opts)

    async def score(self, request: ScoreRequest) -> ScoreResponse:
        """One simulated score per requested prefix, all prefills batched together."""
        jobs = [(i, item, end) for i, item in enumerate(request.items) for end in prefix_ends(item)]
        texts = [f"Problem: {item.question}\n\n" + STEP_SEPARATOR.join(item.steps[:end]) for _, item, end in jobs]
        await asyncio.gather(*(self.scheduler.run(t, [1]) for t in texts))
        scores: list[list[float]] = [[] for _ in request.items]
        for i, item, end in jobs:
            scores[i].append(prm_score(item.question, list(item.steps[:end]), self.noise))
        return ScoreResponse(scores=scores, model=self.name)

    def stats(self) -> dict[str, float]:
        """Simulated seconds spent scoring."""
        return {"sim_seconds": self.scheduler.sim_seconds}
