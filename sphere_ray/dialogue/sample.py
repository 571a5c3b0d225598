"""One dialogue sample (turns of one problem), graded once, and its two TRL training formats.

A sample is ``k``-th of a problem: turn 1 answers the problem prompt; each later turn answers a
template's re-examination prompt (:mod:`.templates`). Grading uses the one rule of
:func:`sphere_ray.grading.is_correct` on each turn's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sphere_ray.grading import extract_answer, is_correct
from sphere_ray.grading.forms import boxed_spans

__all__ = ["Dialogue", "Turn", "conversation", "merged_completion"]


@dataclass(frozen=True)
class Turn:
    """One exchange of a dialogue.

    The user ``prompt``, the model's ``text``, why it stopped (``eos``, ``stop``, or ``length``: truncated),
    its tokens, the template (id, behaviour) that asked for it (None on turn 1), and the behaviours an LLM
    judge saw in it (``judged``; None: not judged, or the judge gave no usable answer).
    """

    prompt: str
    text: str
    finish_reason: str = "eos"
    tokens: int = 0
    template_id: str | None = None
    behaviour: str | None = None
    judged: frozenset[str] | None = None


@dataclass
class Dialogue:
    """The turns of sample ``sample`` of one problem, with each turn's final answer and correctness.

    ``answers[i]`` / ``correct[i]`` belong to ``turns[i]`` (strict extraction: an answer the turn states).
    """

    problem_id: str
    problem: str
    reference: str
    sample: int
    turns: list[Turn]
    answers: list[str | None] = field(init=False)
    correct: list[bool] = field(init=False)

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError(f"dialogue {self.problem_id}/{self.sample} has no turns")
        self.answers = [extract_answer(t.text) for t in self.turns]
        self.correct = [is_correct(t.text, self.reference, question=self.problem) for t in self.turns]

    @property
    def tokens(self) -> int:
        """Generated tokens over all turns."""
        return sum(t.tokens for t in self.turns)

    @property
    def corrected(self) -> bool:
        """An autonomous error-correction chain: turn 1 wrong, the last turn right."""
        return not self.correct[0] and self.correct[-1]

    @property
    def examined_turns(self) -> list[Turn]:
        """The turns whose behaviours count: those after the first, or the only one (a Phase-2 answer)."""
        return self.turns[1:] or self.turns

    @property
    def template_ids(self) -> list[str]:
        """The template ids of the turns after the first."""
        return [t.template_id for t in self.turns if t.template_id]


def _unbox(text: str) -> str:
    """``text`` with every ``\\boxed{x}`` written as ``x`` (earlier turns' answers are not final)."""
    out, last = [], 0
    for start, end, content in boxed_spans(text):
        if start < last:
            continue
        out += [text[last:start], content]
        last = end
    return "".join(out) + text[last:]


def merged_completion(d: Dialogue) -> str:
    """The turns merged into one long answer: earlier answers unboxed, so only the last turn's box is final."""
    parts = [_unbox(t.text.strip()) for t in d.turns[:-1]] + [d.turns[-1].text.strip()]
    return "\n\n".join(parts)


def conversation(d: Dialogue, system: str | None = None) -> list[dict[str, str]]:
    """TRL conversational messages: (system), then user / assistant for every turn."""
    messages = [{"role": "system", "content": system}] if system else []
    for t in d.turns:
        messages += [{"role": "user", "content": t.prompt}, {"role": "assistant", "content": t.text}]
    return messages
