"""The SFT data job's config (YAML recipe + CLI overrides): Phase 1 (dialogues) or Phase 2 (rejection sampling)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sphere_ray.config import option
from sphere_ray.dialogue.dialogue import DialogueParams
from sphere_ray.dialogue.filters import FilterConfig
from sphere_ray.dialogue.rejection import AllocationParams, PassRateParams
from sphere_ray.dialogue.templates import load_templates
from sphere_ray.generation.config import ProblemJobOptions

__all__ = ["SftDataJobConfig"]


@dataclass
class SftDataJobConfig(ProblemJobOptions):
    """Dual-Phase SFT data over the Serve policy, rule-filtered, to Parquet.

    ``phase: 1``: multi-turn self-verification dialogues of the base model. ``phase: 2``: difficulty-aware
    rejection sampling with pi_sft (served as ``policy_app``): one-turn samples until each problem's pass
    rate is settled, then kept samples allocated by difficulty (:mod:`sphere_ray.dialogue.rejection`).
    """

    phase: int = option(1, "1: multi-turn dialogues (base model); 2: rejection sampling with pi_sft (one turn)")
    output_dir: str = option("outputs/sft_data", "output folder or URI; a rerun resumes it", hashed=False)
    serve_configs: list[str] = field(
        default_factory=lambda: ["deployments/policy.yaml"], metadata={"help": "Serve YAML files to deploy"}
    )
    policy_app: str = option("policy", "Serve app of the model that writes the dialogues")
    samples: int = option(4, "k: first answers drawn per problem (each becomes one dialogue); phase 2: per round")
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
    judge_app: str | None = option(
        None,
        "Serve app of an LLM behaviour judge for the behaviours rule (null: the cue detector alone); "
        "a turn whose verdict does not parse falls back to the cues",
    )
    judge_max_tokens: int = option(64, "token budget of one judge verdict")
    max_samples: int = option(16, "phase 2: most samples per problem for its pass rate")
    min_samples: int = option(4, "phase 2: fewest samples before the pass rate may settle")
    settle_width: float = option(0.3, "phase 2: settled once the 95% Wilson interval of the pass rate is this narrow")
    problem_token_budget: int | None = option(
        None, "phase 2: stop sampling a problem once its samples used this many generated tokens (null: no cap)"
    )
    strategy: str = option("prop2diff", "phase 2 allocation: uniform | prop2diff (DART-Math) | band")
    per_problem: int = option(4, "phase 2: kept samples per solved problem (uniform, band; prop2diff's mean)")
    total_samples: int | None = option(None, "phase 2, prop2diff: kept samples in all (null: per_problem x solved)")
    band: list[float] = field(
        default_factory=lambda: [0.0, 1.0], metadata={"help": "phase 2, band: [low, high] pass rates kept"}
    )
    token_budget: int | None = option(None, "phase 2: most generated tokens over all kept samples (null: no cap)")
    filters: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "rule-filter settings (FilterConfig fields, e.g. {max_tokens: 4096}); "
                  "--filters '{key: value}' changes those keys and keeps the recipe's others", "merge": True},
    )  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.phase not in (1, 2):
            raise ValueError(f"phase must be 1 or 2, got {self.phase}")
        if self.judge_max_tokens < 1:
            raise ValueError(f"judge_max_tokens must be >= 1, got {self.judge_max_tokens}")
        self.pass_rate_params()
        self.allocation_params()
        self.dialogue_params()
        self.filter_config()
        load_templates(self.templates, self.behaviours)  # a bad pool fails before any model call

    def dialogue_params(self) -> DialogueParams:
        """The dialogue's sampling (raises ``ValueError`` naming a bad field)."""
        if not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        return DialogueParams(self.samples, self.max_turns, self.temperature, self.top_p, self.max_tokens, self.seed)

    def pass_rate_params(self) -> PassRateParams:
        """Phase 2's stopping rule (raises ``ValueError`` naming a bad field)."""
        return PassRateParams(self.max_samples, self.min_samples, self.settle_width, self.problem_token_budget)

    def allocation_params(self) -> AllocationParams:
        """Phase 2's allocation (raises ``ValueError`` naming a bad field)."""
        band = tuple(self.band)
        return AllocationParams(self.strategy, self.per_problem, self.total_samples, band, self.token_budget)

    def filter_config(self) -> FilterConfig:
        """The rule filters (``filters`` merged over :class:`FilterConfig`'s defaults)."""
        try:
            return FilterConfig(**self.filters)
        except TypeError as e:
            raise ValueError(f"filters: {e}; fields: {list(FilterConfig.__dataclass_fields__)}") from e
