"""Small pairs tables in the P3 schema for the DPO tests (real text, deterministic)."""

from __future__ import annotations

from pathlib import Path

from sphere_ray.pairs import PAIR_SCHEMA, write_pairs


def pair_row(problem_id: str, k: int, chosen: str | None = None, rejected: str | None = None, **kw) -> dict:
    a, b = 3 + k, 4 + int(problem_id.split("-")[-1])
    right = f"{a} + {b} = {a + b}. The answer is {a + b}."
    wrong = f"{a} + {b} = {a + b + 1}. The answer is {a + b + 1}."
    row = {
        "prompt": f"<|im_start|>user\nWhat is {a} + {b}?<|im_end|>\n<|im_start|>assistant\n",
        "chosen": chosen if chosen is not None else right,
        "rejected": rejected if rejected is not None else wrong,
        "pair_id": f"{problem_id}:{k}", "problem_id": problem_id, "stage": 1, "level": "trajectory",
        "prompt_kind": "solve", "depth": None, "chosen_score": 0.9, "rejected_score": 0.1, "chosen_correct": True,
        "rejected_correct": False, "chosen_model": "tiny", "rejected_model": "tiny", "config_hash": "test",
    }  # fmt: skip
    return {**row, **kw}


def write_pair_rows(rows: list[dict], path: Path) -> Path:
    import pyarrow as pa

    table = pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)
    return write_pairs(table, path)


def good_rows(problems: int = 6, per_problem: int = 4) -> list[dict]:
    return [pair_row(f"p-{i}", k) for i in range(problems) for k in range(per_problem)]
