"""Deterministic text of the simulated models: a plausible step stream and PRM scores.

Simulated problems are sums, ``What is A + B?`` (:func:`sim_problems`); the simulated policy finds
the question in its prompt, so its final ``\\boxed{}`` answer can be right with a per-problem
probability. A trajectory has 3-6 blank-line separated steps; the last states the answer. Everything
is a pure function of (prompt, seed, sample index), so a seeded search is reproducible.

Per-problem difficulty: ``p(problem) = u ** (1 / p_right - 1)`` with ``u`` uniform from a hash of the
question, so the mean over problems is ``p_right`` and problems range from hopeless to easy, which
routes a search to stages 1 (one right), 2 (both wrong) and 3 (both right). A prompt with no
simulated question (a real benchmark problem) gets a hash-chosen, almost always wrong answer.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator

__all__ = ["continuation", "count_tokens", "p_right_of", "prm_score", "sim_problems"]

QUESTION = re.compile(r"What is (-?\d+) \+ (-?\d+)\?")
_ASSISTANT = "<|im_start|>assistant\n"
_CHARS_PER_TOKEN = 4
_PHRASES = (
    "We line up the two numbers by place value and add the ones digits first, carrying when needed.",
    "Next we add the tens digits together with any carry from the previous column.",
    "Then we handle the remaining columns, keeping track of every carry so the total stays exact.",
    "Let us check the partial sum by estimating: rounding both numbers gives a close total.",
    "We verify the carry once more, because an error in one column changes the final digit.",
    "Writing the digits of the running total in order gives the sum so far.",
)


def count_tokens(text: str) -> int:
    """Simulated token count: one token per four characters (English BPE averages ~4)."""
    return max(1, math.ceil(len(text) / _CHARS_PER_TOKEN))


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) from a hash of ``parts``."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def sim_problems(n: int, seed: int = 0, start: int = 0) -> Iterator[dict]:
    """``n`` problems ``{"id", "problem", "answer"}`` (ids ``sim-0000000``...), streamed."""
    for i in range(start, start + n):
        a, b = 10 + int(_unit(seed, i, "a") * 99_990), 10 + int(_unit(seed, i, "b") * 99_990)
        yield {"id": f"sim-{i:07d}", "problem": f"What is {a} + {b}?", "answer": str(a + b)}


def p_right_of(question: str, p_right: float) -> float:
    """The problem's chance that a sampled solution ends right (mean ``p_right`` over problems)."""
    if p_right <= 0:
        return 0.0
    return _unit(question, "difficulty") ** (1 / min(p_right, 1.0) - 1)


def _question(prompt: str) -> tuple[str, int | None]:
    m = QUESTION.search(prompt)
    return (m.group(0), int(m.group(1)) + int(m.group(2))) if m else (prompt[:200], None)


def continuation(prompt: str, seed: int | None, index: int, stop: list[str], max_tokens: int,
                 p_right: float) -> tuple[str, str]:  # fmt: skip
    """The simulated completion of ``prompt``: ``(text, finish_reason)``.

    With ``"\\n\\n"`` among the stop strings one step comes back (``"stop"``, or ``"eos"`` for the
    final step); otherwise the rest of the solution. ``max_tokens`` truncates (``"length"``).
    """
    question, right = _question(prompt)
    written = prompt.rsplit(_ASSISTANT, 1)[-1] if _ASSISTANT in prompt else ""
    done = len([p for p in written.split("\n\n") if p.strip()])
    total = 3 + int(_unit(question, seed, index, "steps") * 4)
    steps = []
    for k in range(done, max(total, done + 1)):
        final = k + 1 >= total
        steps.append(_step(question, right, k, final, seed, index, written, p_right))
        if final or "\n\n" in stop:
            break
    text, reason = "\n\n".join(steps), "eos" if "boxed" in steps[-1] else "stop"
    if count_tokens(text) > max_tokens:
        return text[: max_tokens * _CHARS_PER_TOKEN], "length"
    return text, reason


def _step(question: str, right: int | None, k: int, final: bool, seed: int | None, index: int, written: str,
          p_right: float) -> str:  # fmt: skip
    if not final:
        phrase = _PHRASES[int(_unit(question, seed, index, k, "phrase") * len(_PHRASES))]
        return f"Step {k + 1}: {phrase}"
    u = _unit(question, seed, index, written[-200:], "right")
    if right is not None and u < p_right_of(question, p_right):
        answer = right
    else:
        base = right if right is not None else int(_unit(question, "guess") * 1000)
        answer = base + (1 + int(_unit(question, seed, index, "off") * 9)) * (1 if u < 0.5 else -1)
    return f"Step {k + 1}: Adding the columns gives {answer}. The final answer is \\boxed{{{answer}}}."


def prm_score(question: str, steps: list[str], noise: float = 0.1) -> float:
    """A simulated PRM's score of the last step: high for a right final answer, low for a wrong one.

    Intermediate steps score in [0.45, 0.9] by hash; a final step scores ~0.9 if right and ~0.2 if
    wrong, flipped with probability ``noise`` (a PRM is not an oracle).
    """
    last = steps[-1]
    u = _unit(question, len(steps), last)
    m = re.search(r"\\boxed\{(-?\d+)\}", last)
    if not m:
        return 0.45 + 0.45 * u
    _, right = _question(question)
    good = right is not None and int(m.group(1)) == right
    if _unit(question, last, "flip") < noise:
        good = not good
    return 0.85 + 0.1 * u if good else 0.1 + 0.2 * u
