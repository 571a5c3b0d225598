"""The local search job end to end with tiny REAL models (random Qwen2), and once with SmolLM2."""

import json

import pyarrow.parquet as pq
import pytest
from tiny_models import build_tiny_qwen2

from sphere_ray.pairs import PAIR_SCHEMA
from sphere_ray.search_job import SearchJobConfig, run_search_job


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return str(build_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "qwen2"))


def _problems_file(tmp_path):
    rows = [
        {"id": "a", "problem": "What is 2+3?", "answer": "5"},
        {"id": "b", "problem": "", "answer": "1"},
        {"id": "c", "problem": "What is 10-4?", "answer": "6"},
        {"id": "a", "problem": "dup", "answer": "2"},
    ]
    path = tmp_path / "problems.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return str(path)


def test_job_writes_every_output(tmp_path, tiny_model):
    cfg = SearchJobConfig(
        problems=_problems_file(tmp_path), limit=None, output_dir=str(tmp_path / "out"), policy_model=tiny_model,
        small_policy_model=tiny_model, prm_model=tiny_model, num_candidates=2, max_depth=2, max_step_tokens=6,
    )  # fmt: skip
    summary = run_search_job(cfg)
    out = tmp_path / "out"
    trees = [json.loads(line) for line in (out / "trees.jsonl").read_text().splitlines()]
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [t["problem_id"] for t in trees] == ["a", "c"]  # every good problem exactly once
    assert sorted(r["reason"] for r in rejects) == ["duplicate id 'a'", "empty problem"]
    pairs = pq.read_table(out / "pairs.parquet")
    assert pairs.schema.equals(PAIR_SCHEMA, check_metadata=False)
    assert summary["problems"] == 2 and summary["rejects"] == 2 and summary["pairs"] == pairs.num_rows
    for t in trees:
        tree = t["trees"][0]
        assert tree["model"] == tiny_model and len(tree["nodes"]) >= 2
        assert all(0.0 <= n["prm"] <= 1.0 and n["num_tokens"] <= 6 for n in tree["nodes"])
        assert t["counters"]["step_generations"] == sum(len(x["nodes"]) for x in t["trees"])
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["counters"] == summary["counters"] and on_disk["config_hash"]


@pytest.mark.slow
def test_embedded_smollm2_search(tmp_path):
    """The embedded default through the real search, small settings (about a minute on 2 cores)."""
    cfg = SearchJobConfig(limit=1, output_dir=str(tmp_path), num_candidates=3, max_depth=2, max_step_tokens=32)
    summary = run_search_job(cfg)
    assert summary["problems"] == 1 and summary["counters"]["generated_tokens"] > 0
    tree = json.loads((tmp_path / "trees.jsonl").read_text())["trees"][0]
    texts = [n["text"] for n in tree["nodes"]]
    assert len(texts) >= 3 and len(set(texts)) >= 2  # E distinct samples at temperature 0.8
    assert tree["prompt"].startswith("<|im_start|>system")  # SmolLM2's chat template
