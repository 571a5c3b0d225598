"""The generation job's config (YAML recipe + CLI overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sphere_ray.config import option
from sphere_ray.models.embedded import EMBEDDED_NAME as EMBEDDED
from sphere_ray.search import SearchParams, SphereParams
from sphere_ray.search.prompts import CORRECTION_TEMPLATE, SOLVE_TEMPLATE

__all__ = ["GenerateJobConfig", "ProblemJobOptions", "SearchOptions"]

_MODES = ("serve", "inprocess")
_DTYPES = ("float32", "bfloat16", "float16")
_SERVE_DEFAULT = ["deployments/policy.yaml", "deployments/small_policy.yaml", "deployments/prm.yaml"]


@dataclass
class ProblemJobOptions:
    """Fields of every job that works problem by problem over Serve apps with Ray Data (generation, SFT data)."""

    problems: str = option("gsm8k_train_sample", "bundled set name, or a .jsonl/.parquet path or URI (s3://...)")
    limit: int | None = option(None, "use at most this many problems (null: all)")
    output_dir: str = option("outputs/generate", "output folder or URI; a rerun resumes it", hashed=False)
    start_serve: bool = option(True, "deploy the Serve apps from serve_configs (false: use running apps)")
    serve_configs: list[str] = field(default_factory=list, metadata={"help": "Serve YAML files to deploy"})
    serve_overrides: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "per-app args overrides, e.g. {policy: {model: ...}}", "hashed": True}
    )
    serve_timeout_s: float = option(1200.0, "how long to wait for the Serve apps to be RUNNING")
    sim: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "run every deployed app (with models: inprocess, the actors' models) on the simulated "
                          "engine with these SimOptions, e.g. {compression: 100} (null: the real engines)",
                 "hashed": True},
    )  # fmt: skip
    num_actors: int = option(1, "Ray Data search actors")
    problems_in_flight: int = option(8, "problems one actor searches at once")
    ramp_up_s: float = option(
        0.0,
        "seconds over which an actor starts its first problems_in_flight problems (0: all at once; a ramp "
        "keeps their model calls from arriving in lockstep waves that leave one model idle)",
        hashed=False,
    )
    affinity: bool = option(
        True,
        "send each problem's model calls with its id as Serve session id: deployments with Serve's "
        "AffinityRouter (deployments/gpu.yaml) then keep one problem's tree on one replica's prefix cache",
        hashed=False,
    )
    actor_num_cpus: float = option(0.25, "CPUs reserved per search actor (it mostly waits on the models)")
    problem_retries: int = option(2, "extra attempts for a problem whose search fails")
    problem_retry_delay_s: float = option(30.0, "wait before a problem's next attempt, times the attempt number")
    call_timeout_s: float = option(600.0, "timeout of one model call")
    call_retries: int = option(3, "retries of one model call on replica failure or timeout")
    queue_part_rows: int = option(
        64, "problems per staged queue part (one Ray Data block when streamed; results commit a part at a time)"
    )
    stream_above: int = option(
        1024,
        "with more problems to search than this, Ray Data streams the staged queue from Parquet (driver memory "
        "O(in flight)); with fewer, each problem is its own in-memory block (finest load balance)",
    )
    commit_every: int = option(16, "commit results every this many problems")
    commit_every_s: float = option(60.0, "... or after this many seconds")
    progress_every_s: float = option(10.0, "seconds between progress lines", hashed=False)
    ray_address: str | None = option(
        None, "Ray cluster address (null: the job's cluster or a new local one)", hashed=False
    )
    ray_log_to_driver: bool = option(False, "stream worker logs to the console", hashed=False)
    log_level: str = option("INFO", "logging level", hashed=False)

    def __post_init__(self) -> None:
        for name in ("num_actors", "problems_in_flight", "commit_every", "queue_part_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stream_above < 0:
            raise ValueError(f"stream_above must be >= 0, got {self.stream_above}")
        for name in ("problem_retries", "call_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("problem_retry_delay_s", "ramp_up_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("call_timeout_s", "serve_timeout_s", "commit_every_s", "actor_num_cpus"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 or null, got {self.limit}")
        if self.sim is not None:
            from pydantic import ValidationError

            from sphere_ray.sim.engine import SimOptions

            try:
                SimOptions.model_validate(self.sim)
            except ValidationError as e:
                raise ValueError(f"sim: {e.errors()[0]['loc']} {e.errors()[0]['msg']}") from e
        if self.start_serve and not self.serve_configs:
            raise ValueError("serve_configs must name at least one YAML file when start_serve is true")


@dataclass
class SearchOptions:
    """Fields of :class:`~sphere_ray.search.SphereParams`, flat, for YAML recipes and the CLI."""

    num_candidates: int = option(5, "E: candidate steps per expansion (paper: 5)")
    small_num_candidates: int = option(0, "candidates per expansion for the small policy; 0 means 2E")
    small_temperature: float | None = option(
        None, "the small policy's (stage 3's) sampling temperature; null: the search's temperature"
    )
    temperature: float = option(0.8, "sampling temperature of the step candidates (paper: 0.8)")
    max_depth: int = option(6, "the most steps one solution may have")
    max_step_tokens: int = option(128, "token budget of one step")
    seed: int = option(0, "base seed of the search")
    solve_template: str = option(SOLVE_TEMPLATE, "user turn for stages 1 and 3; must contain {problem}")
    correction_template: str = option(CORRECTION_TEMPLATE, "user turn for stage 2; {problem} and {solution}")
    reference_fallback: bool = option(
        False, "not in the paper: when self-correction fails, pair the problem's reference solution vs Sol_max"
    )
    answer_prefix: str = option(
        "",
        "not in the paper (empty: off): a branch that stops without a final answer gets one more expansion "
        "whose candidates continue this text, e.g. 'The final answer is \\boxed{' (answer forcing)",
    )

    def __post_init__(self) -> None:
        self.sphere_params()  # SearchParams/SphereParams raise ValueError naming the field

    def sphere_params(self) -> SphereParams:
        """The search parameters these fields describe."""
        search = SearchParams(
            self.num_candidates,
            self.temperature,
            self.max_depth,
            self.max_step_tokens,
            self.seed,
            answer_prefix=self.answer_prefix,
        )
        return SphereParams(
            search,
            self.small_num_candidates,
            self.small_temperature,
            self.solve_template,
            self.correction_template,
            self.reference_fallback,
        )


@dataclass
class GenerateJobConfig(SearchOptions, ProblemJobOptions):
    """SPHERE preference-pair generation: Ray Data over Serve apps, pairs/trees/rejects to Parquet."""

    serve_configs: list[str] = field(
        default_factory=lambda: list(_SERVE_DEFAULT), metadata={"help": "Serve YAML files to deploy", "hashed": True}
    )
    policy_app: str = option("policy", "Serve app of the policy")
    small_policy_app: str | None = option("small_policy", "Serve app of the small policy (stage 3); null skips")
    prm_app: str = option("prm", "Serve app of the PRM")
    models: str = option(
        "serve",
        "serve: the models are the Serve apps above (vLLM replicas); inprocess: each search actor loads "
        "policy_model, small_policy_model and prm_model with transformers, or simulates them when sim is set "
        "(development: no Serve, no vLLM; start_serve is then ignored)",
    )
    policy_model: str = option(EMBEDDED, "inprocess: the policy (model folder, hub name or the embedded default)")
    small_policy_model: str | None = option(EMBEDDED, "inprocess: the stage-3 small policy; null skips stage 3")
    prm_model: str = option(EMBEDDED, "inprocess: the LLM-as-judge PRM's model")
    dtype: str = option("float32", "inprocess: model dtype, float32 (CPU), bfloat16 or float16 (GPU)")
    device: str = option("cpu", "inprocess: torch device (cpu, cuda, cuda:1, ...)")

    def __post_init__(self) -> None:
        if self.models not in _MODES:
            raise ValueError(f"models must be one of {_MODES}, got {self.models!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        for name in ("policy_model", "prm_model"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if self.models == "inprocess":
            self.start_serve = False  # nothing to deploy
        ProblemJobOptions.__post_init__(self)
        SearchOptions.__post_init__(self)

    def inprocess_models(self) -> dict[str, Any] | None:
        """The in-process models' settings for the search actors (None in ``serve`` mode)."""
        if self.models != "inprocess":
            return None
        return {"policy": self.policy_model, "small_policy": self.small_policy_model, "prm": self.prm_model,
                "dtype": self.dtype, "device": self.device, "sim": self.sim}  # fmt: skip
