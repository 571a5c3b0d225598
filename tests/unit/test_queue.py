"""Staging the generation job's input: lazy reading, rejects, duplicates, resume and limit (no Ray)."""

import json
import tracemalloc

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sphere_ray.generation.queue import stage_problems
from sphere_ray.generation.store import OutputStore
from sphere_ray.problems import iter_problems
from sphere_ray.sim.text import sim_problems


def _write_jsonl(path, rows):
    path.write_bytes(b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode() for r in rows))


def test_stage_writes_parts_rejects_and_skips_done(tmp_path):
    good = list(sim_problems(10, seed=3))
    rows = [*good[:5], b"{not json\n", {"id": "x", "problem": "p"}, good[2], *good[5:]]
    _write_jsonl(tmp_path / "in.jsonl", rows)
    store = OutputStore(str(tmp_path / "out"))
    queue = stage_problems(str(tmp_path / "in.jsonl"), None, {good[0]["id"], "unrelated"}, store, part_rows=4)
    assert (queue.problems, queue.done, queue.todo, queue.rejects) == (10, 1, 9, 3)
    assert len(queue.parts) == 3  # 4 + 4 + 1
    staged = store.read_queue().column("id").to_pylist()
    assert staged == [p["id"] for p in good[1:]]  # input order, done one skipped, duplicate not staged twice
    rejects = store.read("rejects").to_pylist()
    assert [r["row"] for r in rejects] == [5, 6, 7]
    assert [r["reason"].split(" (")[0] for r in rejects] == [
        "not valid JSON",
        "missing answer",
        f"duplicate id {good[2]['id']!r}",
    ]


def test_restaging_replaces_the_previous_queue(tmp_path):
    _write_jsonl(tmp_path / "in.jsonl", list(sim_problems(6, seed=1)))
    store = OutputStore(str(tmp_path / "out"))
    assert stage_problems(str(tmp_path / "in.jsonl"), None, set(), store, part_rows=2).todo == 6
    queue = stage_problems(str(tmp_path / "in.jsonl"), 3, set(), store, part_rows=2)
    assert queue.todo == 3 and store.read_queue().num_rows == 3 and len(queue.parts) == 2


def test_limit_keeps_reporting_rejects_after_it(tmp_path):
    rows = [*sim_problems(4, seed=2), {"id": "bad", "problem": "", "answer": "1"}]
    _write_jsonl(tmp_path / "in.jsonl", rows)
    items = list(iter_problems(str(tmp_path / "in.jsonl"), limit=2))
    assert [type(i).__name__ for i in items] == ["Problem", "Problem", "Reject"]


def test_parquet_folder_is_read_batch_by_batch_in_order(tmp_path):
    problems = list(sim_problems(9000, seed=5))
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.Table.from_pylist(problems[:5000]), tmp_path / "pq" / "a.parquet", row_group_size=1000)
    pq.write_table(pa.Table.from_pylist(problems[5000:]), tmp_path / "pq" / "b.parquet")
    ids = [p.id for p in iter_problems(str(tmp_path / "pq"))]
    assert ids == [p["id"] for p in problems]


def test_jsonl_is_read_lazily(tmp_path):
    """Memory while reading a ~50 MB file stays far below the file's size."""
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        for p in sim_problems(20_000, seed=9):
            f.write(json.dumps({**p, "solution": "x" * 2000}) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    count = sum(1 for _ in iter_problems(str(path)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 20_000
    assert peak < size / 4, (peak, size)  # ids for duplicate detection, one 1 MiB chunk; not the file


def test_unreadable_input_fails_before_anything_is_written(tmp_path):
    store = OutputStore(str(tmp_path / "out"))
    with pytest.raises(ValueError, match="neither a bundled set"):
        stage_problems(str(tmp_path / "missing.jsonl"), None, set(), store, part_rows=8)


def test_store_layout_of_another_job_commits_and_resumes(tmp_path):
    """One store for every per-problem job: a layout names its tables; the marker table marks a commit."""
    from sphere_ray.generation.store import REJECT_SCHEMA, Batch, Layout

    marker = pa.schema([pa.field("problem_id", pa.string(), nullable=False), pa.field("kept", pa.int32())])
    rows = pa.schema([pa.field("problem_id", pa.string()), pa.field("completion", pa.string())])
    layout = Layout("problems", {"sft": rows, "rejects": REJECT_SCHEMA, "problems": marker})
    store = OutputStore(str(tmp_path / "out"), layout=layout)
    batch = Batch()
    batch["sft"] += [{"problem_id": "a", "completion": "x"}, {"problem_id": "a", "completion": "y"}]
    batch["problems"].append({"problem_id": "a", "kept": 2})
    batch["rejects"].append({"problem_id": "b", "source": "s", "row": 1, "reason": "length: long", "raw": "{}"})
    assert batch.problems(layout) == 2
    store.commit(batch)
    leftover = pa.Table.from_pylist([{"problem_id": "c", "completion": "z"}], schema=rows)
    pq.write_table(leftover, tmp_path / "out" / "sft" / "part-killed.parquet")  # a commit cut before its marker
    assert OutputStore(str(tmp_path / "out"), layout=layout).recover() == {"a", "b"}
    assert store.read("sft").column("completion").to_pylist() == ["x", "y"]  # the leftover is gone
    with pytest.raises(ValueError, match="not in the layout"):
        store.commit(Batch(pairs=[{}]))
    with pytest.raises(ValueError, match="trees"):
        store.read("trees")
    with pytest.raises(ValueError, match="rejects"):
        OutputStore(str(tmp_path / "bad"), layout=Layout("problems", {"problems": marker}))
