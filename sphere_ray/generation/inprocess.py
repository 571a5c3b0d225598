"""The generation job's ``models: inprocess`` mode: a search actor's own transformers models, no Serve.

For development and small machines: each Ray Data search actor loads the policy, the small policy and the
LLM-as-judge PRM with transformers (:class:`~sphere_ray.serving.engines.HFEngine`), and the search calls them
in process. With the job's ``sim`` options set, the actor runs the simulated engine and PRM instead
(:mod:`sphere_ray.sim`, one simulated replica per actor): the driver and Ray Data side of a run at a
scale Serve round trips would make too slow on a small machine. The outputs, resume and summary are the
generation job's, as in ``serve`` mode.
"""

from __future__ import annotations

from typing import Any

from sphere_ray.search import Models

__all__ = ["build_inprocess_models"]


def build_inprocess_models(
    policy: str, small_policy: str | None, prm: str, dtype: str, device: str, sim: dict[str, Any] | None = None
) -> Models:
    """Load the models in this process; a model named twice (policy = small policy) is loaded once.

    Args:
        policy: the policy: a model folder, hub name or the embedded default's name.
        small_policy: the stage-3 small policy, or None to skip stage 3.
        prm: the LLM-as-judge PRM's model.
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        device: torch device.
        sim: :class:`~sphere_ray.sim.engine.SimOptions` fields to simulate the three models (the names then
            pick calibration rows; nothing is loaded), or None for the real models.
    """
    if sim is not None:
        return _sim_models(policy, small_policy, prm, sim)
    from sphere_ray.models.embedded import resolve_model
    from sphere_ray.serving.client import EnginePolicy, EnginePRM
    from sphere_ray.serving.engines import HFEngine
    from sphere_ray.serving.prm import JudgePRM

    def load(model: str) -> Any:
        return EnginePolicy(HFEngine(resolve_model(model), model, dtype, device))

    main = load(policy)
    small = None
    if small_policy:
        small = main if small_policy == policy else load(small_policy)
    judge = JudgePRM(resolve_model(prm), f"judge:{prm}", dtype=dtype, device=device)
    return Models(policy=main, prm=EnginePRM(judge), small_policy=small)


def _sim_models(policy: str, small_policy: str | None, prm: str, sim: dict[str, Any]) -> Models:
    from sphere_ray.serving.client import EnginePolicy, EnginePRM
    from sphere_ray.sim.engine import SimEngine
    from sphere_ray.sim.prm import SimPRM

    main = EnginePolicy(SimEngine(policy, policy, sim))
    small = None
    if small_policy:
        small = main if small_policy == policy else EnginePolicy(SimEngine(small_policy, small_policy, sim))
    return Models(policy=main, prm=EnginePRM(SimPRM(prm, f"sim:{prm}", **sim)), small_policy=small)
