"""The generation job over Serve apps on the simulated engine: many problems, every one accounted for once."""

import json

from sphere_ray.generation.config import GenerateJobConfig
from sphere_ray.generation.job import run_generate_job
from sphere_ray.generation.store import OutputStore
from sphere_ray.serving.launch import replica_stats
from sphere_ray.sim.text import sim_problems


def test_sim_generation_accounts_for_every_problem(sim_apps, tmp_path):
    problems = list(sim_problems(120, seed=11))
    path = tmp_path / "sim.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    cfg = GenerateJobConfig(
        problems=str(path), output_dir=str(tmp_path / "out"), start_serve=False, policy_app="sim_policy",
        prm_app="sim_prm", small_policy_app="sim_small_policy", num_candidates=4, max_depth=8,
        max_step_tokens=64, problems_in_flight=32, commit_every=40,
    )  # fmt: skip
    summary = run_generate_job(cfg)
    store = OutputStore(str(tmp_path / "out"))
    trees = store.read("trees").column("problem_id").to_pylist()
    assert sorted(trees) == sorted(p["id"] for p in problems)  # every problem exactly once
    assert store.read("rejects").num_rows == 0 and summary["problems_done"] == len(problems)
    pairs = store.read("pairs")
    stages = set(pairs.column("stage").to_pylist())
    assert stages == {1, 2, 3}, stages
    assert all(pairs.column("chosen_correct").to_pylist())
    for app in ("sim_policy", "sim_prm"):  # affinity: each problem was served by one replica
        per_replica = replica_stats(app)
        assert len(per_replica) == 2, per_replica
        assert all(s["sessions"] > 0 for s in per_replica.values())  # load still spread over both
        # A replica whose queue probe is refused or slow hands a request to the ring's next replica
        # (the router's num_fallback_replicas, default 2): on a loaded 2-core machine a few do.
        total = sum(s["sessions"] for s in per_replica.values())
        assert len(problems) <= total <= len(problems) * 1.05, (app, per_replica)


def test_streamed_queue_with_rejects_and_resume(sim_apps, tmp_path):
    """Above ``stream_above`` Ray Data streams the staged Parquet queue; bad rows and reruns still add up."""
    problems = list(sim_problems(32, seed=12))
    bad = ["{oops", json.dumps({"id": "no-answer", "problem": "1+1"}), json.dumps(problems[3])]
    path = tmp_path / "sim.jsonl"
    path.write_text("\n".join([*(json.dumps(p) for p in problems[:20]), *bad, *(json.dumps(p) for p in problems[20:])]))
    cfg = GenerateJobConfig(
        problems=str(path), output_dir=str(tmp_path / "out"), start_serve=False, policy_app="sim_policy",
        prm_app="sim_prm", small_policy_app="sim_small_policy", num_candidates=4, max_depth=8,
        max_step_tokens=64, problems_in_flight=32, commit_every=40, stream_above=0, queue_part_rows=8,
    )  # fmt: skip
    summary = run_generate_job(cfg)
    store = OutputStore(str(tmp_path / "out"))
    assert len(list((tmp_path / "out" / "queue").glob("part-*.parquet"))) == 4
    trees = store.read("trees").column("problem_id").to_pylist()
    assert sorted(trees) == sorted(p["id"] for p in problems)  # every problem exactly once
    rejects = store.read("rejects").to_pylist()
    assert sorted(r["row"] for r in rejects) == [20, 21, 22] and summary["problems_done"] == len(problems)
    again = run_generate_job(cfg)  # resume: nothing left to search, nothing written twice
    assert store.read("trees").num_rows == len(problems) and again["problems_done"] == len(problems)


def test_fuzzed_input_and_a_damaged_commit_on_resume(sim_apps, tmp_path):
    """Every bad row of a fuzzed file becomes a reject with a reason, every good row is searched; a damaged
    part found on resume is moved aside and its problems are searched again, each problem once in the end."""
    from sphere_ray.sim.fuzz import fuzzed_lines

    lines = list(fuzzed_lines(150, bad_share=0.3, seed=4))
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(line for line, _ in lines) + b"\n")
    good = [json.loads(line)["id"] for line, kind in lines if kind == "good"]
    bad_rows = [i for i, (_, kind) in enumerate(lines) if kind != "good"]
    cfg = GenerateJobConfig(
        problems=str(path), output_dir=str(tmp_path / "out"), start_serve=False, policy_app="sim_policy",
        prm_app="sim_prm", small_policy_app="sim_small_policy", num_candidates=2, max_depth=4,
        max_step_tokens=32, problems_in_flight=32, commit_every=20, affinity=False,
    )  # fmt: skip
    summary = run_generate_job(cfg)
    store = OutputStore(str(tmp_path / "out"))
    rejects = store.read("rejects").to_pylist()
    assert sorted(r["row"] for r in rejects) == bad_rows and all(r["reason"] for r in rejects)
    assert sorted(store.read("trees").column("problem_id").to_pylist()) == sorted(good)
    assert summary["problems_done"] == len(good) and len(good) + len(bad_rows) == len(lines)
    part = sorted((tmp_path / "out" / "trees").glob("part-*.parquet"))[0]
    lost = pq_ids(part)
    part.write_bytes(part.read_bytes()[:100])  # truncated on disk
    again = run_generate_job(cfg)
    assert (tmp_path / "out" / "quarantine" / "trees" / part.name).exists() and lost
    trees = store.read("trees").column("problem_id").to_pylist()
    assert sorted(trees) == sorted(good) and again["problems_done"] == len(good)  # redone, once each


def pq_ids(path):
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["problem_id"]).column("problem_id").to_pylist()
