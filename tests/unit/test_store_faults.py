"""Storage faults of the output store (no Ray): a full or read-only disk mid-commit leaves nothing half-committed
and names the path; damaged parts are found on resume, moved aside with the reason, and their problems redone."""

import errno
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sphere_ray.generation.store as store_mod
from sphere_ray.generation.store import Batch, OutputStore


def _tree(pid):
    return {"problem_id": pid, "stage": 1, "outcome": "stage1", "num_pairs": 1, "generated_tokens": 5,
            "step_generations": 1, "prm_calls": 1, "seconds": 0.1, "policy_seconds": 0.05, "prm_seconds": 0.05,
            "attempts": 1, "trees_json": "[]"}  # fmt: skip


def _pair(pid):
    return {"prompt": "p", "chosen": "c", "rejected": "r", "pair_id": f"{pid}-0", "problem_id": pid, "stage": 1,
            "level": "trajectory", "prompt_kind": "solve", "depth": 1, "chosen_score": 0.9, "rejected_score": 0.1,
            "chosen_correct": True, "rejected_correct": False, "chosen_model": "m", "rejected_model": "m",
            "config_hash": "h"}  # fmt: skip


def _commit(store, ids):
    batch = Batch()
    batch["trees"].extend(_tree(i) for i in ids)
    batch["pairs"].extend(_pair(i) for i in ids)
    return store.commit(batch)


def _failing_write(monkeypatch, code, on):
    """``pq.write_table`` in the store fails with ``code`` for paths containing ``on``."""
    real = pq.write_table

    def write(table, where, **kw):
        if on in str(where):
            raise OSError(code, "simulated")
        return real(table, where, **kw)

    monkeypatch.setattr(store_mod.pq, "write_table", write)


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "the disk is full"),
                                             (errno.EROFS, "the file system is read-only")])  # fmt: skip
def test_a_failed_commit_leaves_nothing_and_names_the_path(tmp_path, monkeypatch, code, words):
    store = OutputStore(str(tmp_path / "out"))
    _commit(store, ["a", "b"])
    with monkeypatch.context() as m:
        _failing_write(m, code, "/trees/")  # the marker, written last: the pairs part was already written
        with pytest.raises(OSError, match=words) as info:
            _commit(store, ["c"])
    assert info.value.errno == code and str(tmp_path / "out" / "trees") in str(info.value)
    assert sorted(store.read("trees").column("problem_id").to_pylist()) == ["a", "b"]
    assert store.read("pairs").column("problem_id").to_pylist() == ["a", "b"]  # c's pairs part is gone
    assert len(list((tmp_path / "out" / "pairs").iterdir())) == 1 and not list((tmp_path / "out").rglob(".*tmp"))
    assert store.recover() == {"a", "b"}
    _commit(store, ["c"])  # the disk has room again: the next commit goes through
    assert sorted(store.read("pairs").column("problem_id").to_pylist()) == ["a", "b", "c"]


def test_an_unwritable_folder_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError, match=r"cannot write .*file/pairs"):
        OutputStore(str(tmp_path / "file"))


def test_readers_skip_data_parts_without_a_marker(tmp_path):
    store = OutputStore(str(tmp_path / "out"))
    _commit(store, ["a"])
    orphan = pa.Table.from_pylist([_pair("zombie")], schema=store.layout.tables["pairs"])
    pq.write_table(orphan, tmp_path / "out" / "pairs" / "part-orphan.parquet")  # a killed run's leftover
    assert store.read("pairs").column("problem_id").to_pylist() == ["a"]


def test_damaged_parts_are_moved_aside_and_their_problems_redone(tmp_path):
    store = OutputStore(str(tmp_path / "out"))
    keep = _commit(store, ["a", "b"])
    cut = _commit(store, ["c", "d"])
    flip = _commit(store, ["e"])
    marker = tmp_path / "out" / "trees" / cut
    marker.write_bytes(marker.read_bytes()[: marker.stat().st_size // 2])  # truncated
    pairs = tmp_path / "out" / "pairs" / flip
    raw = bytearray(pairs.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = b"\xff" * 64  # corrupted in the middle
    raw[-12:-8] = b"\x00\x00\x00\x7f"  # and its footer length
    pairs.write_bytes(bytes(raw))
    done = store.recover()
    assert done == {"a", "b"}  # c, d, e are done again by the next run
    assert sorted(store.read("trees").column("problem_id").to_pylist()) == ["a", "b"]
    assert store.read("pairs").column("problem_id").to_pylist() == ["a", "b"]
    quarantine = tmp_path / "out" / "quarantine"
    assert sorted(p.name for p in (quarantine / "trees").iterdir()) == sorted([cut, flip])
    assert sorted(p.name for p in (quarantine / "pairs").iterdir()) == sorted([cut, flip])  # whole commits
    reasons = [json.loads(line) for line in (quarantine / "reasons.jsonl").read_text().splitlines()]
    assert sorted(r["part"] for r in reasons) == sorted([cut, flip]) and all(r["reason"] for r in reasons)
    assert (tmp_path / "out" / "trees" / keep).exists()
    _commit(store, ["c", "d", "e"])
    assert store.recover() == {"a", "b", "c", "d", "e"}  # once each, nothing twice
    assert sorted(store.read("trees").column("problem_id").to_pylist()) == ["a", "b", "c", "d", "e"]


def test_parts_written_before_a_column_was_added_are_kept(tmp_path):
    """A tree part without ``call_retries`` (written before it existed) is whole: kept on resume, read as null;
    a part missing a required column is still damaged."""
    store = OutputStore(str(tmp_path / "out"))
    _commit(store, ["old"])
    (name,) = [p.name for p in (tmp_path / "out" / "trees").iterdir()]
    part = tmp_path / "out" / "trees" / name
    pq.write_table(pq.read_table(part).drop(["call_retries"]), part)  # as an older version wrote it
    assert store.recover() == {"old"} and not (tmp_path / "out" / "quarantine").exists()
    assert store.read("trees").column("call_retries").to_pylist() == [None]
    pq.write_table(pq.read_table(part).drop(["outcome"]), part)
    assert store.recover() == set() and (tmp_path / "out" / "quarantine").exists()
