"""Ray Serve deployments for the policy, small policy and PRM, and their app builders.

Replica count, autoscaling and resources are not set here: they come from the Serve YAML in
``deployments/`` (``serve run deployments/policy.yaml``, or :func:`sphere_ray.serving.launch.deploy`).

* :class:`GenerationServer` — one model behind ``backend: vllm | transformers``. Handle API:
  ``generate(GenerateRequest) -> GenerateResponse``, ``render_chat(messages) -> str``, ``stats()``.
  HTTP (FastAPI ingress): OpenAI ``POST /v1/completions``, ``POST /v1/chat/completions``,
  ``GET /v1/models``, plus ``POST /v1/generate`` (the step API) and ``GET /v1/stats``.
* :class:`PRMServer` — one PRM family. Handle API: ``score(ScoreRequest) -> ScoreResponse``, ``stats()``;
  HTTP: ``POST /v1/score``.

Malformed requests are answered 422 (schema) or 400 (semantics) and never reach the engine.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from ray import serve
from ray.serve import Application

from sphere_ray.models.embedded import resolve_model
from sphere_ray.serving.client import ServePolicy
from sphere_ray.serving.cpus import parse_cpus, pin_to_cpus
from sphere_ray.serving.engines import build_engine
from sphere_ray.serving.meter import BusyMeter, SessionTally
from sphere_ray.serving.prm import MonteCarloPRM, build_prm
from sphere_ray.serving.schema import (
    ChatCompletionRequest,
    CompletionRequest,
    GenerateRequest,
    GenerateResponse,
    ScoreRequest,
    ScoreResponse,
)

__all__ = ["GenerationAppArgs", "GenerationServer", "PRMAppArgs", "PRMServer", "generation_app", "prm_app"]

log = logging.getLogger(__name__)


def _check_cpus(spec: str | None) -> str | None:
    if spec is not None:
        parse_cpus(spec)
    return spec


Cpus = Annotated[
    str | None,
    AfterValidator(_check_cpus),
    Field(description="CPU-only nodes: pin the replica and its engine processes to these cores, e.g. '0'"),
]


class GenerationAppArgs(BaseModel):
    """``args`` of a generation app in the Serve YAML."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., description="model folder, hub name, or the embedded default's name")
    served_model_name: str | None = Field(None, description="name reported to clients (default: model)")
    backend: Literal["vllm", "transformers", "sim"] = "vllm"
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="vLLM AsyncEngineArgs fields")
    dtype: str = Field("float32", description="transformers backend dtype")
    device: str = Field("cpu", description="transformers backend device")
    sim: dict[str, Any] = Field(default_factory=dict, description="sim backend: SimOptions fields (sphere_ray.sim)")
    cpus: Cpus = None


