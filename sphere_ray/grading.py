"""Final-answer extraction and equivalence grading.

Public API (used by the search router, the evaluation job and the default ORM):

* :func:`extract_answer` — the final answer of a model's solution text, or None.
* :func:`is_equivalent` — whether two final answers are mathematically equivalent.

Equivalence is decided by ``math-verify`` after :mod:`sphere_ray.answer_forms` has rewritten
the forms math-verify is weak on; units and set-vs-tuple brackets are compared outside it. The
check never raises and never hangs: math-verify runs under its own ``signal.alarm`` timeout on
the main thread and in a killable helper process on any other thread (Ray actors, Serve replicas).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import re
import threading

from sphere_ray.answer_forms import AnswerForm, analyse, boxed_contents

__all__ = ["extract_answer", "is_equivalent"]

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
"""Wall-clock budget of one math-verify comparison, in seconds."""

_MAX_ANSWER_CHARS = 2_000

_MARKER = re.compile(
    r"####|(?:the\s+)?final\s+answer\s*(?:is|:|=)\s*:?|the\s+answer\s+is\s*:?|(?<![a-z])answer\s*:(?:\*\*)?",
    re.IGNORECASE,
)
# Prose after the answer: a sentence end (". " + word), a line break, or a parenthetical remark.
_TRAILING = re.compile(
    r"(?:\.\s+(?=[A-Z(])|\.$|\n|\s+\((?!\d|-|\\)|,\s+(?:which|so|because|since)\b|\s+(?:because|since|as)\s)"
)


def extract_answer(text: str) -> str | None:
    """Return the final answer of a solution text, or None when it states none.

    The last ``\\boxed{...}``/``\\fbox{...}`` (nested braces) wins; otherwise the last of
    ``#### X``, ``The (final) answer is X``, ``Answer: X``. Trailing prose after the answer,
    surrounding ``$``/``\\(``…``\\)`` and a final period are dropped.

    Args:
        text: a model's solution (any length; only the final answer is returned).

    Returns:
        The answer as written (LaTeX or plain), or None.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    boxes = [b.strip() for b in boxed_contents(text) if b.strip()]
    if boxes:
        return boxes[-1]
    markers = list(_MARKER.finditer(text))
    if not markers:
        return None
    return _cut_prose(text[markers[-1].end() :]) or None


def _cut_prose(tail: str) -> str:
    tail = tail.strip()
    inline = re.match(r"(\$\$?|\\\(|\\\[)(.+?)(\$\$?|\\\)|\\\])", tail, re.DOTALL)
    if inline:  # an answer written in math mode ends with the math
        return inline.group(2).strip()
    m = _TRAILING.search(tail)
    answer = tail[: m.start()] if m else tail
    return answer.strip().rstrip(".").strip().strip("*").strip()


def is_equivalent(pred: str, ref: str) -> bool:
    """Whether ``pred`` and ``ref`` are mathematically equivalent final answers.

    Handles several boxes in one string (compared as the list of boxed answers, and by the last
    box), units (``5 m`` differs from ``5 cm``; a unit on one side only is ignored), percent,
    ``\\varnothing``, repeating decimals, ``√2``, ``2pi``, ``1.5e3``, thousands separators,
    currency words, sets vs tuples (``\\{1,2\\}`` differs from ``(1,2)``) and inequalities vs
    intervals (``x>3`` equals ``(3,\\infty)``). Never raises; anything that cannot be decided
    within :data:`TIMEOUT_S` is not equivalent.

    Args:
        pred: the predicted final answer (may still contain ``\\boxed``).
        ref: the reference final answer.
    """
    try:
        return _is_equivalent(pred, ref)
    except Exception:
        log.debug("is_equivalent(%r, %r) failed", pred, ref, exc_info=True)
        return False


def _is_equivalent(pred: str, ref: str) -> bool:
    if not isinstance(pred, str) or not isinstance(ref, str):
        return False
    if len(pred) > _MAX_ANSWER_CHARS or len(ref) > _MAX_ANSWER_CHARS:
        return False
    pred_options = _box_readings(pred)
    ref_options = _box_readings(ref)
    return any(_forms_equal(analyse(p), analyse(r)) for p in pred_options for r in ref_options)


def _box_readings(s: str) -> list[str]:
    """The ways a possibly multi-boxed string can be read: last box, then all boxes as a list."""
    boxes = [b for b in boxed_contents(s) if b.strip()]
    if not boxes:
        return [s] if s.strip() else []
    readings = [boxes[-1]]
    if len(boxes) > 1:
        readings.append(", ".join(boxes))
    return readings


def _forms_equal(pred: AnswerForm, ref: AnswerForm) -> bool:
    if not pred.latex or not ref.latex:
        return False
    if pred.unit and ref.unit and pred.unit != ref.unit:
        return False
    if {pred.bracket, ref.bracket} == {"set", "tuple"}:
        return False
    if _plain(pred.latex) == _plain(ref.latex):
        return True
    return _math_verify(pred.latex, ref.latex)


def _plain(s: str) -> str:
    return re.sub(r"\s+|\\[,;:! ]", "", s).lower()


def _math_verify(pred: str, ref: str) -> bool:
    if threading.current_thread() is threading.main_thread():
        return _verify_latex(pred, ref, TIMEOUT_S)
    return _verify_in_helper(pred, ref)


def _verify_latex(pred: str, ref: str, timeout_s: float | None) -> bool:
    from math_verify import parse, verify  # heavy import (sympy): only when needed

    seconds = max(1, int(timeout_s)) if timeout_s else None
    gold = parse(f"${ref}$", parsing_timeout=seconds)
    guess = parse(f"${pred}$", parsing_timeout=seconds)
    if not gold or not guess:
        return False
    return bool(verify(gold, guess, timeout_seconds=seconds))


_helper_lock = threading.Lock()
_helper: cf.ProcessPoolExecutor | None = None


def _verify_in_helper(pred: str, ref: str) -> bool:
    """Run math-verify in a helper process that is killed and replaced if it overruns."""
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        pool = _helper
    future = pool.submit(_verify_latex, pred, ref, TIMEOUT_S)
    try:
        return future.result(timeout=TIMEOUT_S * 3)
    except cf.TimeoutError:
        log.warning("math-verify overran %.0fs on %r vs %r; restarting its helper", TIMEOUT_S * 3, pred, ref)
        with _helper_lock:
            if _helper is pool:
                _helper = None
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        return False
