"""The methods ``sphere-ray run`` runs, chosen by ``method`` (the CLI flag, else the recipe's key, else SPHERE)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

import yaml

__all__ = ["METHODS", "config_class", "run_method"]

METHODS: dict[str, str] = {
    "sphere": "sphere_ray.pipeline.config:PipelineConfig",
    "dual_phase": "sphere_ray.pipeline.dual_phase:DualPhaseConfig",
}
"""Method name -> its pipeline config (``module:class``, imported when chosen: a wrong name errors in no time)."""


def config_class(argv: list[str]) -> type:
    """The config class of the method ``argv`` asks for (``--method``, or ``method:`` in its ``--config``).

    Raises:
        ValueError: an unknown method, or a recipe that cannot be read.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--method")
    parser.add_argument("--config")
    args, _ = parser.parse_known_args(argv)
    method = args.method
    if method is None and args.config:
        try:
            recipe = yaml.safe_load(Path(args.config).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"config: cannot read {args.config}: {e}") from e
        method = recipe.get("method") if isinstance(recipe, dict) else None
    method = method or "sphere"
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    module, name = METHODS[method].split(":")
    return getattr(importlib.import_module(module), name)


def run_method(cfg: Any) -> dict[str, Any]:
    """Run the pipeline of ``cfg``'s method; its run summary."""
    if cfg.method == "dual_phase":
        from sphere_ray.pipeline.dual_phase import run_dual_phase

        return run_dual_phase(cfg)
    from sphere_ray.pipeline.run import run_pipeline

    return run_pipeline(cfg)
