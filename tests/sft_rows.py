"""Small SFT tables in the SFT data job's schema (``sft/``, TRL conversational prompt/completion) for the SFT tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sphere_ray.dialogue.behaviours import BEHAVIOURS
from sphere_ray.dialogue.worker import SFT_SCHEMA


def sft_row(problem_id: str, k: int, completion: str | None = None, prompt: str | None = None) -> dict:
    """Sample ``k`` of problem ``problem_id`` (``p-<n>``): a two-turn chain merged into one answer."""
    a, b = 3 + k, 4 + int(problem_id.split("-")[-1])
    answer = completion if completion is not None else (
        f"{a} + {b} = {a + b + 1}. The answer is {a + b + 1}.\n\nLet me verify: {a} + {b} is {a + b}, not "
        f"{a + b + 1}. I made an error, so I go back and fix it. The answer is \\boxed{{{a + b}}}."
    )  # fmt: skip
    return {
        "prompt": [{"role": "user", "content": prompt if prompt is not None else f"What is {a} + {b}?"}],
        "completion": [{"role": "assistant", "content": answer}],
        "problem_id": problem_id, "sample": k, "source": "test", "template_ids": ["verify-1"],
        "behaviours": ["verification", "backtracking"], "turns": 2, "answers": [str(a + b + 1), str(a + b)],
        "correct": [False, True], "corrected": True, "tokens": 40,
        "behaviour_counts": {name: int(name in ("verification", "backtracking")) for name in BEHAVIOURS},
        "config_hash": "test",
    }  # fmt: skip


def good_sft_rows(problems: int = 6, per_problem: int = 3) -> list[dict]:
    return [sft_row(f"p-{i}", k) for i in range(problems) for k in range(per_problem)]


def write_sft_rows(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SFT_SCHEMA), path)
    return path
