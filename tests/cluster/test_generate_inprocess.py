"""The generation job's ``models: inprocess`` mode on a local Ray cluster: the search actor loads tiny REAL
models (random Qwen2) with transformers; no Serve app is involved. Same store, rejects, summary and resume as
``serve`` mode."""

import json
from pathlib import Path

from sphere_ray.generation.config import GenerateJobConfig
from sphere_ray.generation.job import run_generate_job
from sphere_ray.generation.store import OutputStore
from sphere_ray.pairs import read_pairs


def _problems_file(tmp_path) -> str:
    rows = [
        {"id": "a", "problem": "What is 2+3?", "answer": "5"},
        {"id": "b", "problem": "", "answer": "1"},
        {"id": "c", "problem": "What is 10-4?", "answer": "6"},
        {"id": "a", "problem": "dup", "answer": "2"},
    ]
    path = tmp_path / "problems.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return str(path)


def test_inprocess_models_write_the_generation_outputs(ray_cluster, tmp_path, tiny_policy_path):
    cfg = GenerateJobConfig(
        models="inprocess", problems=_problems_file(tmp_path), output_dir=str(tmp_path / "out"),
        policy_model=tiny_policy_path, small_policy_model=tiny_policy_path, prm_model=tiny_policy_path,
        num_candidates=2, max_depth=2, max_step_tokens=6, problems_in_flight=1, actor_num_cpus=1,
    )  # fmt: skip
    summary = run_generate_job(cfg)
    store = OutputStore(cfg.output_dir)
    trees = store.read("trees").to_pylist()
    rejects = store.read("rejects").to_pylist()
    assert sorted(t["problem_id"] for t in trees) == ["a", "c"]  # every good problem exactly once
    assert sorted(r["reason"] for r in rejects) == ["duplicate id 'a'", "empty problem"]
    pairs = store.read("pairs")  # a random model rarely makes pairs; when it does, they are in PAIR_SCHEMA
    assert pairs.num_rows == 0 or read_pairs(Path(cfg.output_dir) / "pairs").num_rows == pairs.num_rows
    assert summary["problems_done"] == 2 and summary["rejects"] == 2 and summary["pairs"] == pairs.num_rows
    for t in trees:
        (first, *_) = json.loads(t["trees_json"])
        assert first["model"] == tiny_policy_path and len(first["nodes"]) >= 2
        assert all(0.0 <= n["prm"] <= 1.0 and n["num_tokens"] <= 6 for n in first["nodes"])
        assert t["step_generations"] == sum(len(x["nodes"]) for x in json.loads(t["trees_json"]))
    again = run_generate_job(cfg)  # a rerun resumes: nothing left to search
    assert again["this_run"]["problems"] == 0 and again["problems_done"] == 2


def test_inprocess_sim_models_stream_a_queue(ray_cluster, tmp_path):
    """With ``sim`` set, the actors simulate the three models (no weights, no Serve): the streamed path."""
    from sphere_ray.sim.text import sim_problems

    problems = list(sim_problems(60, seed=5))
    path = tmp_path / "sim.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    cfg = GenerateJobConfig(
        models="inprocess", sim={"compression": 1000}, problems=str(path), output_dir=str(tmp_path / "out"),
        policy_model="Qwen/Qwen2.5-Math-7B-Instruct", small_policy_model="Qwen/Qwen2.5-Math-1.5B-Instruct",
        prm_model="Qwen/Qwen2.5-Math-PRM-7B", num_candidates=4, max_depth=6, max_step_tokens=32,
        problems_in_flight=16, stream_above=0, queue_part_rows=8, actor_num_cpus=0.5,
    )  # fmt: skip
    summary = run_generate_job(cfg)
    store = OutputStore(cfg.output_dir)
    assert sorted(store.read("trees").column("problem_id").to_pylist()) == sorted(p["id"] for p in problems)
    assert summary["problems_done"] == 60 and store.read("rejects").num_rows == 0
    assert set(store.read("pairs").column("stage").to_pylist()) == {1, 2, 3}
