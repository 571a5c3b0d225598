"""The simulated engine (``backend: sim``): continuous batching in modelled time, a prefix cache, fake text.

One asyncio loop per replica runs vLLM's scheduling shape: requests wait, are admitted while fewer
than ``max_num_seqs`` sequences run, and every iteration decodes one token for each running
sequence and prefills the newly admitted prompts; the loop sleeps the iteration's modelled time
(:mod:`sphere_ray.sim.calibration`) divided by ``compression``, never one sleep per request. When no
request waits, the loop jumps up to ``max_ticks`` iterations at once (to the next sequence end).

Prefix cache: an LRU over fixed-size token blocks of the prompt (a chain of block hashes, as vLLM's
automatic prefix caching), capacity = KV budget / (bytes per token x block size). A request's cached
tokens are the leading blocks found; hits are reported exactly like vLLM's (``cached_prompt_tokens``,
``prefix_cache_hit_rate``). Samples of one request share one prefill.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sphere_ray.serving.engines import EngineStats, prompt_seeds
from sphere_ray.serving.schema import GenerateRequest, GenerateResponse, Sample
from sphere_ray.sim.calibration import StepModel, step_model
from sphere_ray.sim.text import continuation, count_tokens

__all__ = ["PrefixCache", "SimEngine", "SimOptions", "SimScheduler"]

log = logging.getLogger(__name__)


class SimOptions(BaseModel):
    """``args.sim`` of a generation app (and ``options`` of a ``kind: sim`` PRM) in the Serve YAML."""

    model_config = ConfigDict(extra="forbid")
    device: str = Field("a100", description="calibration row: a100 | h100 | cpu2")
    compression: float = Field(1.0, gt=0, description="simulated seconds per real second (100: 100x faster)")
    p_right: float = Field(0.5, ge=0, le=1, description="mean chance a sampled solution ends right")
    max_num_seqs: int = Field(256, ge=1, description="sequences decoded together (vLLM's max_num_seqs)")
    block_size: int = Field(16, ge=1, description="prefix-cache block size in tokens")
    kv_fraction: float = Field(0.9, gt=0, le=1, description="device memory share for weights + KV cache")
    max_ticks: int = Field(32, ge=1, description="iterations one sleep may cover when nothing waits")


class PrefixCache:
    """LRU over hashed prompt blocks; ``lookup`` returns the cached leading tokens and inserts the rest."""

    def __init__(self, capacity_blocks: int, block_size: int) -> None:
        self.capacity, self.block_size = max(1, capacity_blocks), block_size
        self._blocks: OrderedDict[bytes, None] = OrderedDict()

    def lookup(self, prompt: str) -> int:
        """Cached tokens at the start of ``prompt`` (whole blocks); afterwards all its blocks are cached."""
        chars = self.block_size * 4
        chain, hits, missed = b"", 0, False
        for start in range(0, len(prompt) - chars + 1, chars):
            chain = hashlib.blake2b(chain + prompt[start : start + chars].encode(), digest_size=12).digest()
            if not missed and chain in self._blocks:
                hits += 1
                self._blocks.move_to_end(chain)
                continue
            missed = True
            self._blocks[chain] = None
            if len(self._blocks) > self.capacity:
                self._blocks.popitem(last=False)
        return hits * self.block_size


@dataclass
class _Seq:
    prompt_tokens: int
    prefill_tokens: int
    remaining: int
    done: asyncio.Future = field(repr=False)
    decoded: int = 0


class SimScheduler:
    """The continuous-batching loop of one replica, in simulated time."""

    def __init__(self, timing: StepModel, options: SimOptions) -> None:
        self.timing, self.options = timing, options
        self.cache = PrefixCache(int(timing.kv_budget_bytes / (timing.kv_bytes_per_token * options.block_size)),
                                 options.block_size)  # fmt: skip
        self._waiting: deque[_Seq] = deque()
        self._running: list[_Seq] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.sim_seconds = 0.0

    async def run(self, prompt: str, lengths: Sequence[int]) -> int:
        """Prefill ``prompt`` once and decode one sequence per entry of ``lengths``; return its cached tokens."""
        self._ensure_loop()
        tokens = count_tokens(prompt)
        cached = min(self.cache.lookup(prompt), tokens)
        loop = asyncio.get_running_loop()
        seqs = [_Seq(tokens, tokens - cached if i == 0 else 0, max(1, n), loop.create_future())
                for i, n in enumerate(lengths)]  # fmt: skip
        self._waiting.extend(seqs)
        self._wake.set()
        await asyncio.gather(*(s.done for s in seqs))
        return cached

    def _ensure_loop(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            if not self._waiting and not self._running:
                self._wake.clear()
                await self._wake.wait()
            prefill = self._admit()
            ticks = 1 if self._waiting else min(self.options.max_ticks, min(s.remaining for s in self._running))
            running = len(self._running)
            context = sum(s.prompt_tokens + s.decoded for s in self._running)
            dt = self.timing.step_s(running, context, prefill) + (ticks - 1) * self.timing.step_s(running, context, 0)
            await asyncio.sleep(dt / self.options.compression)
            self.sim_seconds += dt
            self._advance(ticks)

    def _admit(self) -> int:
        prefill = 0
        while self._waiting and len(self._running) < self.options.max_num_seqs:
            seq = self._waiting.popleft()
            prefill += seq.prefill_tokens
            self._running.append(seq)
        return prefill

    def _advance(self, ticks: int) -> None:
        still = []
        for seq in self._running:
            step = min(ticks, seq.remaining)
            seq.remaining -= step
            seq.decoded += step
            if seq.remaining > 0:
                still.append(seq)
            elif not seq.done.done():
                seq.done.set_result(None)
        self._running = still


class SimEngine:
    """A simulated generation engine with the schema and handle API of the vLLM and transformers engines.

    Args:
        model: the model it stands in for (selects the calibration row, e.g. ``Qwen/Qwen2.5-Math-7B-Instruct``).
        model_name: name reported in responses.
        options: :class:`SimOptions` fields.
    """

    def __init__(self, model: str, model_name: str, options: dict[str, Any] | None = None) -> None:
        self.options = SimOptions.model_validate(options or {})
        self.model_name = model_name
        self.scheduler = SimScheduler(step_model(model, self.options.device, self.options.kv_fraction), self.options)
        self._stats = EngineStats()

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """ChatML, ending ready for the assistant's answer."""
        turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return turns + "<|im_start|>assistant\n"

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        """``n`` simulated samples per prompt; all prompts enter the batch at once."""
        seeds = prompt_seeds(request)
        results = await asyncio.gather(*(self._one(p, request, s) for p, s in zip(request.prompts, seeds, strict=True)))
        response = GenerateResponse(
            outputs=[samples for samples, _, _ in results],
            prompt_tokens=sum(t for _, t, _ in results),
            cached_prompt_tokens=sum(c for _, _, c in results),
            model=self.model_name,
        )
        self._stats.add(response)
        return response

    async def _one(self, prompt: str, request: GenerateRequest, seed: int | None) -> tuple[list[Sample], int, int]:
        samples = []
        for i in range(request.n):
            text, reason = continuation(prompt, seed, i, request.stop, request.max_tokens, self.options.p_right)
            samples.append(Sample(text=text, num_tokens=count_tokens(text), finish_reason=reason))
        cached = await self.scheduler.run(prompt, [s.num_tokens for s in samples])
        return samples, count_tokens(prompt), cached

    async def load_weights(self, path: str) -> None:
        """A weight swap as vLLM does it: the simulated engine has no weights, but its prefix cache is emptied."""
        self.scheduler.cache = PrefixCache(self.scheduler.cache.capacity, self.scheduler.cache.block_size)

    def stats(self) -> dict[str, float]:
        """Running totals, the prefix-cache hit rate, and simulated seconds and tokens/s."""
        out = self._stats.snapshot()
        sim_s = self.scheduler.sim_seconds
        out.update(sim_seconds=sim_s, sim_tokens_per_s=out["generated_tokens"] / sim_s if sim_s else 0.0)
        return out
