"""Equivalence of two final answers: math-verify's verdict, with safe normalisation as the fallback.

The decision for one reading of each side (see :func:`is_equivalent` for multi-box strings):

1. **Three guards that can only say "not equal"**: both sides carry a unit of the vocabulary and the
   units differ (``5 m`` vs ``5 cm``; math-verify drops units); one side is a lone number and the
   other that number followed by math with a symbol in it (``332ab``, ``4\\cos\\theta``; math-verify
   reads ``$332ab$`` as 332); one side is a set ``\\{..\\}`` and the other a tuple/interval
   (math-verify matches ``\\{1,2\\}`` with ``(1,2)``).
2. **math-verify on the answers as written.** "Equal" stands.
3. Otherwise, when a rewrite of :mod:`sphere_ray.grading.forms` changes a side, **math-verify on
   the rewritten forms**. A rewrite never decides by itself: only math-verify can say "equal".

math-verify runs under its own ``signal.alarm`` timeout on the main thread and, on any other thread
(Ray actors, Serve replicas), in a killable helper process, so the check never raises and never hangs.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import logging
import multiprocessing
import threading
from collections.abc import Callable

from sphere_ray.grading.extract import is_bare_answer
from sphere_ray.grading.forms import AnswerForm, analyse, final_boxes, number_times_math, strip_wrappers

__all__ = ["TIMEOUT_S", "contradicts", "is_equivalent", "math_verify_agrees"]

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
"""Wall-clock budget of one math-verify comparison, in seconds."""

_MAX_ANSWER_CHARS = 2_000
_MAX_TEXT_CHARS = 100_000


def is_equivalent(pred: str, ref: str) -> bool:
    """Whether ``pred`` and ``ref`` are mathematically equivalent final answers.

    A string with several boxes is read as its last box and as the list of all its boxes. Never
    raises; anything that cannot be decided within :data:`TIMEOUT_S` is not equivalent.

    Args:
        pred: the predicted final answer (may still contain ``\\boxed``, ``$``).
        ref: the reference final answer.
    """
    if not isinstance(pred, str) or not isinstance(ref, str):
        return False
    if len(pred) > _MAX_ANSWER_CHARS or len(ref) > _MAX_ANSWER_CHARS or not pred.strip() or not ref.strip():
        return False
    return _guarded(_judge, pred, ref)


def contradicts(pred: str, ref: str) -> bool:
    """Whether a guard of step 1 rules ``pred`` and ``ref`` unequal (units, a number next to math, set vs tuple).

    Cheap (no math-verify call); lenient grading does not ask math-verify's own reading of a text
    whose stated answer a guard has already ruled out.
    """
    if not isinstance(pred, str) or not isinstance(ref, str):
        return False
    pairs = [(strip_wrappers(p), strip_wrappers(r)) for p in _box_readings(pred) for r in _box_readings(ref)]
    return bool(pairs) and all(_conflict(analyse(p, other=r), analyse(r, other=p)) for p, r in pairs)


def math_verify_agrees(solution: str, reference: str) -> bool:
    """math-verify's own reading of two whole texts: ``verify(parse(reference), parse(solution))``.

    Lenient grading consults it when the project's extraction does not grade a solution right
    (math-verify finds answers in prose the documented extraction order leaves out). Never raises.
    """
    if not isinstance(solution, str) or not isinstance(reference, str):
        return False
    if len(solution) > _MAX_TEXT_CHARS or len(reference) > _MAX_TEXT_CHARS or not solution.strip():
        return False
    return _guarded(_verify_texts, solution, reference)


def _guarded(fn: Callable[[str, str, float], bool], pred: str, ref: str) -> bool:
    """``fn(pred, ref, TIMEOUT_S)`` on the main thread, else in the helper process; False on any error."""
    try:
        if threading.current_thread() is threading.main_thread():
            return fn(pred, ref, TIMEOUT_S)
        return _in_helper(fn, pred, ref)
    except Exception:
        log.debug("%s(%r, %r) failed", fn.__name__, pred, ref, exc_info=True)
        return False


def _verify_texts(solution: str, reference: str, timeout_s: float) -> bool:
    from math_verify import parse, verify

    seconds = max(1, int(timeout_s))
    latex = is_bare_answer(reference)  # a bare "4, 12, 2" is a list, not its last number
    first, second = (f"${reference}$", reference) if latex else (reference, f"${reference}$")
    gold = parse(first, parsing_timeout=seconds) or parse(second, parsing_timeout=seconds)
    guess = parse(solution, parsing_timeout=seconds)
    if not (gold and guess and verify(gold, guess, timeout_seconds=seconds)):
        return False
    found, stated = strip_wrappers(str(guess[-1])), strip_wrappers(str(gold[-1]))  # the strings it extracted
    return not _conflict(analyse(found, other=stated), analyse(stated, other=found))


def _judge(pred: str, ref: str, timeout_s: float) -> bool:
    return any(_pair_equal(p, r, timeout_s) for p in _box_readings(pred) for r in _box_readings(ref))


def _box_readings(s: str) -> list[str]:
    """How a possibly multi-boxed string reads: its last box, then the final sentence's boxes as a list."""
    boxes = final_boxes(s)
    if not boxes:
        return [s] if s.strip() else []
    return [boxes[-1]] if len(boxes) == 1 else [boxes[-1], ", ".join(boxes)]


