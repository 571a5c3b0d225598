"""A fuzzed problems file: good simulated problems mixed with every kind of bad row a real file has.

Rehearsal data for the input path (the loader, the staged queue, rejects), as :func:`~sphere_ray.sim.text.sim_problems`
is for the models. Each line comes with what it is (``KINDS``), so a test or the chaos benchmark
(``benchmarks/chaos.py``) can check that every bad row became a reject with a reason and every good
row was processed, and that the counts add up. Deterministic for a seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from sphere_ray.sim.text import sim_problems

__all__ = ["BAD_KINDS", "fuzzed_lines"]

BAD_KINDS = (
    "not_json", "invalid_utf8", "not_an_object", "missing_problem", "missing_answer", "problem_not_string",
    "answer_nan", "answer_none", "empty_problem", "empty_answer", "huge_problem", "bool_id", "duplicate_id",
)  # fmt: skip
"""Every kind of bad row the file mixes in (``good`` is the other kind)."""


def _bad(kind: str, good: dict, rng: random.Random, seen_id: str) -> bytes:
    row = dict(good)
    if kind == "not_json":
        return rng.choice([b'{"id": "x", "problem": ', b"{not json", b"[1, 2", b'{"a": 1}}'])
    if kind == "invalid_utf8":
        return json.dumps(row).encode().replace(b"What", b"Wh\xff\xfet", 1)
    if kind == "not_an_object":
        return json.dumps(rng.choice([[row["problem"], row["answer"]], "a string", 42, None])).encode()
    if kind in ("missing_problem", "missing_answer"):
        row.pop(kind.split("_")[1])
    elif kind == "problem_not_string":
        row["problem"] = rng.choice([12, ["What is 1 + 1?"], {"text": "x"}, True])
    elif kind == "answer_nan":
        return json.dumps({**row, "answer": float("nan")}).encode()  # JSON's NaN, as pandas writes it
    elif kind == "answer_none":
        row["answer"] = None
    elif kind in ("empty_problem", "empty_answer"):
        row[kind.split("_")[1]] = rng.choice(["", "   ", "\n\t"])
    elif kind == "huge_problem":
        row["problem"] = "What is 1 + 1? " + "x" * (1 << 20)  # 1 MB
    elif kind == "bool_id":
        row["id"] = True
    elif kind == "duplicate_id":
        row["id"] = seen_id
    return json.dumps(row).encode()


def fuzzed_lines(n: int, bad_share: float = 0.2, seed: int = 0) -> Iterator[tuple[bytes, str]]:
    """``n`` JSONL lines ``(line without newline, kind)``; about ``bad_share`` of them bad, of every kind in turn.

    Good rows are :func:`sim_problems` with distinct ids; a ``duplicate_id`` row repeats the id of a good row
    written before it.
    """
    rng = random.Random(seed)
    problems = sim_problems(n, seed=seed)
    first_id = None
    for i, good in enumerate(problems):
        if first_id is not None and rng.random() < bad_share:
            kind = BAD_KINDS[i % len(BAD_KINDS)]
            yield _bad(kind, good, rng, first_id), kind
            continue
        first_id = first_id or good["id"]
        yield json.dumps(good).encode(), "good"
