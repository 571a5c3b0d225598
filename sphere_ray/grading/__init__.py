"""Grading: is this final answer right? The one rule used by the search, the ORM, the PRM and evaluation.

* :func:`is_correct` — whether a solution text's final answer equals the reference (extraction +
  equivalence); every caller that asks "is this solution right" uses it.
* :func:`extract_answer` — the final answer of a solution text (:mod:`.extract`, strict or lenient).
* :func:`is_equivalent` — whether two final answers are equivalent (:mod:`.equivalence`): math-verify's
  verdict stands; the rewrites of :mod:`.forms` only let math-verify see forms it cannot parse.

Measured against plain math-verify on other graders' test suites by :mod:`.suites`
(``benchmarks/grading.py``, ``tests/unit/test_grading_corpus.py``).
"""

from __future__ import annotations

from sphere_ray.grading.equivalence import TIMEOUT_S, contradicts, is_equivalent, math_verify_agrees
from sphere_ray.grading.extract import Mode, extract_answer, is_bare_answer
from sphere_ray.grading.forms import restates_question, strip_wrappers

__all__ = ["TIMEOUT_S", "Mode", "extract_answer", "is_correct", "is_equivalent"]


def is_correct(solution: str, reference: str, *, mode: Mode = "strict", question: str | None = None) -> bool:
    """Whether the final answer stated in ``solution`` is equivalent to ``reference``.

    Args:
        solution: a solution text (a model's output or a whole trajectory).
        reference: the ground-truth final answer (boxes and ``$`` are allowed), or a reference
            solution text, whose final answer is then read in lenient mode.
        mode: extraction mode, ``"strict"`` (explicit answers only: what the search and the ORM
            use) or ``"lenient"`` (also a final math span, a bare answer or the last number).
        question: the problem text, when known. A stated answer that is the question's own arithmetic left
            undone (``13 + 9`` for "What is 13 + 9?", :func:`~sphere_ray.grading.forms.restates_question`)
            is then wrong, although math-verify evaluates it to the reference.

    Returns:
        Strict: whether the explicitly stated answer is equivalent (False when none is stated).
        Lenient: also True when the solution is a text (not a bare answer), no guard rules its stated
        answer out, and math-verify's own reading of the two whole texts agrees.
    """
    answer = extract_answer(solution, mode=mode)
    if answer is not None and question is not None and restates_question(answer, question):
        return False
    refs = _reference_readings(reference)
    if answer is not None and any(is_equivalent(answer, ref) for ref in refs):
        return True
    if answer is not None and all(contradicts(answer, ref) for ref in refs):
        return False  # e.g. "332ab" against 332, which math-verify's own reading would accept
    # math-verify reads a bare "4, 12, 2" as its last number: only texts go to its own reading.
    return mode == "lenient" and not is_bare_answer(solution) and math_verify_agrees(solution, reference)


def _reference_readings(reference: str) -> list[str]:
    """The reference as given, and its leniently extracted final answer when that differs."""
    if not isinstance(reference, str):
        return []
    stated = extract_answer(reference, mode="lenient")
    return [reference] if stated is None or stated == strip_wrappers(reference) else [reference, stated]