def _pair_equal(pred: str, ref: str, timeout_s: float) -> bool:
    p, r = strip_wrappers(pred), strip_wrappers(ref)
    if not p or not r:
        return False
    p_form, r_form = analyse(p, other=r), analyse(r, other=p)
    if _conflict(p_form, r_form):
        return False
    if "".join(p.split()) == "".join(r.split()):  # the same answer, spacing aside
        return True
    if _math_verify(p, r, timeout_s):
        return True
    rewritten = (p_form.latex, r_form.latex)
    return rewritten != (p, r) and all(rewritten) and _math_verify(*rewritten, timeout_s)


def _conflict(pred: AnswerForm, ref: AnswerForm) -> bool:
    if pred.unit and ref.unit and pred.unit != ref.unit:
        return True
    if number_times_math(pred.latex, ref.latex) or number_times_math(ref.latex, pred.latex):
        return True
    return {pred.bracket, ref.bracket} == {"set", "tuple"}


def _math_verify(pred: str, ref: str, timeout_s: float) -> bool:
    """math-verify's verdict on two answers (``$``-wrapped LaTeX first, then its plain-expression reading)."""
    from math_verify import parse, verify  # heavy import (sympy): only when needed

    seconds = max(1, int(timeout_s))
    gold = parse(f"${ref}$", parsing_timeout=seconds) or parse(ref, parsing_timeout=seconds)
    guess = parse(f"${pred}$", parsing_timeout=seconds) or parse(pred, parsing_timeout=seconds)
    if not gold or not guess:
        return False
    return bool(verify(gold, guess, timeout_seconds=seconds))


_helper_lock = threading.Lock()
_helper: cf.ProcessPoolExecutor | None = None


def _in_helper(fn: Callable[[str, str, float], bool], pred: str, ref: str) -> bool:
    """Run ``fn`` in a helper process that is killed and replaced if it overruns."""
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            atexit.register(_helper.shutdown, wait=False, cancel_futures=True)  # before modules are torn down
        pool = _helper
    future = pool.submit(fn, pred, ref, TIMEOUT_S)
    try:
        return future.result(timeout=TIMEOUT_S * 6)
    except cf.TimeoutError:
        log.warning("math-verify overran %.0fs on %r vs %r; restarting its helper", TIMEOUT_S * 6, pred, ref)
        with _helper_lock:
            if _helper is pool:
                _helper = None
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        return False
