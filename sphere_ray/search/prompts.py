"""Default prompt templates (the user turn; the policy's chat template is applied by the policy)."""

from __future__ import annotations

SOLVE_TEMPLATE = (
    "Solve the following math problem step by step. Write each step as one paragraph and separate "
    "steps with a blank line. End with the final answer in \\boxed{{}}.\n\n"
    "Problem: {problem}"
)
"""Stage 1 and 3: fields ``{problem}``."""

CORRECTION_TEMPLATE = (
    "Problem: {problem}\n\n"
    "Here is a solution to the problem:\n\n{solution}\n\n"
    "This solution contains an error. Review it step by step, find the first wrong step, and write "
    "a complete corrected solution. Write each step as one paragraph and separate steps with a blank "
    "line. End with the final answer in \\boxed{{}}."
)
"""Stage 2: fields ``{problem}`` and ``{solution}`` (the wrong Sol_max)."""


def render_template(template: str, field: str, **values: str) -> str:
    """Fill ``template`` with ``values``; a missing or unknown placeholder is a ``ValueError`` naming ``field``."""
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"{field}: template {template[:60]!r}... cannot be filled with {sorted(values)}: {e}") from e
