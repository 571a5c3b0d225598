"""Process reward models behind one batched API: ``score(ScoreRequest) -> ScoreResponse``.

Registered backends (name -> class, see :data:`PRM_BACKENDS`; adding a family is one class with
``@register_prm("name")``):

* ``qwen_prm`` — the Qwen2.5-Math-PRM family (the paper's PRM): the steps are joined with the step tag
  ``<extra_0>`` in the assistant turn; a step's score is the positive-class probability at its tag.
  Served by vLLM's pooling runner (task ``token_classify``, STEP pooling; pinned to vLLM 0.32 where the
  old ``reward``/``encode`` task names are gone) or, with ``engine: transformers``, by
  :class:`~sphere_ray.models.qwen_prm.Qwen2ProcessRewardModel` (no remote code needed).
* ``judge`` — LLM-as-judge with a policy-family chat model: p(step correct) = P(Yes)/(P(Yes)+P(No))
  for the verdict token (the embedded default on CPU, where no trained PRM exists).
* ``monte_carlo`` — Math-Shepherd style: the fraction of ``rollouts`` completions from the step that
  reach the ground-truth answer (needs ``answer`` on each item and a policy to roll out with).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sphere_ray.config import lookup
from sphere_ray.grading import extract_answer, is_correct
from sphere_ray.search.prompts import SOLVE_TEMPLATE
from sphere_ray.search.types import STEP_SEPARATOR
from sphere_ray.serving.engines import render_chat
from sphere_ray.serving.schema import GenerateRequest, GenerateResponse, ScoreItem, ScoreRequest, ScoreResponse

__all__ = ["PRM_BACKENDS", "JudgePRM", "MonteCarloPRM", "QwenPRM", "build_prm", "prefix_ends", "register_prm"]

log = logging.getLogger(__name__)

PRM_BACKENDS: dict[str, type] = {}
"""PRM family name -> class."""

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
JUDGE_TEMPLATE = (
    "Here is a math problem and a partial solution.\n\nProblem: {question}\n\nSolution so far:\n\n{steps}\n\n"
    "Is the last step of this solution correct? Answer Yes or No."
)


def register_prm(name: str) -> Callable[[type], type]:
    """Class decorator adding a PRM family to :data:`PRM_BACKENDS`."""

    def add(cls: type) -> type:
        PRM_BACKENDS[name] = cls
        cls.family = name
        return cls

    return add


def build_prm(kind: str, **kwargs: Any) -> Any:
    """Construct the PRM family ``kind`` with its keyword arguments.

    Raises:
        ValueError: unknown family.
    """
    if kind == "sim":
        import sphere_ray.sim.prm  # noqa: F401  registers the simulated PRM

    return lookup(PRM_BACKENDS, kind, "prm kind")(**kwargs)


def prefix_ends(item: ScoreItem) -> list[int]:
    """Which prefixes of ``item.steps`` to score: only the whole, or every one."""
    return [len(item.steps)] if item.only_last else list(range(1, len(item.steps) + 1))


@register_prm("qwen_prm")
class QwenPRM:
    """Qwen2.5-Math-PRM: positive-class probability at each ``<extra_0>`` step tag.

    Args:
        model: model folder or hub name (resolved).
        name: name reported in responses.
        engine: ``vllm`` (pooling runner) or ``transformers``.
        step_tag: the step separator token.
        engine_kwargs: extra ``AsyncEngineArgs`` fields (vLLM), e.g. ``dtype``, ``max_model_len``.
        dtype / device: for the transformers engine.
    """

    def __init__(
        self,
        model: str,
        name: str = "",
        engine: str = "vllm",
        step_tag: str = "<extra_0>",
        engine_kwargs: dict[str, Any] | None = None,
        dtype: str = "float32",
        device: str = "cpu",
    ) -> None:
        from transformers import AutoTokenizer

        self.name = name or model
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        ids = self.tokenizer.encode(step_tag, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"step_tag {step_tag!r} is not one token for {model} (got {ids})")
        self.step_tag, self.step_tag_id = step_tag, ids[0]
        if engine == "vllm":
            self._scorer: Callable[[list[str]], Awaitable[list[list[float]]]] = _VLLMTokenClassifier(
                model, self.step_tag_id, engine_kwargs
            ).score
        elif engine == "transformers":
            self._scorer = _HFStepClassifier(model, self.step_tag_id, dtype, device).score
        else:
            raise ValueError(f"engine must be 'vllm' or 'transformers', got {engine!r}")

    def format(self, question: str, steps: Sequence[str]) -> str:
        """The PRM's input text: system, question, and the steps each followed by the step tag."""
        answer = "".join(s.strip() + self.step_tag for s in steps)
        messages = [
            {"role": "system", "content": QWEN_PRM_SYSTEM},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

    async def score(self, request: ScoreRequest) -> ScoreResponse:
        """One pass per item scores all its steps; ``only_last`` keeps the last score."""
        texts = [self.format(it.question, it.steps) for it in request.items]
        per_item = await self._scorer(texts)
        scores = []
        for item, s in zip(request.items, per_item, strict=True):
            if len(s) != len(item.steps):
                raise RuntimeError(f"PRM found {len(s)} step tags for {len(item.steps)} steps")
            scores.append(s[-1:] if item.only_last else s)
        return ScoreResponse(scores=scores, model=self.name)


class _VLLMTokenClassifier:
    """vLLM pooling runner: ``token_classify`` at the step-tag positions (softmax over 2 classes)."""

    def __init__(self, model: str, step_tag_id: int, engine_kwargs: dict[str, Any] | None) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.step_tag_id = step_tag_id
        args = AsyncEngineArgs(model=model, runner="pooling", **(engine_kwargs or {}))
        self.engine = AsyncLLM.from_engine_args(args)

    async def score(self, texts: list[str]) -> list[list[float]]:
        return list(await asyncio.gather(*(self._one(t) for t in texts)))

    async def _one(self, text: str) -> list[float]:
        from vllm import PoolingParams

        params = PoolingParams(task="token_classify", step_tag_id=self.step_tag_id)
        final = None
        async for out in self.engine.encode(text, params, request_id=uuid.uuid4().hex):
            final = out
        probs = final.outputs.data  # [num_step_tags, 2], softmax applied by the pooler
        return [float(p) for p in probs[:, 1].tolist()]


class _HFStepClassifier:
    """transformers fallback of the Qwen PRM (same weights, no remote code)."""

    def __init__(self, model: str, step_tag_id: int, dtype: str, device: str) -> None:
        import torch
        from transformers import AutoTokenizer

        from sphere_ray.models.qwen_prm import Qwen2ProcessRewardModel

        self.step_tag_id, self.device = step_tag_id, device
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = Qwen2ProcessRewardModel.from_pretrained(model, dtype=getattr(torch, dtype)).to(device).eval()
        self._lock = threading.Lock()

    async def score(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._score, texts)

    def _score(self, texts: list[str]) -> list[list[float]]:
        import torch

        out = []
        with self._lock, torch.inference_mode():
            for text in texts:  # one at a time: no padding to get wrong, and PRM inputs vary a lot in length
                ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(self.device)
                probs = torch.softmax(self.model(input_ids=ids).logits[0].float(), dim=-1)
                out.append(probs[ids[0] == self.step_tag_id, 1].tolist())
        return out


@register_prm("judge")
class JudgePRM:
    """LLM-as-judge: the chat model's probability that the last step is correct (Yes vs No).

    Args:
        model: model folder or hub name (resolved); with ``engine: app``, only its tokenizer is loaded.
        name: name reported in responses.
        engine: ``vllm`` (one-token generation restricted to the verdict tokens, their renormalised
            log-probabilities), ``transformers`` (one batched forward pass), or ``app``: the running
            generation app ``app`` judges with its own engine (``GenerationServer.verdicts``), so one
            engine serves both the policy and the judge (CPU: one vLLM engine fewer to start and feed).
        engine_kwargs: extra ``AsyncEngineArgs`` fields (vLLM).
        dtype / device / batch_size: for the transformers engine.
        app: the generation app of ``engine: app`` (it must serve ``model``'s tokenizer).
    """

    def __init__(
        self, model: str, name: str = "", *, engine: str = "transformers", engine_kwargs: dict[str, Any] | None = None,
        dtype: str = "float32", device: str = "cpu", batch_size: int = 16, app: str | None = None,
    ) -> None:  # fmt: skip
        from transformers import AutoTokenizer

        self.name = name or f"judge:{model}"
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.yes = self._first_tokens(["Yes", " Yes", "yes"])
        self.no = self._first_tokens(["No", " No", "no"])
        self._judge = self._verdicts_of(model, engine, engine_kwargs, dtype, device, batch_size, app)

    def _verdicts_of(
        self, model: str, engine: str, engine_kwargs: dict[str, Any] | None, dtype: str, device: str,
        batch_size: int, app: str | None,
    ) -> Callable[[list[str], list[int], list[int]], Awaitable[list[float]]]:  # fmt: skip
        from sphere_ray.serving.engines import HFEngine, VLLMEngine

        if engine == "vllm":
            return VLLMEngine(model, self.name, engine_kwargs).verdicts
        if engine == "transformers":
            return HFEngine(model, self.name, dtype, device, batch_size).verdicts
        if engine == "app":
            if not app:
                raise ValueError("judge PRM: engine app needs options.app, the generation app that judges")
            from sphere_ray.serving.client import ServePolicy

            return ServePolicy(app).verdicts  # looked up on first use: the app may still be starting
        raise ValueError(f"engine must be 'vllm', 'transformers' or 'app', got {engine!r}")

    def _first_tokens(self, words: list[str]) -> list[int]:
        return sorted({self.tokenizer.encode(w, add_special_tokens=False)[0] for w in words})

    async def score(self, request: ScoreRequest) -> ScoreResponse:
        """Judge each requested prefix (one verdict each, all at once)."""
        prompts, owners = [], []
        for i, item in enumerate(request.items):
            for end in prefix_ends(item):
                steps = STEP_SEPARATOR.join(item.steps[:end])
                message = JUDGE_TEMPLATE.format(question=item.question, steps=steps)
                prompts.append(render_chat(self.tokenizer, [{"role": "user", "content": message}]))
                owners.append(i)
        flat = await self._judge(prompts, self.yes, self.no)
        scores: list[list[float]] = [[] for _ in request.items]
        for owner, s in zip(owners, flat, strict=True):
            scores[owner].append(s)
        return ScoreResponse(scores=scores, model=self.name)


Generate = Callable[[GenerateRequest], Awaitable[GenerateResponse]]
Render = Callable[[str], Awaitable[str]]


@register_prm("monte_carlo")
class MonteCarloPRM:
    """Math-Shepherd-style PRM: fraction of ``rollouts`` completions from a prefix that end right.

    Args:
        generate: the policy's batched generate call (an engine's, or a Serve handle's).
        render: renders the solve prompt for a question (the policy's chat template).
        rollouts: completions per scored prefix (k).
        max_tokens / temperature: rollout sampling.
    """

    def __init__(
        self, generate: Generate, render: Render, name: str = "monte_carlo", rollouts: int = 4,
        max_tokens: int = 512, temperature: float = 0.8, template: str = SOLVE_TEMPLATE,
    ) -> None:  # fmt: skip
        if rollouts < 1:
            raise ValueError(f"rollouts must be >= 1, got {rollouts}")
        self.generate, self.render, self.name = generate, render, name
        self.rollouts, self.max_tokens, self.temperature, self.template = rollouts, max_tokens, temperature, template

    async def score(self, request: ScoreRequest) -> ScoreResponse:
        """Roll out every requested prefix ``rollouts`` times in one batched generate call."""
        missing = [i for i, it in enumerate(request.items) if not it.answer]
        if missing:
            raise ValueError(f"monte_carlo PRM needs the ground-truth 'answer' on every item; missing on {missing}")
        jobs = [(i, end) for i, it in enumerate(request.items) for end in prefix_ends(it)]
        prompts = [await self._prefix(request.items[i], end) for i, end in jobs]
        response = await self.generate(
            GenerateRequest(prompts=prompts, n=self.rollouts, temperature=self.temperature, max_tokens=self.max_tokens)
        )
        scores: list[list[float]] = [[] for _ in request.items]
        for (i, end), samples in zip(jobs, response.outputs, strict=True):
            done = STEP_SEPARATOR.join(request.items[i].steps[:end])
            item = request.items[i]
            right = sum(self._reaches(done, s.text, item.answer or "", item.question) for s in samples)
            scores[i].append(right / len(samples))
        return ScoreResponse(scores=scores, model=self.name)

    async def _prefix(self, item: ScoreItem, end: int) -> str:
        root = await self.render(self.template.format(problem=item.question))
        return root + "".join(s + STEP_SEPARATOR for s in item.steps[:end])

    @staticmethod
    def _reaches(done: str, rollout: str, answer: str, question: str) -> bool:
        return is_correct(rollout if extract_answer(rollout) is not None else done, answer, question=question)
