"""Ray Serve deployments for the policy, small policy and PRM, and their app builders.

Replica count, autoscaling and resources are not set here: they come from the Serve YAML in
``deployments/`` (``serve run deployments/policy.yaml``, or :func:`sphere_ray.serving.launch.deploy`).

* :class:`GenerationServer` — one model behind ``backend: vllm | transformers | sim``. Handle API:
  ``generate(GenerateRequest) -> GenerateResponse``, ``render_chat(messages) -> str``, ``stats()``.
  HTTP (FastAPI ingress): OpenAI ``POST /v1/completions``, ``POST /v1/chat/completions`` (both also with
  ``stream: true``, :mod:`.openai_api`), ``GET /v1/models``, plus ``POST /v1/generate`` (the step API) and
  ``GET /v1/stats``.
* :class:`PRMServer` — one PRM family. Handle API: ``score(ScoreRequest) -> ScoreResponse``, ``stats()``;
  HTTP: ``POST /v1/score``.

Malformed requests are answered 422 (schema) or 400 (semantics), requests over the app's ``limits`` 400
(413 for the body), and a request without the API key (when one is configured) 401 (:mod:`.guard`); none
of them reaches the engine.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from ray import serve
from ray.serve import Application
from starlette.exceptions import HTTPException as StarletteHTTPException

from sphere_ray.models.embedded import resolve_model
from sphere_ray.serving import openai_api
from sphere_ray.serving.client import ServePolicy
from sphere_ray.serving.cpus import parse_cpus, pin_to_cpus
from sphere_ray.serving.engines import build_engine, stream_whole
from sphere_ray.serving.guard import (
    BodyLimit,
    LimitExceededError,
    RequestLimits,
    check_generate,
    check_score,
    configure,
    error_response,
    require_key,
    resolve_key,
)
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

__all__ = [
    "GenerationAppArgs",
    "GenerationServer",
    "PRMAppArgs",
    "PRMServer",
    "WeightsConfig",
    "generation_app",
    "prm_app",
]

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


class ServiceArgs(BaseModel):
    """``args`` every app takes: its API key (where to read it) and its request limits (:mod:`.guard`)."""

    model_config = ConfigDict(extra="forbid")
    api_key_env: str = Field("SPHERE_RAY_API_KEY", description="environment variable holding the API key")
    api_key_file: str | None = Field(None, description="secret file holding the API key (never the key itself)")
    require_api_key: bool = Field(False, description="refuse to start without a key (set when HTTP is exposed)")
    limits: RequestLimits = Field(default_factory=RequestLimits, description="bounds on one request")

    def secure(self) -> None:
        """Set this replica's key and limits (raises ``ValueError`` if a required key is missing)."""
        configure(resolve_key(self.api_key_env, self.api_key_file, self.require_api_key), self.limits)


class GenerationAppArgs(ServiceArgs):
    """``args`` of a generation app in the Serve YAML."""

    model: str = Field(..., description="model folder, hub name, or the embedded default's name")
    served_model_name: str | None = Field(None, description="name reported to clients (default: model)")
    backend: Literal["vllm", "transformers", "sim"] = "vllm"
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="vLLM AsyncEngineArgs fields")
    dtype: str = Field("float32", description="transformers backend dtype")
    device: str = Field("cpu", description="transformers backend device")
    sim: dict[str, Any] = Field(default_factory=dict, description="sim backend: SimOptions fields (sphere_ray.sim)")
    cpus: Cpus = None


class WeightsConfig(BaseModel):
    """A generation app's ``user_config``: which weights its running engines serve (see ``reconfigure``)."""

    model_config = ConfigDict(extra="forbid")
    weights: str | None = Field(None, description="model folder or name of the app's architecture (null: `model`)")
    served_model_name: str | None = Field(None, description="name reported while these weights are served")


class PRMAppArgs(ServiceArgs):
    """``args`` of a PRM app in the Serve YAML."""

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


def _guarded(title: str) -> FastAPI:
    """A FastAPI app behind the guard: the key on every route (no open docs routes), the body limit, 400/413.

    Errors answer with FastAPI's ``detail`` and OpenAI's ``error`` object, so OpenAI clients show the message.
    """
    app = FastAPI(title=title, dependencies=[Depends(require_key)], docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit)

    @app.exception_handler(LimitExceededError)
    async def _over_limit(request: Request, exc: LimitExceededError) -> JSONResponse:
        return error_response(exc.status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, exc.detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors())
        message = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in errors)
        return error_response(422, errors, message=message)

    return app


api = _guarded("sphere-ray generation")


