"""Detectors of the four reasoning behaviours in a text: cue phrases (cheap) and an LLM judge's verdict (optional).

Cue lists follow the behaviour definitions of Gandhi et al. (arXiv 2503.01307, their Appendix): a
phrase that, in a math solution, almost always marks the behaviour. Counting cues is fast and
explainable, and it over-counts (a "first," that starts no subgoal) and under-counts (a behaviour in
other words). The LLM judge (any Serve generation app, ``judge_app`` of the SFT data job) is asked the
same four questions with the definitions below (:func:`judge_messages`) and answers one ``name: yes|no``
line per behaviour (:func:`parse_judgement`).
"""

from __future__ import annotations

import re

from sphere_ray.dialogue.templates import BEHAVIOURS

__all__ = ["CUES", "DEFINITIONS", "behaviour_counts", "behaviours_present", "judge_messages", "parse_judgement"]

CUES: dict[str, tuple[str, ...]] = {
    "verification": (
        r"let(?:'s| me| us) (?:double[- ])?(?:check|verify)", r"\bverif(?:y|ying|ied|ication)\b", r"\bdouble[- ]check",
        r"\bsubstitut\w* (?:\w+ ){0,3}back\b", r"\bplug\w* (?:\w+ ){0,3}back\b", r"\bsanity check", r"\bchecks? out\b",
        r"\bconfirm(?:s|ed|ing)? (?:that|the)\b",
    ),
    "backtracking": (
        r"\bwait\b", r"\bi made (?:a|an) (?:mistake|error)", r"\b(?:that|this) (?:is|was) (?:wrong|incorrect)",
        r"\blet me (?:re-?consider|re-?think|redo|start over|go back)", r"\bgo(?:ing)? back to\b",
        r"\binstead,? (?:let|we|i)\b", r"\bon second thought", r"\bactually,",
    ),
    "subgoal_setting": (
        r"\bfirst,? (?:we|i|let)", r"\bstep \d+\b", r"\bnext,? (?:we|i|let)", r"\bsub-?goals?\b",
        r"\bwe (?:need|have) to (?:find|compute|determine)\b", r"\bto (?:do|solve) this,",
        r"\bthen,? we (?:can|need)\b",
    ),
    "backward_chaining": (
        r"\bwork(?:ing)? backwards?\b", r"\bbackwards? from\b", r"\bstart(?:ing)? from the (?:goal|answer|end)\b",
        r"\bfor (?:this|that) to (?:be true|hold)\b", r"\bwe would need\b",
        r"\bwhat (?:must|would) (?:be|have to be)\b",
    ),
}  # fmt: skip
_PATTERNS = {b: re.compile("|".join(f"(?:{c})" for c in cues), re.IGNORECASE) for b, cues in CUES.items()}


DEFINITIONS: dict[str, str] = {
    "verification": "checks a result or a step, e.g. substitutes the answer back or recomputes a value another way",
    "backtracking": "notices an error or a dead end and abandons or revises an earlier step",
    "subgoal_setting": "breaks the problem into smaller intermediate goals and works through them",
    "backward_chaining": "reasons from the goal or the answer back towards the given facts",
}
"""The judge's definition of each behaviour (after Gandhi et al.'s)."""

JUDGE_TEMPLATE = (
    "Below is part of a solution to a math problem. Say which of these reasoning behaviours it shows.\n\n"
    '{definitions}\n\nSolution:\n"""\n{text}\n"""\n\n'
    "Answer with exactly {n} lines, one per behaviour, each `name: yes` or `name: no`, and nothing else."
)


def judge_messages(text: str, max_chars: int = 6000) -> list[dict[str, str]]:
    """The chat asking a judge model which behaviours ``text`` shows (its last ``max_chars`` characters)."""
    definitions = "\n".join(f"- {b}: {DEFINITIONS[b]}." for b in BEHAVIOURS)
    body = JUDGE_TEMPLATE.format(definitions=definitions, text=text[-max_chars:], n=len(BEHAVIOURS))
    return [{"role": "user", "content": body}]


_VERDICT = {
    b: re.compile(rf"^[\W_]*{b.replace('_', '[ _-]?')}[\W_]*[:=-]\s*\**\s*(yes|no)\b", re.IGNORECASE | re.MULTILINE)
    for b in BEHAVIOURS
}


def parse_judgement(answer: str) -> set[str] | None:
    """The behaviours a judge's answer says ``yes`` to; ``None`` when it does not answer for all four."""
    verdicts = {b: m.group(1).lower() for b, pattern in _VERDICT.items() if (m := pattern.search(answer))}
    if len(verdicts) != len(BEHAVIOURS):
        return None
    return {b for b, v in verdicts.items() if v == "yes"}


def behaviour_counts(text: str) -> dict[str, int]:
    """Cue matches per behaviour in ``text`` (every behaviour of ``BEHAVIOURS`` is a key)."""
    return {b: len(_PATTERNS[b].findall(text)) for b in BEHAVIOURS}


def behaviours_present(text: str) -> set[str]:
    """The behaviours with at least one cue in ``text``."""
    return {b for b, n in behaviour_counts(text).items() if n}
