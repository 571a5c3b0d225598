"""Phase 1's multi-turn dialogue for one problem: k first answers, then re-examination turns.

Turn 1 draws ``samples`` answers to the evaluation's answer prompt
(:data:`sphere_ray.evaluation.prompts.ANSWER_TEMPLATE`: step by step, final answer boxed). Turn 2 asks
each sample to re-examine its answer with a template of the pool (:mod:`.templates`); the whole
conversation so far is the context. Turns 3..``max_turns`` continue a sample only while its answer
keeps changing (the paper stops at two turns, which it names a limit for hard problems); a truncated
turn ends its sample. All samples of one turn go to the model in one batched call.

The model comes in as a :class:`ChatPolicy` (the Serve client :class:`~sphere_ray.serving.client.ServePolicy`
in the job, a scripted fake in unit tests); no Ray here.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sphere_ray.dialogue.behaviours import judge_messages, parse_judgement
from sphere_ray.dialogue.sample import Dialogue, Turn
from sphere_ray.dialogue.templates import TemplatePool
from sphere_ray.evaluation.prompts import answer_messages
from sphere_ray.grading import extract_answer, is_equivalent
from sphere_ray.search.types import Problem
from sphere_ray.serving.schema import GenerateRequest, GenerateResponse

__all__ = ["ChatPolicy", "DialogueParams", "judge_turns", "run_dialogues"]


class ChatPolicy(Protocol):
    """What the dialogue needs of a model: its chat template and batched generation."""

    async def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """The conversation through the model's chat template, ready for the assistant's turn."""
        ...

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        """``n`` samples for each prompt of ``request``."""
        ...


@dataclass(frozen=True)
class DialogueParams:
    """Sampling of the dialogue (the Phase-1 job's config fields of the same names)."""

    samples: int = 4
    max_turns: int = 2
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "max_turns", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def _seed(problem_id: str, turn: int, base: int) -> int:
    digest = hashlib.blake2b(f"{base}\x00{problem_id}\x00{turn}".encode(), digest_size=7).digest()
    return int.from_bytes(digest, "big")


def _continues(turns: list[Turn], turn: int) -> bool:
    """Whether a sample gets turn ``turn``: not truncated, and (after turn 2) its last answer changed."""
    if turns[-1].finish_reason == "length":
        return False
    if turn == 2:
        return True
    new, old = extract_answer(turns[-1].text), extract_answer(turns[-2].text)
    return new is not None and (old is None or not is_equivalent(new, old))


def _messages(first: list[dict[str, str]], turns: list[Turn]) -> list[dict[str, str]]:
    out = list(first[:-1])
    for t in turns:
        out += [{"role": "user", "content": t.prompt}, {"role": "assistant", "content": t.text}]
    return out


async def run_dialogues(
    policy: ChatPolicy, problem: Problem, pool: TemplatePool, params: DialogueParams
) -> list[Dialogue]:
    """The ``params.samples`` dialogues of ``problem``, each with 1..``max_turns`` turns, graded."""
    first = answer_messages(problem.problem)
    sampling = {"temperature": params.temperature, "top_p": params.top_p, "max_tokens": params.max_tokens}
    prompt = await policy.render_chat(first)
    response = await policy.generate(
        GenerateRequest(prompts=[prompt], n=params.samples, seed=_seed(problem.id, 1, params.seed), **sampling)
    )
    states = [[Turn(first[-1]["content"], s.text, s.finish_reason, s.num_tokens)] for s in response.outputs[0]]
    for turn in range(2, params.max_turns + 1):
        active = [i for i, turns in enumerate(states) if _continues(turns, turn)]
        if not active:
            break
        asks = []
        for i in active:
            template = pool.choose(problem.id, i, turn, exclude=[t.template_id for t in states[i] if t.template_id])
            asks.append((template, template.render(extract_answer(states[i][-1].text), problem.problem)))
        chats = [[*_messages(first, states[i]), {"role": "user", "content": ask}]
                 for i, (_, ask) in zip(active, asks, strict=True)]  # fmt: skip
        prompts = list(await asyncio.gather(*(policy.render_chat(c) for c in chats)))
        seeds = [_seed(f"{problem.id}/{i}", turn, params.seed) for i in active]
        response = await policy.generate(GenerateRequest(prompts=prompts, n=1, seeds=seeds, **sampling))
        for i, (template, ask), samples in zip(active, asks, response.outputs, strict=True):
            s = samples[0]
            states[i].append(Turn(ask, s.text, s.finish_reason, s.num_tokens, template.id, template.behaviour))
    return [Dialogue(problem.id, problem.problem, problem.answer, i, turns) for i, turns in enumerate(states)]


async def judge_turns(judge: ChatPolicy, dialogues: list[Dialogue], max_tokens: int = 64) -> list[Dialogue]:
    """The dialogues with each examined turn's ``judged`` set from one batched, greedy call of the judge model.

    A turn whose verdict does not parse (:func:`~sphere_ray.dialogue.behaviours.parse_judgement`) keeps
    ``judged=None``, and the behaviour rule falls back to the cue detector for it.
    """
    turns = [(i, j) for i, d in enumerate(dialogues) for j in range(len(d.turns) - len(d.examined_turns), len(d.turns))]
    if not turns:
        return dialogues
    prompts = await asyncio.gather(*(judge.render_chat(judge_messages(dialogues[i].turns[j].text)) for i, j in turns))
    response = await judge.generate(GenerateRequest(prompts=list(prompts), n=1, temperature=0.0, max_tokens=max_tokens))
    out = [copy.copy(d) for d in dialogues]  # shallow: answers and correctness are not graded again
    for d in out:
        d.turns = list(d.turns)
    for (i, j), samples in zip(turns, response.outputs, strict=True):
        verdict = parse_judgement(samples[0].text)
        out[i].turns[j] = dataclasses.replace(out[i].turns[j], judged=None if verdict is None else frozenset(verdict))
    return out
