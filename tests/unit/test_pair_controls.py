"""The DPO controls built from pairs: sides swapped at random, and the right solutions as RFT samples."""

import pyarrow as pa
import pytest
from pair_data import pair_row

from sphere_ray.pairs import PAIR_SCHEMA, correct_samples, swap_sides


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=PAIR_SCHEMA)


def test_swap_sides_exchanges_every_side_column_of_the_same_rows():
    table = _table([pair_row(f"p-{i}", 0) for i in range(40)])
    swapped = swap_sides(table, 0.5, seed=3)
    assert swapped.schema.equals(PAIR_SCHEMA) and swapped.num_rows == 40
    before, after = table["chosen"].to_pylist(), swapped["chosen"].to_pylist()
    flipped = [i for i in range(40) if before[i] != after[i]]
    assert 8 <= len(flipped) <= 32  # about half
    for i in range(40):
        before, after = table.slice(i, 1).to_pylist()[0], swapped.slice(i, 1).to_pylist()[0]
        for suffix in ("", "_score", "_correct", "_model"):
            pair = (before[f"chosen{suffix}"], before[f"rejected{suffix}"])
            got = (after[f"chosen{suffix}"], after[f"rejected{suffix}"])
            assert got == (pair[::-1] if i in flipped else pair)
        assert after["prompt"] == before["prompt"] and after["pair_id"] == before["pair_id"]
    assert swap_sides(table, 0.5, seed=3).equals(swapped)  # seeded
    assert swap_sides(table, 0.0).equals(table)
    assert swap_sides(table, 1.0)["chosen"].equals(table["rejected"])


def test_swap_sides_rejects_a_bad_fraction_and_keeps_an_empty_table():
    with pytest.raises(ValueError, match="fraction"):
        swap_sides(_table([]), 1.5)
    assert swap_sides(_table([]), 0.5).num_rows == 0


def test_correct_samples_keeps_distinct_model_written_right_solutions():
    rows = [
        pair_row("p-1", 0),  # chosen right (tiny), rejected wrong
        pair_row("p-1", 0, pair_id="p-1:again"),  # the same solution again: one sample
        pair_row("p-2", 0, chosen_model="reference"),  # the reference is not a sample
        pair_row("p-3", 0, level="step", depth=1),  # a step is not a solution
        pair_row("p-4", 0, stage=3, rejected="4 + 8 = 12. The answer is 12.", rejected_correct=True,
                 rejected_model="small"),  # both right (stage 3): both are samples
        pair_row("p-5", 0, rejected_correct=None),  # unknown is not right
    ]  # fmt: skip
    out = correct_samples(_table(rows))
    assert out.schema.names == ["prompt", "completion", "problem_id", "model"]
    got = [(r["problem_id"], r["model"]) for r in out.to_pylist()]
    assert got == [("p-1", "tiny"), ("p-4", "tiny"), ("p-4", "small"), ("p-5", "tiny")]
    assert all(r["completion"] and r["prompt"].endswith("assistant\n") for r in out.to_pylist())
    assert correct_samples(_table([])).num_rows == 0