class PRMAppArgs(BaseModel):
    """``args`` of a PRM app in the Serve YAML."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(..., description="PRM family: qwen_prm | judge | monte_carlo | sim (simulated)")
    model: str | None = Field(None, description="PRM model (qwen_prm, judge)")
    served_model_name: str | None = None
    policy_app: str | None = Field(None, description="monte_carlo: the Serve app that rolls out")
    options: dict[str, Any] = Field(default_factory=dict, description="family-specific keyword arguments")
    cpus: Cpus = None


def _validate(model: type[BaseModel], body: Any) -> Any:
    if isinstance(body, model):
        return body
    try:
        return model.model_validate(body)
    except ValidationError as e:
        raise ValueError(f"invalid {model.__name__}: {e}") from e


# Helpers come before the deployment classes: Serve serialises a class when it is decorated.


def _gauge(name: str, description: str) -> Any:
    from ray.util.metrics import Gauge

    return Gauge(name, description=description, tag_keys=("model",))


def _counter(name: str, description: str) -> Any:
    from ray.util.metrics import Counter

    return Counter(name, description=description, tag_keys=("model",))


def _sampling(body: CompletionRequest | ChatCompletionRequest) -> dict[str, Any]:
    return body.model_dump(include={"n", "temperature", "top_p", "top_k", "max_tokens", "seed", "stop"})


def _openai(response: GenerateResponse, kind: str, body: Any) -> dict[str, Any]:
    """An OpenAI response; choices are numbered across prompts (prompt i, sample j -> i*n + j)."""
    choices, index = [], 0
    for samples in response.outputs:
        for s in samples:
            reason = "length" if s.finish_reason == "length" else "stop"
            choices.append({"index": index, **body(s), "finish_reason": reason, "stop_reason": s.finish_reason})
            index += 1
    completion = sum(s.num_tokens for ss in response.outputs for s in ss)
    usage = {"prompt_tokens": response.prompt_tokens, "completion_tokens": completion}
    usage["total_tokens"] = usage["prompt_tokens"] + completion
    usage["prompt_tokens_details"] = {"cached_tokens": response.cached_prompt_tokens}
    prefix = "cmpl" if kind == "text_completion" else "chatcmpl"
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()),
            "model": response.model, "choices": choices, "usage": usage}  # fmt: skip


api = FastAPI(title="sphere-ray generation")


@serve.deployment(name="GenerationServer")
@serve.ingress(api)
class GenerationServer:
    """A policy model: batched step sampling for the search, OpenAI completions over HTTP."""

    def __init__(self, args: dict[str, Any]) -> None:
        cfg = GenerationAppArgs.model_validate(args)
        if cfg.cpus:
            pin_to_cpus(cfg.cpus)
        self.name = cfg.served_model_name or cfg.model
        kwargs = {
            "vllm": {"engine_kwargs": cfg.engine_kwargs},
            "transformers": {"dtype": cfg.dtype, "device": cfg.device},
            "sim": {"options": cfg.sim},
        }[cfg.backend]
        model = cfg.model if cfg.backend == "sim" else resolve_model(cfg.model)  # the sim loads no weights
        self.engine = build_engine(cfg.backend, model, self.name, **kwargs)
        self.backend = cfg.backend
        self._hit_rate = _gauge("sphere_prefix_cache_hit_rate", "share of prompt tokens served from the prefix cache")
        self._tokens = _counter("sphere_generated_tokens", "tokens generated by this model")
        self.meter, self.sessions = BusyMeter(), SessionTally()

    async def generate(self, request: GenerateRequest | dict) -> GenerateResponse:
        """``n`` samples for each prompt (the search's batched step call)."""
        self.sessions.add_current()
        with self.meter.track():
            response = await self.engine.generate(_validate(GenerateRequest, request))
        stats = self.engine.stats()
        self._hit_rate.set(stats["prefix_cache_hit_rate"], tags={"model": self.name})
        tokens = sum(s.num_tokens for ss in response.outputs for s in ss)
        if tokens:  # Ray's Counter rejects 0
            self._tokens.inc(tokens, tags={"model": self.name})
        return response

    async def check_health(self) -> None:
        """Serve's health check: a dead engine makes the replica unhealthy, so Serve replaces it."""
        if hasattr(self.engine, "check_health"):
            await self.engine.check_health()

    async def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The model's chat template applied to ``messages``, ready for the answer."""
        return self.engine.render_chat(messages)

    async def stats(self) -> dict[str, float]:
        """Requests, tokens, the prefix-cache hit rate and busy time (:class:`BusyMeter`) of this replica."""
        return {**self.engine.stats(), **self.meter.snapshot(), **self.sessions.snapshot(), "backend": self.backend}

    @api.get("/v1/models")
    async def models(self) -> dict[str, Any]:
        """OpenAI model list (this one model)."""
        return {"object": "list", "data": [{"id": self.name, "object": "model", "owned_by": "sphere-ray"}]}

    @api.get("/v1/stats")
    async def http_stats(self) -> dict[str, Any]:
        """Replica statistics over HTTP."""
        return await self.stats()

    @api.post("/v1/generate")
    async def http_generate(self, body: GenerateRequest) -> GenerateResponse:
        """The batched step API over HTTP."""
        return await self.generate(body)

    @api.post("/v1/completions")
    async def completions(self, body: CompletionRequest) -> dict[str, Any]:
        """OpenAI completions (non-streaming)."""
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if any(not p for p in prompts):
            raise HTTPException(status_code=400, detail="prompt must not be empty")
        response = await self.generate(GenerateRequest(prompts=prompts, **_sampling(body)))
        return _openai(response, "text_completion", lambda s: {"text": s.text})

    @api.post("/v1/chat/completions")
    async def chat_completions(self, body: ChatCompletionRequest) -> dict[str, Any]:
        """OpenAI chat completions (non-streaming, text only)."""
        prompt = self.engine.render_chat([m.model_dump() for m in body.messages])
        response = await self.generate(GenerateRequest(prompts=[prompt], **_sampling(body)))
        return _openai(response, "chat.completion", lambda s: {"message": {"role": "assistant", "content": s.text}})


prm_api = FastAPI(title="sphere-ray PRM")


@serve.deployment(name="PRMServer")
@serve.ingress(prm_api)
class PRMServer:
    """A process reward model: batched per-step scores."""

    def __init__(self, args: dict[str, Any]) -> None:
        cfg = PRMAppArgs.model_validate(args)
        if cfg.cpus:
            pin_to_cpus(cfg.cpus)
        name = cfg.served_model_name or cfg.model or cfg.kind
        if cfg.kind == "monte_carlo":
            if not cfg.policy_app:
                raise ValueError("monte_carlo PRM needs policy_app: the Serve app to roll out with")
            policy = ServePolicy(cfg.policy_app)  # looked up on first use: the app may still be starting
            self.prm = MonteCarloPRM(policy.generate, policy.render_prompt, name=name, **cfg.options)
        else:
            if not cfg.model:
                raise ValueError(f"{cfg.kind} PRM needs model")
            model = cfg.model if cfg.kind == "sim" else resolve_model(cfg.model)
            self.prm = build_prm(cfg.kind, model=model, name=name, **cfg.options)
        self.meter, self.sessions = BusyMeter(), SessionTally()

    async def score(self, request: ScoreRequest | dict) -> ScoreResponse:
        """One score in [0, 1] per step (only the last if ``only_last``)."""
        self.sessions.add_current()
        with self.meter.track():
            return await self.prm.score(_validate(ScoreRequest, request))

    async def stats(self) -> dict[str, float]:
        """Busy time of this replica (:class:`BusyMeter`), and the family's own counters if it keeps any."""
        own = self.prm.stats() if hasattr(self.prm, "stats") else {}
        return {**own, **self.meter.snapshot(), **self.sessions.snapshot()}

    @prm_api.post("/v1/score")
    async def http_score(self, body: ScoreRequest) -> ScoreResponse:
        """Step scores over HTTP."""
        try:
            return await self.score(body)
        except ValueError as e:
            raise HTTPException(status_code=400, detail=str(e)) from e


def generation_app(args: dict[str, Any]) -> Application:
    """Serve app builder (``import_path: deployments.apps:generation_app``)."""
    GenerationAppArgs.model_validate(args)  # fail at deploy time, not in the replica
    return GenerationServer.bind(args)


def prm_app(args: dict[str, Any]) -> Application:
    """Serve app builder (``import_path: deployments.apps:prm_app``)."""
    PRMAppArgs.model_validate(args)
    return PRMServer.bind(args)
