"""The evaluation job's config (YAML recipe + CLI overrides)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sphere_ray.config import option
from sphere_ray.problems import BUNDLED

__all__ = ["BENCHMARKS", "EvalJobConfig", "ModelSpec"]

BENCHMARKS = ["gsm8k_test", "math500", "aime24", "amc23", "olympiadbench"]
"""The paper's five benchmarks, bundled in ``sphere_ray/data``."""


@dataclass(frozen=True)
class ModelSpec:
    """One model to evaluate: ``name`` (a label), ``model`` (name/folder/hub id), optional LoRA ``adapter``."""

    name: str
    model: str
    adapter: str | None = None


@dataclass
class EvalJobConfig:
    """Pass@1 and self-correction accuracy of one or more models on the math benchmarks, over Serve + Ray Data."""

    models: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "base", "model": "smollm2-135m-instruct"}],
        metadata={
            "help": "models: [{name, model, adapter?}]; each later one is compared with the first",
            "hashed": True,
        },
    )
    benchmarks: list[str] = field(
        default_factory=lambda: list(BENCHMARKS),
        metadata={"help": f"bundled sets ({sorted(BUNDLED)}) or .jsonl/.parquet paths", "hashed": True},
    )
    limit: int | None = option(None, "first N problems of each benchmark (null: all)")
    samples: int = option(1, "samples per problem; > 1 adds pass@k and maj@k (k = samples)")
    temperature: float = option(0.1, "sampling temperature (paper: 0.1)")
    top_p: float = option(1.0, "top_p (paper: 1.0)")
    top_k: int = option(50, "top_k (paper: 50)")
    max_tokens: int = option(1024, "max new tokens per answer")
    seed: int = option(0, "base sampling seed (problem i uses seed + i)")
    self_correction: bool = option(True, "after answering, ask the model to review and fix its solution")
    start_serve: bool = option(True, "deploy each model from serve_template (false: use the running apps in `apps`)")
    serve_template: str = option("deployments/policy.yaml", "Serve YAML whose app `serve_app` is copied per model")
    serve_app: str = option("policy", "the app of serve_template to copy")
    apps: dict[str, str] = field(
        default_factory=dict, metadata={"help": "model name -> running Serve app (start_serve: false)", "hashed": False}
    )
    swap_weights: bool = option(
        False,
        "load each model's weights into the app before evaluating it (Serve user_config; the engine reloads in "
        "place, no new replica; the models must share one architecture): start_serve false: into its running app "
        "in `apps`; start_serve true: one app (eval-models) is deployed for the first model and reused",
        hashed=False,
    )
    serve_timeout_s: float = option(1200.0, "how long to wait for an app to be RUNNING", hashed=False)
    num_actors: int = option(1, "Ray Data eval actors")
    progress_every_s: float = option(30.0, "seconds between progress lines", hashed=False)
    calls_in_flight: int = option(4, "batched calls one actor keeps in flight")
    bootstrap: int = option(1000, "bootstrap resamples for the 95% interval of a difference")
    resume: bool = option(
        True, "reuse the rows of a model already evaluated in output_dir with the same model and settings", hashed=False
    )
    output_dir: str = option("outputs/eval", "output folder", hashed=False)
    ray_address: str | None = option(None, "Ray cluster address (null: the job's cluster or a new local one)")
    log_level: str = option("INFO", "logging level", hashed=False)

    def __post_init__(self) -> None:
        specs = self.model_specs()
        if not specs:
            raise ValueError("models must list at least one model")
        if len({s.name for s in specs}) != len(specs):
            raise ValueError(f"models: names must be unique, got {[s.name for s in specs]}")
        if not self.benchmarks:
            raise ValueError("benchmarks must name at least one benchmark")
        if self.progress_every_s <= 0:
            raise ValueError(f"progress_every_s must be > 0, got {self.progress_every_s}")
        for name in ("samples", "max_tokens", "num_actors", "calls_in_flight", "bootstrap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 or null, got {self.limit}")
        if not 0 <= self.temperature <= 5 or not 0 < self.top_p <= 1:
            raise ValueError(f"temperature must be in [0, 5] and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        if not self.start_serve and (missing := [s.name for s in specs if s.name not in self.apps]):
            raise ValueError(f"apps: start_serve is false but no running app is named for {missing}")

    def model_specs(self) -> list[ModelSpec]:
        """The ``models`` entries, checked.

        Raises:
            ValueError: an entry is not a mapping with ``name`` and ``model`` (and optionally ``adapter``).
        """
        specs = []
        for i, m in enumerate(self.models):
            if not isinstance(m, dict) or not {"name", "model"} <= set(m) or set(m) - {"name", "model", "adapter"}:
                raise ValueError(f"models[{i}] must be {{name, model, adapter?}}, got {m!r}")
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", str(m["name"])):
                raise ValueError(f"models[{i}].name must be 1-64 of [A-Za-z0-9_.-], got {m['name']!r}")
            specs.append(ModelSpec(str(m["name"]), str(m["model"]), m.get("adapter")))
        return specs
