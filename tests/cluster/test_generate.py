"""The generation job on a local Ray cluster over the session's Serve apps: end to end, bad input,
resume after the driver is killed, and a policy replica killed mid-job."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sphere_ray.generation.config import GenerateJobConfig
from sphere_ray.generation.job import run_generate_job
from sphere_ray.generation.store import OutputStore

pytestmark = pytest.mark.serve
ROOT = Path(__file__).resolve().parents[2]
TINY = {"policy_app": "small_policy", "prm_app": "prm", "small_policy_app": "tiny_hf"}
FAST = {"num_candidates": 2, "max_depth": 2, "max_step_tokens": 8}


def _write(path, lines):
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else json.dumps(x).encode() for x in lines))
    return str(path)


def _accounting(out):
    store = OutputStore(str(out))
    trees = store.read("trees").column("problem_id").to_pylist()
    rejects = store.read("rejects").to_pylist()
    return store, trees, rejects


def test_end_to_end_with_bad_input(serve_apps, tmp_path, tiny_policy_path):
    # SmolLM2-135M solves almost nothing, but it repeats a sentence: that makes right answers, hence pairs
    ask = "Repeat exactly this sentence and nothing else: The answer is {}."
    good = [{"id": f"box{i}", "problem": ask.format(i), "answer": str(i)} for i in (1, 2, 3, 4)]
    bad = [
        {"id": "empty", "problem": "", "answer": "1"},
        {"id": "noanswer", "problem": "What is 1+1?"},
        {"id": "box1", "problem": "duplicate id", "answer": "0"},
        b'{"id": "latin1", "problem": "caf\xe9 price?", "answer": "1"}',
        {"id": "huge", "problem": "x" * 1_000_000, "answer": "1"},
    ]
    lines = [*good[:2], *bad, *good[2:]]
    cfg = GenerateJobConfig(
        problems=_write(tmp_path / "in.jsonl", lines), output_dir=str(tmp_path / "out"), start_serve=False,
        policy_app="policy", prm_app="prm", small_policy_app="tiny_hf", num_candidates=3, max_depth=2,
        max_step_tokens=32, problems_in_flight=4, ramp_up_s=2.0, commit_every=2, solve_template="{problem}",
    )  # fmt: skip
    summary = run_generate_job(cfg)
    _, trees, rejects = _accounting(tmp_path / "out")
    assert sorted(trees) == [g["id"] for g in good]  # every good row processed, exactly once
    reasons = {r["problem_id"]: r["reason"] for r in rejects}
    assert reasons["empty"] == "empty problem" and reasons["noanswer"] == "missing answer"
    assert reasons["box1"] == "duplicate id 'box1'" and reasons["huge"].startswith("problem too long")
    assert any(r["problem_id"] is None and r["reason"].startswith("not valid UTF-8") for r in rejects)
    assert len(rejects) == 5 and summary["problems_done"] == 4 and summary["rejects"] == 5
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config_hash"] and manifest["packages"]["ray"] and "git_sha" in manifest
    pairs_file = next((tmp_path / "out" / "pairs").glob("part-*.parquet"), None)
    if pairs_file is not None:
        assert b"sphere_ray.manifest" in pq.read_schema(pairs_file).metadata
    _check_pairs_with_datasets_and_trl(tmp_path / "out", tiny_policy_path)


def _check_pairs_with_datasets_and_trl(out, model_path):
    from datasets import load_dataset
    from trl.data_utils import is_conversational

    files = sorted(str(p) for p in (out / "pairs").glob("part-*.parquet"))
    assert files, "no pair was produced"
    ds = load_dataset("parquet", data_files=files, split="train")
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names) and len(ds) > 0
    for row in ds:
        assert not is_conversational(row) and row["chosen"] != row["rejected"] and row["chosen_correct"]
    assert len(set(ds["pair_id"])) == len(ds)
    from dpo_check import dpo_one_step

    assert dpo_one_step(ds, model_path, str(out / "dpo")) > 0


def _driver(args, out, gcs):
    cmd = [sys.executable, "-m", "jobs.generate", "--output_dir", str(out), "--ray_address", gcs, *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())


def test_resume_after_the_driver_is_killed(serve_apps, ray_cluster, tmp_path):
    problems = [{"id": f"r{i:02d}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(10)]
    src = _write(tmp_path / "in.jsonl", problems)
    args = ["--problems", src, "--start_serve", "false", "--commit_every", "1", "--problems_in_flight", "2"]
    args += [f"--{k}={v}" for k, v in {**TINY, **FAST}.items()]
    gcs = ray_cluster.get_runtime_context().gcs_address
    out = tmp_path / "out"
    proc = _driver(args, out, gcs)
    deadline = time.monotonic() + 300
    while len(list((out / "trees").glob("part-*.parquet"))) < 2 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.5)
    proc.kill()  # part-way: some problems committed, some in flight
    proc.wait()
    _, partial, _ = _accounting(out)
    assert 2 <= len(partial) < 10
    (out / "pairs" / ".part-leftover.parquet.tmp").write_bytes(b"junk")  # a torn write from the kill
    rerun = _driver(args, out, gcs)
    log = rerun.communicate(timeout=600)[0].decode()
    assert rerun.returncode == 0, log[-3000:]
    store, trees, rejects = _accounting(out)
    assert sorted(trees) == [p["id"] for p in problems] and not rejects  # the clean run's set, no duplicate
    pair_ids = store.read("pairs").column("pair_id").to_pylist()
    assert len(pair_ids) == len(set(pair_ids))
    assert not list((out / "pairs").glob(".*"))
    assert f"{len(partial)} already done" in log or "already done" in log


def test_policy_replica_killed_mid_job(serve_apps, ray_cluster, tmp_path):
    problems = [{"id": f"k{i:02d}", "problem": f"Count to {i}.", "answer": str(i)} for i in range(8)]
    cfg = GenerateJobConfig(
        problems=_write(tmp_path / "in.jsonl", problems), output_dir=str(tmp_path / "out"), start_serve=False,
        policy_app="tiny_hf", prm_app="prm", small_policy_app=None, problems_in_flight=3, commit_every=1,
        num_candidates=2, max_depth=3, max_step_tokens=48, call_retries=5,
    )  # fmt: skip
    killed = {}

    def killer():  # once the first problem is committed, the job is mid-way
        while not list((tmp_path / "out" / "trees").glob("part-*.parquet")):
            time.sleep(0.2)
        actors = ray_cluster.util.list_named_actors(all_namespaces=True)
        names = [a["name"] for a in actors if a["namespace"] == "serve"]
        replica = next(n for n in names if n.startswith("SERVE_REPLICA::tiny_hf#"))
        ray_cluster.kill(ray_cluster.get_actor(replica, namespace="serve"), no_restart=True)
        killed["at"] = time.monotonic()

    thread = threading.Thread(target=killer)
    thread.start()
    summary = run_generate_job(cfg)
    thread.join()
    _, trees, rejects = _accounting(tmp_path / "out")
    assert killed and sorted(trees) == [p["id"] for p in problems] and not rejects  # nothing lost
    assert summary["problems_done"] == 8
