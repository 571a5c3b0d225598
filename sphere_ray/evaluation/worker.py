"""The Ray Data UDF of the evaluation job: a problem in, its graded samples out.

Each actor calls one Serve generation app (:class:`~sphere_ray.serving.client.ServePolicy`) with many
problems in flight (the engine batches them): one call for the ``n`` answers, and one for their reviews
when self-correction is on.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sphere_ray.evaluation.prompts import answer_messages, review_messages
from sphere_ray.grading import extract_answer, is_correct
from sphere_ray.serving.schema import GenerateRequest

__all__ = ["EvalWorker", "grade"]


def grade(text: str, reference: str, question: str | None = None) -> tuple[str | None, bool]:
    """``(extracted answer, correct)`` of a model output against the reference answer (of ``question``)."""
    return extract_answer(text), is_correct(text, reference, question=question)


class EvalWorker:
    """Callable class for ``Dataset.map``: one problem in, its graded samples out (JSON in ``payload``).

    Args:
        app: Serve generation app of the model.
        model: model label written in every row.
        sampling: ``n``, ``temperature``, ``top_p``, ``top_k``, ``max_tokens``, ``seed``.
        self_correction: also ask for a review of each answer.
    """

    def __init__(self, app: str, model: str, sampling: dict[str, Any], self_correction: bool) -> None:
        from sphere_ray.serving.client import ServePolicy

        self.policy = ServePolicy(app)
        self.model, self.sampling, self.self_correction = model, sampling, self_correction

    async def __call__(self, problem: dict[str, Any]) -> dict[str, Any]:
        """Row ``id, problem, answer, benchmark, index`` -> ``{problem_id, benchmark, error, payload}``.

        Never raises: a problem that fails after the client's retries comes back with ``error`` set.
        """
        out = {"problem_id": problem["id"], "benchmark": problem["benchmark"], "error": "", "payload": "[]"}
        try:
            out["payload"] = json.dumps(await self._evaluate(problem))
        except Exception as e:
            out["error"] = f"{type(e).__name__}: {e}"[:2000]
        return out

    async def _evaluate(self, problem: dict[str, Any]) -> list[dict[str, Any]]:
        prompt = await self.policy.render_chat(answer_messages(problem["problem"]))
        seed = self.sampling["seed"] + int(problem["index"])
        (samples,) = await self._generate([prompt], self.sampling["n"], [seed])
        rows = [_row(self.model, problem, j, s) for j, s in enumerate(samples)]
        if self.self_correction:
            await self._review(problem, rows, seed)
        return rows

    async def _generate(self, prompts: list[str], n: int, seeds: list[int]) -> list[list[Any]]:
        s = self.sampling
        request = GenerateRequest(prompts=prompts, n=n, temperature=s["temperature"], top_p=s["top_p"],
                                  top_k=s["top_k"], max_tokens=s["max_tokens"], seeds=seeds)  # fmt: skip
        return (await self.policy.generate(request)).outputs

    async def _review(self, problem: dict[str, Any], rows: list[dict[str, Any]], seed: int) -> None:
        chats = [review_messages(problem["problem"], r["output"]) for r in rows]
        prompts = await asyncio.gather(*(self.policy.render_chat(c) for c in chats))
        reviews = await self._generate(list(prompts), 1, [seed + 7919 * (j + 1) for j in range(len(rows))])
        for row, (review,) in zip(rows, reviews, strict=True):
            answer, correct = grade(review.text, row["reference"], problem["problem"])
            row.update(revised_output=review.text, revised_extracted=answer or "", revised_correct=correct)


def _row(model: str, problem: dict[str, Any], sample: int, out: Any) -> dict[str, Any]:
    answer, correct = grade(out.text, problem["answer"], problem["problem"])
    return {
        "model": model, "benchmark": problem["benchmark"], "problem_id": problem["id"], "sample": sample,
        "reference": problem["answer"], "output": out.text, "extracted": answer or "", "correct": correct,
        "finish_reason": out.finish_reason, "num_tokens": out.num_tokens,
        "revised_output": "", "revised_extracted": "", "revised_correct": None,
    }  # fmt: skip
