"""The evaluation prompts (documented in the README; the same for every model).

The answer prompt is the Qwen2.5-Math evaluation instruction (chain of thought, final answer boxed).
Self-correction appends the model's own answer as the assistant turn and asks for a review in a new
user turn, as in the paper's self-correction evaluation.
"""

from __future__ import annotations

__all__ = ["ANSWER_TEMPLATE", "REVIEW_MESSAGE", "answer_messages", "review_messages"]

ANSWER_TEMPLATE = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."
REVIEW_MESSAGE = (
    "Review your solution above step by step. If you find an error, correct it and write the corrected "
    "solution; if it is correct, restate it. Put your final answer within \\boxed{}."
)


def answer_messages(problem: str) -> list[dict[str, str]]:
    """The chat for the first answer."""
    return [{"role": "user", "content": ANSWER_TEMPLATE.format(problem=problem)}]


def review_messages(problem: str, answer: str) -> list[dict[str, str]]:
    """The chat asking the model to review and fix its ``answer``."""
    return [*answer_messages(problem), {"role": "assistant", "content": answer},
            {"role": "user", "content": REVIEW_MESSAGE}]  # fmt: skip