@serve.deployment(name="GenerationServer")
@serve.ingress(api)
class GenerationServer:
    """A policy model: batched step sampling for the search, OpenAI completions over HTTP."""

    def __init__(self, args: dict[str, Any]) -> None:
        cfg = GenerationAppArgs.model_validate(args)
        cfg.secure()
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
        self._own_model, self._own_name, self._loaded = cfg.model, self.name, model  # what reconfigure returns to
        self._hit_rate = _gauge("sphere_prefix_cache_hit_rate", "share of prompt tokens served from the prefix cache")
        self._tokens = _counter("sphere_generated_tokens", "tokens generated by this model")
        self.meter, self.sessions = BusyMeter(), SessionTally()

    async def generate(self, request: GenerateRequest | dict) -> GenerateResponse:
        """``n`` samples for each prompt (the search's batched step call)."""
        self.sessions.add_current()
        request = _validate(GenerateRequest, request)
        check_generate(request.prompts, request.n, request.max_tokens)
        with self.meter.track():
            response = await self.engine.generate(request)
        stats = self.engine.stats()
        self._hit_rate.set(stats["prefix_cache_hit_rate"], tags={"model": self.name})
        tokens = sum(s.num_tokens for ss in response.outputs for s in ss)
        if tokens:  # Ray's Counter rejects 0
            self._tokens.inc(tokens, tags={"model": self.name})
        return response

    async def verdicts(self, prompts: list[str], yes: list[int], no: list[int]) -> list[float]:
        """P(yes) / (P(yes) + P(no)) of each prompt's next token: this model as the judge PRM (``engine: app``).

        Raises:
            ValueError: the backend cannot judge (the simulated engine), or the token ids are empty.
        """
        check_generate(prompts, 1, 1)
        if not yes or not no:
            raise ValueError("verdicts need at least one yes and one no token id")
        if not hasattr(self.engine, "verdicts"):
            raise ValueError(f"backend {self.backend} cannot judge: use the judge PRM's own engine")
        self.sessions.add_current()
        with self.meter.track():
            return await self.engine.verdicts(list(prompts), list(yes), list(no))

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Serve's ``user_config`` hook (:class:`WeightsConfig`): serve other weights without a new replica.

        Serve calls it on every replica, in place, when only the app's ``user_config`` changes
        (:func:`sphere_ray.serving.launch.swap_weights`), and on each replica it starts later, so an
        autoscaled replica serves the same weights. The engine reloads the weights (vLLM ``reload_weights``,
        under a second for a 135M model on CPU, against ~45 s for a new engine) and drops its prefix cache.

        Raises:
            ValueError: a bad ``user_config``, or weights this replica cannot load.
        """
        cfg = _validate(WeightsConfig, config or {})
        target = cfg.weights or self._own_model
        path = target if self.backend == "sim" else resolve_model(target)
        if path != self._loaded:
            try:
                await self.engine.load_weights(path)
            except Exception as e:  # a wrong architecture or a missing folder: the deploy fails with this message
                raise ValueError(f"user_config.weights {target!r}: cannot load into this app: {e}") from e
            self._loaded = path
            log.info("now serving weights %s", path)
        self.name = cfg.served_model_name or cfg.weights or self._own_name
        self.engine.model_name = self.name

    async def check_health(self) -> None:
        """Serve's health check: a dead engine makes the replica unhealthy, so Serve replaces it."""
        if hasattr(self.engine, "check_health"):
            await self.engine.check_health()

    async def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The model's chat template applied to ``messages``, ready for the answer."""
        return self.engine.render_chat(messages)

    async def stats(self) -> dict[str, float]:
        """Requests, tokens, the prefix-cache hit rate and busy time (:class:`BusyMeter`) of this replica."""
        return {**self.engine.stats(), **self.meter.snapshot(), **self.sessions.snapshot(), "backend": self.backend,
                "model": self.name}  # fmt: skip

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

    @api.post("/v1/completions", response_model=None)
    async def completions(self, body: CompletionRequest) -> dict[str, Any] | StreamingResponse:
        """OpenAI completions (``stream: true``: server-sent events)."""
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if any(not p for p in prompts):
            raise HTTPException(status_code=400, detail="prompt must not be empty")
        return await self._answer(GenerateRequest(prompts=prompts, **openai_api.sampling(body)), body, chat=False)

    @api.post("/v1/chat/completions", response_model=None)
    async def chat_completions(self, body: ChatCompletionRequest) -> dict[str, Any] | StreamingResponse:
        """OpenAI chat completions, text only (``stream: true``: server-sent events)."""
        prompt = self.engine.render_chat([m.model_dump() for m in body.messages])
        return await self._answer(GenerateRequest(prompts=[prompt], **openai_api.sampling(body)), body, chat=True)

    async def _answer(
        self, request: GenerateRequest, body: CompletionRequest | ChatCompletionRequest, chat: bool
    ) -> dict[str, Any] | StreamingResponse:
        if not body.stream:
            return openai_api.response(await self.generate(request), chat)
        check_generate(request.prompts, request.n, request.max_tokens)
        self.sessions.add_current()
        stream = getattr(self.engine, "stream", None)
        deltas = stream(request) if stream else stream_whole(self.engine, request)
        usage = bool(body.stream_options and body.stream_options.include_usage)
        events = openai_api.events(self.meter.track_stream(deltas), request.n, self.name, chat, usage)
        return StreamingResponse(events, media_type="text/event-stream")


prm_api = _guarded("sphere-ray PRM")


@serve.deployment(name="PRMServer")
@serve.ingress(prm_api)
class PRMServer:
    """A process reward model: batched per-step scores."""

    def __init__(self, args: dict[str, Any]) -> None:
        cfg = PRMAppArgs.model_validate(args)
        cfg.secure()
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
        request = _validate(ScoreRequest, request)
        check_score(request.items)
        with self.meter.track():
            return await self.prm.score(request)

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
    """Serve app builder (``import_path: sphere_ray.serving.apps:generation_app``)."""
    GenerationAppArgs.model_validate(args)  # fail at deploy time, not in the replica
    return GenerationServer.bind(args)


def prm_app(args: dict[str, Any]) -> Application:
    """Serve app builder (``import_path: sphere_ray.serving.apps:prm_app``)."""
    PRMAppArgs.model_validate(args)
    return PRMServer.bind(args)
