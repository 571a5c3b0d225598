"""Clients that give the search core its models: the search protocols over served models.

* :class:`EnginePolicy` / :class:`EnginePRM` — in-process engines (no Ray), e.g. the local job.
* :class:`ServePolicy` / :class:`ServePRM` — Serve deployment handles inside a Ray cluster, with a
  timeout per call and retries when a replica dies or is unavailable (a killed replica costs a retry,
  not a problem). A request the replica rejects as invalid is not retried.
* :class:`OpenAIPolicy` — an external OpenAI-compatible completions server over HTTP.

All turn the search's :class:`~sphere_ray.search.StepRequest`/:class:`~sphere_ray.search.PrmRequest`
into the serving schema and back (:func:`to_generate_requests`, :func:`to_step_samples`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self, TypeVar

from sphere_ray.search.types import PrmRequest, StepRequest, StepSample
from sphere_ray.serving.schema import GenerateRequest, GenerateResponse, ScoreItem, ScoreRequest, ScoreResponse

__all__ = [
    "EnginePRM",
    "EnginePolicy",
    "OpenAIPolicy",
    "ServePRM",
    "ServePolicy",
    "call_with_retries",
    "to_generate_requests",
    "to_score_request",
    "to_step_samples",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


def to_generate_requests(requests: Sequence[StepRequest]) -> list[tuple[list[int], GenerateRequest]]:
    """Group step requests with equal sampling settings: ``[(indices into requests, request)]``.

    Each prompt keeps its own seed (``GenerateRequest.seeds``).
    """
    groups: dict[tuple, tuple[list[int], GenerateRequest]] = {}
    for i, r in enumerate(requests):
        key = (r.n, r.temperature, r.max_tokens, tuple(r.stop))
        if key not in groups:
            groups[key] = ([], GenerateRequest(prompts=[r.prompt], n=r.n, temperature=r.temperature,
                                               max_tokens=r.max_tokens, stop=list(r.stop), seeds=[r.seed]))  # fmt: skip
        else:
            groups[key][1].prompts.append(r.prompt)
            groups[key][1].seeds.append(r.seed)  # type: ignore[union-attr]
        groups[key][0].append(i)
    return list(groups.values())


def to_step_samples(response: GenerateResponse) -> list[list[StepSample]]:
    """Serving samples -> search samples (``finished`` = the model ended its answer)."""
    return [
        [StepSample(text=s.text, num_tokens=s.num_tokens, finished=s.finish_reason == "eos") for s in samples]
        for samples in response.outputs
    ]


def to_score_request(requests: Sequence[PrmRequest], answers: Sequence[str | None] | None = None) -> ScoreRequest:
    """Search PRM requests -> one batched :class:`ScoreRequest`."""
    answers = answers or [None] * len(requests)
    items = [
        ScoreItem(question=r.question, steps=list(r.steps), only_last=r.only_last, answer=a)
        for r, a in zip(requests, answers, strict=True)
    ]
    return ScoreRequest(items=items)


async def _sample_via(
    generate: Callable[[GenerateRequest], Awaitable[GenerateResponse]], requests: Sequence[StepRequest]
) -> list[list[StepSample]]:
    out: list[list[StepSample] | None] = [None] * len(requests)
    groups = to_generate_requests(requests)
    responses = await asyncio.gather(*(generate(g) for _, g in groups))
    for (idx, _), response in zip(groups, responses, strict=True):
        for i, samples in zip(idx, to_step_samples(response), strict=True):
            out[i] = samples
    return out  # type: ignore[return-value]


class EnginePolicy:
    """The Policy protocol over an in-process generation engine."""

    def __init__(self, engine: Any, name: str | None = None) -> None:
        self.engine = engine
        self.name = name or engine.model_name

    async def render_prompt(self, user_message: str) -> str:
        """Chat template of the engine's model."""
        return self.engine.render_chat([{"role": "user", "content": user_message}])

    async def sample_steps(self, requests: Sequence[StepRequest]) -> list[list[StepSample]]:
        """Batched next-step samples."""
        return await _sample_via(self.engine.generate, requests)


class EnginePRM:
    """The ProcessRewardModel protocol over an in-process PRM backend."""

    def __init__(self, prm: Any, name: str | None = None) -> None:
        self.prm = prm
        self.name = name or prm.name

    async def score_steps(self, requests: Sequence[PrmRequest]) -> list[list[float]]:
        """Batched step scores."""
        return (await self.prm.score(to_score_request(requests, [r.answer for r in requests]))).scores


