"""The generation job's ``models: inprocess`` mode: a search actor's own transformers models, no Serve.

For development and small machines: each Ray Data search actor loads the policy, the small policy and the
LLM-as-judge PRM with transformers (:class:`~sphere_ray.serving.engines.HFEngine`), and the search calls them
in process. The outputs, resume and summary are the generation job's, as in ``serve`` mode.
"""

from __future__ import annotations

from typing import Any

from sphere_ray.search import Models

__all__ = ["build_inprocess_models"]


def build_inprocess_models(policy: str, small_policy: str | None, prm: str, dtype: str, device: str) -> Models:
    """Load the models in this process; a model named twice (policy = small policy) is loaded once.

    Args:
        policy: the policy: a model folder, hub name or the embedded default's name.
        small_policy: the stage-3 small policy, or None to skip stage 3.
        prm: the LLM-as-judge PRM's model.
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        device: torch device.
    """
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
