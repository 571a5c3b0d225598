"""A fuzzed problems file through the input stage (no Ray): each bad row a reject with its reason, each good
row staged once, the counts adding up."""

import json

from sphere_ray.generation.queue import stage_problems
from sphere_ray.generation.store import OutputStore
from sphere_ray.sim.fuzz import BAD_KINDS, fuzzed_lines

REASON = {
    "not_json": "not valid JSON", "invalid_utf8": "not valid UTF-8", "not_an_object": "row is a",
    "missing_problem": "missing problem", "missing_answer": "missing answer", "problem_not_string": "problem is a",
    "answer_nan": "answer is a float", "answer_none": "missing answer", "empty_problem": "empty problem",
    "empty_answer": "empty answer", "huge_problem": "problem too long", "bool_id": "id is not",
    "duplicate_id": "duplicate id",
}  # fmt: skip


def test_every_bad_row_is_a_reject_with_its_reason(tmp_path):
    lines = list(fuzzed_lines(1200, bad_share=0.25, seed=1))
    assert {kind for _, kind in lines} == {"good", *BAD_KINDS}
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(line for line, _ in lines) + b"\n")
    store = OutputStore(str(tmp_path / "out"))
    queue = stage_problems(str(path), None, set(), store, part_rows=256)
    good = [json.loads(line)["id"] for line, kind in lines if kind == "good"]
    assert queue.problems == len(good) and queue.rejects == len(lines) - len(good)
    assert store.read_queue().column("id").to_pylist() == good  # every good row, once, in order
    rejects = {r["row"]: r for r in store.read("rejects").to_pylist()}
    for row, (_, kind) in enumerate(lines):
        if kind != "good":
            assert rejects[row]["reason"].startswith(REASON[kind]), (kind, rejects[row]["reason"])
            assert len(rejects[row]["raw"]) <= 2000  # the 1 MB row is kept as a 2,000-character excerpt
    assert len(rejects) == queue.rejects