_RETRYABLE_NAMES = {"ActorDiedError", "ActorUnavailableError", "RayActorError", "DeploymentUnavailableError",
                    "BackPressureError", "RequestCancelledError", "WorkerCrashedError", "NodeDiedError",
                    "EngineDeadError"}  # fmt: skip


def _retryable(error: BaseException) -> bool:
    if isinstance(error, asyncio.TimeoutError | TimeoutError | ConnectionError):
        return True
    cause = getattr(error, "cause", None)  # RayTaskError wraps the replica's exception
    return any(c.__name__ in _RETRYABLE_NAMES for e in (error, cause) if e is not None for c in type(e).__mro__)


async def call_with_retries(
    fn: Callable[[], Awaitable[T]], what: str, retries: int = 3, timeout_s: float = 600.0, backoff_s: float = 1.0,
    on_retry: Callable[[], None] | None = None,
) -> T:  # fmt: skip
    """Await ``fn()`` with a timeout; retry on replica death/unavailability/timeouts, not on bad requests.

    ``on_retry()`` is called before each retry (clients count the retries they spend).
    """
    for attempt in range(retries + 1):
        try:
            return await asyncio.wait_for(fn(), timeout_s)
        except Exception as e:
            if attempt == retries or not _retryable(e):
                raise
            log.warning("%s failed (%s: %s); retry %d/%d", what, type(e).__name__, str(e)[:200], attempt + 1, retries)
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(backoff_s * 2**attempt)
    raise AssertionError("unreachable")


class _ServeClient:
    """What the Serve clients share: per-call timeout and retries, a session id, and the retries spent.

    A session copy (:meth:`for_session`) shares the handle and caches and counts its own retries.
    """

    def __init__(self, name: str, timeout_s: float, retries: int) -> None:
        self.name = name
        self.timeout_s, self.retries = timeout_s, retries
        self.session_id: str | None = None
        self.retries_spent = 0

    def for_session(self, session_id: str | None) -> Self:
        """A client whose calls carry ``session_id`` (None: no session), with its own count of retries.

        A deployment routed by a session router (``sphere_ray.serving.router.AffinityRouter``, or Serve's
        ``ConsistentHashRouter``) sends them all to one replica, so one
        problem's tree hits that replica's prefix cache.
        """
        clone = copy.copy(self)
        clone.session_id = session_id
        clone.retries_spent = 0
        return clone

    async def _call(self, fn: Callable[[], Awaitable[T]], what: str) -> T:
        return await call_with_retries(fn, f"{self.name}.{what}", self.retries, self.timeout_s, on_retry=self._retried)

    def _retried(self) -> None:
        self.retries_spent += 1


class ServePolicy(_ServeClient):
    """The Policy protocol over a Serve generation app (``GenerationServer``).

    Args:
        app: Serve app name (``policy``, ``small_policy``) or a ``DeploymentHandle``; a name is looked up on
            first use, so the app may still be starting when this is built.
        name: model name recorded in trees and pairs (default: the app name).
        timeout_s / retries: per call.
    """

    def __init__(self, app: Any, name: str | None = None, timeout_s: float = 600.0, retries: int = 3) -> None:
        super().__init__(name or (app if isinstance(app, str) else "policy"), timeout_s, retries)
        self._app = app
        self._rendered: dict[str, str] = {}

    @property
    def handle(self) -> Any:
        """The app's deployment handle (with this client's session id, if it has one)."""
        if isinstance(self._app, str):
            from ray import serve

            self._app = serve.get_app_handle(self._app)
        return self._app if self.session_id is None else self._app.options(session_id=self.session_id)

    async def render_prompt(self, user_message: str) -> str:
        """The served model's chat template (cached per message, bounded)."""
        if user_message not in self._rendered:
            if len(self._rendered) > 10_000:
                self._rendered.clear()
            messages = [{"role": "user", "content": user_message}]
            self._rendered[user_message] = await self._call(lambda: self.handle.render_chat.remote(messages), "render")
        return self._rendered[user_message]

    async def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """A whole conversation through the served model's chat template (ready for the assistant's turn)."""
        return await self._call(lambda: self.handle.render_chat.remote(list(messages)), "render")

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        """One batched generate call through the deployment (with retries)."""
        return await self._call(lambda: self.handle.generate.remote(request), "generate")

    async def verdicts(self, prompts: list[str], yes: list[int], no: list[int]) -> list[float]:
        """The app's P(yes) / (P(yes) + P(no)) of each prompt's next token (``GenerationServer.verdicts``)."""
        return await self._call(lambda: self.handle.verdicts.remote(prompts, yes, no), "verdicts")

    async def sample_steps(self, requests: Sequence[StepRequest]) -> list[list[StepSample]]:
        """Batched next-step samples through the deployment."""
        return await _sample_via(self.generate, requests)


