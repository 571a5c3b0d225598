"""Final-answer extraction from a solution text, in a documented order.

Both modes, in this order:

1. an explicit final-answer statement (``Final Answer: ...``, ``The (final) answer is ...``,
   ``Answer: ...``, ``#### X``) that comes **after** the last box wins over that box;
2. the last ``\\boxed{}``/``\\fbox{}``; the boxes of that final sentence are read together as one
   list (``\\boxed{-2} and \\boxed{1}`` -> ``-2, 1``);
3. the last final-answer statement: ``#### X``; ``The (final) answer is X``; ``Final Answer: X``
   or ``Answer: X`` with or without the colon (``Answer $9$``); Minerva's ``Final Answer: The
   final answer is $X$. I hope it is correct.``. Prose after the answer is cut.

Lenient mode only (grading other people's outputs), when the text states none of the above:

4. the last math span (``$..$``, ``\\(..\\)``, ``\\[..\\]``) of the last sentence that has one
   (``Therefore $x \\geq 5$ is the solution.``);
5. the whole text when it is a bare answer (no prose);
6. the last number in the text.

Strict mode (the search's terminal steps, the ORM) stops after step 3: a step that states no
answer explicitly is not final.
"""

from __future__ import annotations

import re
from typing import Literal

from sphere_ray.grading.forms import boxed_spans, final_boxes

__all__ = ["Mode", "extract_answer", "is_bare_answer"]

Mode = Literal["strict", "lenient"]

_MARKER = re.compile(
    r"####|(?:the\s+)?final\s+answer\s*(?:(?:is|:|=)\s*:?|(?=[$\\]))|the\s+answer\s+is\s*:?"
    r"|(?:^|(?<=[.!?] ))\**answer\**\s*:(?:\*\*)?"  # "Answer: X" at a line or sentence start (not "our answer:")
    r"|(?:^|(?<=[.!?] ))\**answer\**\s+(?=[$\\\d(\[-])",  # "Answer $9$": no colon
    re.IGNORECASE | re.MULTILINE,
)
# Prose after the answer: a sentence end (". " + word), a line break, or a parenthetical remark.
_TRAILING = re.compile(
    r"(?:\.\s+(?=[A-Z(])|\.$|\n|\s+\((?!\d|-|\\)|,\s+(?:which|so|because|since)\b|\s+(?:because|since|as)\s)"
)
# Display math may span lines; inline math ($..$, \(..\)) may not (math-verify's convention too).
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+?)\$|\\\(([^\n]+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_NUMBER = re.compile(r"(?<![\w.])(?:-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+)(?![\w])")


def extract_answer(text: str, *, mode: Mode = "strict") -> str | None:
    """Return the final answer of a solution text, or None when it states none.

    Args:
        text: a model's solution (any length).
        mode: ``"strict"`` (only explicit answers: boxes and final-answer statements) or
            ``"lenient"`` (also a final math span, a bare answer, or the last number).

    Returns:
        The answer as written (LaTeX or plain, wrappers removed), or None.
    """
    if mode not in ("strict", "lenient"):
        raise ValueError(f"mode must be 'strict' or 'lenient', got {mode!r}")
    if not isinstance(text, str) or not text.strip():
        return None
    boxes = [b for b in boxed_spans(text) if b[2].strip()]
    stated = _last_statement(text, after=boxes[-1][1] if boxes else 0)
    if boxes and stated is not None and _looks_like_answer(stated):
        return stated
    if boxes:
        return ", ".join(final_boxes(text))
    if stated:
        return stated
    return _lenient(text) if mode == "lenient" else None


def _last_statement(text: str, after: int = 0) -> str | None:
    """The answer of the last final-answer statement that starts at or after ``after``."""
    markers = [m for m in _MARKER.finditer(text) if m.start() >= after]
    for m in reversed(markers):
        answer = _cut_prose(text[m.end() :])
        if answer:
            return answer
    return None


def _looks_like_answer(s: str) -> bool:
    """A statement after a box overrides it only when it states math (not "the answer is correct")."""
    return bool(re.search(r"[\d\\$]", s)) or bool(re.fullmatch(r"\(?[A-Ea-e]\)?", s.strip()))


def _cut_prose(tail: str) -> str:
    tail = tail.strip()
    inline = _MATH_SPAN.match(tail)
    if inline:  # an answer written in math mode ends with the math
        return next(g for g in inline.groups() if g is not None).strip()
    m = _TRAILING.search(tail)
    answer = tail[: m.start()] if m else tail
    return answer.strip().rstrip(".").strip().strip("*").strip()


def _lenient(text: str) -> str | None:
    sentences = [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])|\n+", text.strip()) if s.strip()]
    for sentence in reversed(sentences):
        spans = [next(g for g in m.groups() if g is not None) for m in _MATH_SPAN.finditer(sentence)]
        spans = [s.strip() for s in spans if s.strip()]
        if spans:
            return spans[-1]
    if is_bare_answer(text):
        return text.strip().rstrip(".").strip()
    numbers = _NUMBER.findall(text)
    return numbers[-1].rstrip(",") if numbers else None


def is_bare_answer(text: str) -> bool:
    """Whether ``text`` is an answer on its own: no prose, no math delimiters, no box, one line."""
    t = text.strip()
    if not t or "\n" in t or re.search(r"\$|\\[(\[]|\\boxed|\\fbox", t):
        return False
    return not re.search(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}", re.sub(r"\\(?:text|mbox|textnormal)\{[^{}]*\}", "", t))
