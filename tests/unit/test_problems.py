"""Problem loading: good rows kept, each bad row rejected with its reason."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sphere_ray.problems import load_problems


def test_bundled_sample_loads():
    result = load_problems("gsm8k_train_sample")
    assert len(result.problems) == 64 and not result.rejects
    assert result.problems[0].id == "gsm8k-train-00000" and result.problems[0].answer == "72"
    assert len(load_problems("gsm8k_train_sample", limit=3).problems) == 3


def test_bad_rows_become_rejects_and_good_rows_are_kept(tmp_path):
    good = [{"id": f"g{i}", "problem": f"What is {i}+1?", "answer": str(i + 1), "level": 2} for i in range(5)]
    lines = [json.dumps(good[0]).encode(), json.dumps(good[1]).encode()]
    lines += [
        json.dumps({"id": "e1", "problem": "   ", "answer": "1"}).encode(),
        json.dumps({"id": "e2", "problem": "What?"}).encode(),
        json.dumps({"id": "g0", "problem": "dup?", "answer": "3"}).encode(),
        json.dumps({"id": "e4", "problem": 12, "answer": "3"}).encode(),
        json.dumps({"id": "e5", "problem": "x" * 1_000_000, "answer": "3"}).encode(),
        b'{"id": "e6", "problem": "caf\xe9", "answer": "1"}',
        b"{not json",
        json.dumps(["a", "list"]).encode(),
        json.dumps({"id": "e9", "problem": "q", "answer": ""}).encode(),
        json.dumps({"id": True, "problem": "q", "answer": "1"}).encode(),
        json.dumps(good[2]).encode(),
        b"",
        json.dumps({"problem": "no id here?", "answer": "4"}).encode(),
        json.dumps(good[3]).encode(),
        json.dumps({**good[4], "level": "hard"}).encode(),
    ]
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(lines))
    result = load_problems(str(path))
    ids = [p.id for p in result.problems]
    assert ids[:3] == ["g0", "g1", "g2"] and ids[4:] == ["g3", "g4"] and ids[3].startswith("sha-")
    reasons = {r.row: r.reason for r in result.rejects}
    assert reasons == {
        2: "empty problem",
        3: "missing answer",
        4: "duplicate id 'g0'",
        5: "problem is a int, not a string",
        6: "problem too long (1000000 chars > 20000)",
        7: reasons[7],
        8: reasons[8],
        9: "row is a list, not an object",
        10: "empty answer",
        11: "id is not a non-empty string (True)",
    }
    assert reasons[7].startswith("not valid UTF-8") and reasons[8].startswith("not valid JSON")
    assert all(len(r.raw) <= 2000 for r in result.rejects)
    assert result.problems[0].level == 2 and result.problems[-1].level is None


def test_parquet_input(tmp_path):
    table = pa.Table.from_pylist(
        [{"id": "a", "problem": "1+1?", "answer": "2"}, {"id": "b", "problem": "", "answer": "2"}]
    )
    pq.write_table(table, tmp_path / "p.parquet")
    result = load_problems(str(tmp_path / "p.parquet"))
    assert [p.id for p in result.problems] == ["a"] and result.rejects[0].reason == "empty problem"


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="neither a bundled set"):
        load_problems(str(tmp_path / "nope.jsonl"))
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(ValueError, match="unknown file type"):
        load_problems(str(tmp_path / "x.csv"))


def test_reference_solutions_are_kept_where_the_source_has_them():
    problems = load_problems("gsm8k_train_sample").problems
    assert problems[0].solution.startswith("Natalia sold 48/2 = 24 clips in May.")
    assert load_problems("amc23").problems[0].solution is None  # AMC23 has no solutions upstream