class ServePRM(_ServeClient):
    """The ProcessRewardModel protocol over a Serve PRM app (``PRMServer``)."""

    def __init__(self, app: Any, name: str | None = None, timeout_s: float = 600.0, retries: int = 3) -> None:
        from ray import serve

        super().__init__(name or (app if isinstance(app, str) else "prm"), timeout_s, retries)
        self._handle = serve.get_app_handle(app) if isinstance(app, str) else app

    @property
    def handle(self) -> Any:
        """The app's deployment handle (with this client's session id, if it has one)."""
        return self._handle if self.session_id is None else self._handle.options(session_id=self.session_id)

    async def score_steps(self, requests: Sequence[PrmRequest]) -> list[list[float]]:
        """Batched step scores through the deployment."""
        request = to_score_request(requests, [r.answer for r in requests])
        response: ScoreResponse = await self._call(lambda: self.handle.score.remote(request), "score")
        return response.scores


class OpenAIPolicy:
    """The Policy protocol over an external OpenAI-compatible ``/v1/completions`` server.

    Prompts are rendered locally with ``tokenizer``'s chat template (the server's model's tokenizer).
    Per-sample token counts come from vLLM's ``return_token_ids`` extension when the server has it,
    else from re-tokenising the text. ``api_key`` (else the ``OPENAI_API_KEY`` environment variable) is sent
    as ``Authorization: Bearer``, as a sphere-ray app with a key (or any hosted server) requires.
    """

    def __init__(
        self, base_url: str, model: str, tokenizer: str, timeout_s: float = 600.0, retries: int = 3,
        api_key: str | None = None,
    ) -> None:  # fmt: skip
        import os

        from transformers import AutoTokenizer

        self.base_url, self.model, self.name = base_url.rstrip("/"), model, model
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.timeout_s, self.retries = timeout_s, retries
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")

    async def render_prompt(self, user_message: str) -> str:
        """Chat template of the local tokenizer."""
        from sphere_ray.serving.engines import render_chat

        return render_chat(self.tokenizer, [{"role": "user", "content": user_message}])

    async def sample_steps(self, requests: Sequence[StepRequest]) -> list[list[StepSample]]:
        """One completions call per group of requests with equal settings."""
        return await _sample_via(self._generate, requests)

    async def _generate(self, g: GenerateRequest) -> GenerateResponse:
        body = {"model": self.model, "prompt": g.prompts, "n": g.n, "temperature": g.temperature,
                "max_tokens": g.max_tokens, "seed": g.seed, "stop": g.stop, "return_token_ids": True}  # fmt: skip
        data = await call_with_retries(
            lambda: asyncio.to_thread(self._post, body), "completions", self.retries, self.timeout_s
        )
        return _from_openai(data, g, self.tokenizer)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import json
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(f"{self.base_url}/v1/completions", json.dumps(body).encode(), headers)
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return json.loads(resp.read())


def _from_openai(data: dict[str, Any], g: GenerateRequest, tokenizer: Any) -> GenerateResponse:
    from sphere_ray.serving.schema import Sample

    choices = sorted(data["choices"], key=lambda c: c["index"])
    samples = []
    for c in choices:
        tokens = len(c["token_ids"]) if c.get("token_ids") is not None else len(tokenizer.encode(c["text"]))
        stop = c.get("stop_reason")
        reason = "length" if c["finish_reason"] == "length" else ("stop" if isinstance(stop, str) and stop else "eos")
        if stop in ("eos", "stop", "length"):  # our own servers report the reason directly
            reason = stop
        samples.append(Sample(text=c["text"], num_tokens=tokens, finish_reason=reason))
    outputs = [samples[i * g.n : (i + 1) * g.n] for i in range(len(g.prompts))]
    return GenerateResponse(outputs=outputs, prompt_tokens=data.get("usage", {}).get("prompt_tokens", 0))
