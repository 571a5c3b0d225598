"""The Phase-1 SFT data job's config (YAML recipe + CLI overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sphere_ray.config import option
from sphere_ray.dialogue.dialogue import DialogueParams
from sphere_ray.dialogue.filters import FilterConfig
from sphere_ray.dialogue.templates import load_templates
from sphere_ray.generation.config import ProblemJobOptions

__all__ = ["SftDataJobConfig"]


@dataclass
class SftDataJobConfig(ProblemJobOptions):
    """Dual-Phase SFT data: multi-turn self-verification dialogues over the Serve policy, rule-filtered, to Parquet."""

    output_dir: str = option("outputs/sft_data", "output folder or URI; a rerun resumes it", hashed=False)
    serve_configs: list[str] = field(
        default_factory=lambda: ["deployments/policy.yaml"], metadata={"help": "Serve YAML files to deploy"}
    )
    policy_app: str = option("policy", "Serve app of the model that writes the dialogues")
    samples: int = option(4, "k: first answers drawn per problem (each becomes one dialogue)")
    max_turns: int = option(2, "most turns per dialogue; after turn 2 one continues only while its answer changes")
    temperature: float = option(0.8, "sampling temperature of every turn")
    top_p: float = option(1.0, "nucleus sampling of every turn")
    max_tokens: int = option(1024, "token budget of one turn")
    seed: int = option(0, "base seed (each problem and turn derives its own)")
    templates: str | None = option(None, "template pool YAML (null: the bundled sphere_ray/dialogue/templates.yaml)")
    behaviours: list[str] | None = field(
        default=None, metadata={"help": "use only the templates of these behaviours (null: all four)"}
    )
    system_prompt: str | None = option(None, "system message recorded in the conversational rows (null: none)")
    filters: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "rule-filter settings (FilterConfig fields, e.g. {max_tokens: 4096}); "
                  "--filters '{key: value}' changes those keys and keeps the recipe's others", "merge": True},
    )  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        self.dialogue_params()
        self.filter_config()
        load_templates(self.templates, self.behaviours)  # a bad pool fails before any model call

    def dialogue_params(self) -> DialogueParams:
        """The dialogue's sampling (raises ``ValueError`` naming a bad field)."""
        if not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        return DialogueParams(self.samples, self.max_turns, self.temperature, self.top_p, self.max_tokens, self.seed)

    def filter_config(self) -> FilterConfig:
        """The rule filters (``filters`` merged over :class:`FilterConfig`'s defaults)."""
        try:
            return FilterConfig(**self.filters)
        except TypeError as e:
            raise ValueError(f"filters: {e}; fields: {list(FilterConfig.__dataclass_fields__)}") from e
