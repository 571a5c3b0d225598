"""The whole loop's config: one recipe with a section per stage (each section is that job's config fields)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sphere_ray.config import option, section
from sphere_ray.evaluation.config import EvalJobConfig
from sphere_ray.generation.config import GenerateJobConfig
from sphere_ray.training.config import DPOJobConfig

__all__ = ["PipelineConfig", "build_section"]


@dataclass
class PipelineConfig:
    """SPHERE end to end: serve -> generate pairs -> DPO -> evaluate base vs trained -> report (K rounds)."""

    method: str = option("sphere", "sphere (this pipeline) or dual_phase (recipes/dual_phase_*.yaml)")
    output_dir: str = option("outputs/run", "run folder: round-<k>/{generate,dpo}/, eval/, report/", hashed=False)
    rounds: int = option(1, "generate -> train rounds; round k+1 generates with round k's trained model")
    base_model: str = option("smollm2-135m-instruct", "round 1's policy, and 'base' in the final evaluation")
    generate: dict[str, Any] = section("GenerateJobConfig fields (output_dir and the policy model are set per round)")
    train: dict[str, Any] = section("DPOJobConfig fields (model, pairs and output_dir are set per round)")
    evaluate: dict[str, Any] = section("EvalJobConfig fields (models = base and the last round's model)")
    reuse_policy_app: bool = option(
        False,
        "keep the last round's policy app up through training and evaluate the trained model on it, its weights "
        "swapped in place (no second deploy); for CPU or spare GPUs: training must fit beside the idle replica",
    )
    ray_address: str | None = option(None, "Ray cluster address (null: the job's cluster or a new local one)")
    log_level: str = option("INFO", "logging level", hashed=False)

    def __post_init__(self) -> None:
        if self.method != "sphere":
            raise ValueError(f"method must be sphere for this config, got {self.method!r}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        for name in ("generate", "train", "evaluate"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping of that job's fields")
        try:  # every section must make a valid job config (errors name the section and the field)
            if not self.generate_config(1, self.base_model).start_serve and self.rounds > 1:
                raise ValueError("generate: rounds > 1 needs start_serve: true (each round serves its new policy)")
            self.train_config(1, self.base_model)
            self.eval_config(self.base_model)
        except (TypeError, ValueError) as e:
            raise ValueError(f"invalid pipeline section: {e}") from e

    def round_dir(self, k: int) -> Path:
        """The folder of round ``k``."""
        return Path(self.output_dir) / f"round-{k}"

    def generate_config(self, k: int, policy: str) -> GenerateJobConfig:
        """Round ``k``'s generation job, its policy app serving ``policy``."""
        overrides = dict(self.generate.get("serve_overrides") or {})
        policy_app = self.generate.get("policy_app", "policy")
        overrides[policy_app] = {**overrides.get(policy_app, {}), "model": policy}
        values = {**self.generate, "output_dir": str(self.round_dir(k) / "generate"), "serve_overrides": overrides}
        return build_section(GenerateJobConfig, "generate", values)

    def train_config(self, k: int, policy: str) -> DPOJobConfig:
        """Round ``k``'s DPO job on that round's pairs, starting from ``policy``."""
        pairs = str(self.round_dir(k) / "generate" / "pairs")
        values = {**self.train, "model": policy, "pairs": pairs, "output_dir": str(self.round_dir(k) / "dpo")}
        return build_section(DPOJobConfig, "train", values)

    def eval_config(
        self, trained: str | None, apps: dict[str, str] | None = None, swap_weights: bool = False
    ) -> EvalJobConfig:
        """The evaluation of the base model and (when there is one) the trained model.

        ``apps`` (model name -> running Serve app): evaluate on those apps instead of deploying;
        ``swap_weights``: load each model's weights into its app first (the models share one app: the running
        one in ``apps``, or else one app the evaluation deploys for the base model).
        """
        models = [{"name": "base", "model": self.base_model}]
        if trained:
            models.append({"name": "trained", "model": trained})
        values = {**self.evaluate, "models": models, "output_dir": str(Path(self.output_dir) / "eval"),
                  "swap_weights": swap_weights}  # fmt: skip
        if apps:
            values.update(start_serve=False, apps=apps)
        return build_section(EvalJobConfig, "evaluate", values)


def build_section(cls: type, section: str, values: dict[str, Any]) -> Any:
    """``cls(**values)``; an error names ``section`` before the field."""
    try:
        return cls(**values)
    except TypeError as e:
        raise ValueError(f"{section}: {e}") from e
    except ValueError as e:
        raise ValueError(f"{section}: {e}") from e
