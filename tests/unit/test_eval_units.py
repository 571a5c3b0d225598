"""Evaluation, pure parts: metrics on hand-made rows, bootstrap interval, report, config errors, bundled sets."""

import json
import os
import time

import pytest

from sphere_ray.config import parse_config
from sphere_ray.evaluation.config import BENCHMARKS, EvalJobConfig
from sphere_ray.evaluation.job import load_benchmarks
from sphere_ray.evaluation.metrics import bootstrap_diff, compare, score
from sphere_ray.evaluation.report import bar_chart, markdown


def _r(pid, sample, extracted, correct, revised=None, model="m", bench="b"):
    return {"model": model, "benchmark": bench, "problem_id": pid, "sample": sample, "extracted": extracted,
            "correct": correct, "revised_correct": revised}  # fmt: skip


def test_pass_at_1_pass_at_k_and_majority():
    rows = [_r("p1", 0, "5", True), _r("p1", 1, "6", False), _r("p1", 2, "5", True),
            _r("p2", 0, "1", False), _r("p2", 1, "1", False), _r("p2", 2, "2", True),
            _r("p3", 0, "", False), _r("p3", 1, "", False), _r("p3", 2, "", False)]  # fmt: skip
    s = score(rows)
    assert s["problems"] == 3 and s["samples"] == 3
    assert s["pass@1"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert s["pass@3"] == pytest.approx(2 / 3)  # p1 and p2 have a right sample
    assert s["maj@3"] == pytest.approx(1 / 3)  # p1's majority "5" is right; p2's majority "1" is wrong
    assert "self_correction" not in s


def test_self_correction_counts():
    rows = [_r("p1", 0, "5", True, True), _r("p2", 0, "5", True, False), _r("p3", 0, "1", False, True),
            _r("p4", 0, "1", False, True), _r("p5", 0, "1", False, False)]  # fmt: skip
    sc = score(rows)["self_correction"]
    assert sc == {"before": 0.4, "after": 0.6, "right_to_wrong": 1, "wrong_to_right": 2, "samples": 5}


def test_bootstrap_interval_brackets_the_difference_and_is_deterministic():
    a = {f"p{i}": float(i % 2) for i in range(40)}
    b = {f"p{i}": 1.0 for i in range(40)}
    diff, low, high = bootstrap_diff(a, b, resamples=500, seed=3)
    assert diff == pytest.approx(0.5) and low <= diff <= high and 0.2 < low < high <= 0.8
    assert bootstrap_diff(a, b, resamples=500, seed=3) == (diff, low, high)
    assert bootstrap_diff(a, a, 100) == (0.0, 0.0, 0.0)


def test_compare_and_report(tmp_path):
    rows = [_r(f"p{i}", 0, "1", i % 2 == 0, model="base") for i in range(10)]
    rows += [_r(f"p{i}", 0, "1", True, model="dpo") for i in range(10)]
    cmp = compare(rows, "base", "dpo", resamples=200)
    assert cmp["b"]["base"] == 0.5 and cmp["b"]["dpo"] == 1.0 and cmp["b"]["diff"] == pytest.approx(0.5)
    rows += [_r(f"p{i}", 0, "1", i < 3, model="sft") for i in range(10)]
    summary = {"models": ["base", "dpo", "sft"], "benchmarks": ["b"],
               "comparison": {m: compare(rows, "base", m, resamples=200) for m in ("dpo", "sft")},
               "scores": {m: {"b": score([r for r in rows if r["model"] == m])}
                          for m in ("base", "dpo", "sft")}}  # fmt: skip
    md = markdown(summary)
    assert "| b | 10 | 50.0 | 100.0 | 30.0 |" in md and "+50.0" in md and "-20.0" in md
    assert "dpo vs base" in md and "sft vs base" in md
    png = bar_chart(summary, tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_all_five_benchmarks_are_bundled():
    rows, labels = load_benchmarks(BENCHMARKS, limit=3)
    assert labels == BENCHMARKS and len(rows) == 15
    full, _ = load_benchmarks(BENCHMARKS, limit=None)
    counts = {b: sum(r["benchmark"] == b for r in full) for b in BENCHMARKS}
    assert counts == {"gsm8k_test": 1319, "math500": 500, "aime24": 30, "amc23": 40, "olympiadbench": 581}


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--models", "[]"], "at least one model"),
        (["--models", "[{name: a}]"], r"models\[0\]"),
        (["--models", "[{name: a, model: x}, {name: a, model: y}]"], "unique"),
        (["--models", "[{name: 'a b', model: x}]"], r"models\[0\].name"),
        (["--samples", "0"], "samples"),
        (["--top_p", "0"], "top_p"),
        (["--start_serve", "false"], "apps"),
        (["--benchmarks", "[]"], "benchmarks"),
    ],
)
def test_bad_config_names_the_field(argv, field):
    with pytest.raises(ValueError, match=field):
        parse_config(EvalJobConfig, argv)


def test_unknown_benchmark_is_a_clear_error():
    with pytest.raises(ValueError, match="neither a bundled set"):
        load_benchmarks(["gsm9k"], None)


def test_a_model_done_with_the_same_settings_is_reused(tmp_path):
    """Per-model resume: rows come back only with done.json of the same settings and whole JSONL files."""
    from sphere_ray.evaluation.config import ModelSpec
    from sphere_ray.evaluation.job import reused_rows, settings_key
    from sphere_ray.files import write_json, write_jsonl

    cfg = EvalJobConfig(benchmarks=["easy_test"], limit=4, samples=2)
    model_dir = tmp_path / "merged"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"weights v1")
    spec = ModelSpec("trained", str(model_dir))
    key = settings_key(cfg, spec)
    assert key == settings_key(EvalJobConfig(benchmarks=["easy_test"], limit=4, samples=2, output_dir="x"), spec)
    assert key != settings_key(EvalJobConfig(benchmarks=["easy_test"], limit=4, samples=3), spec)
    folder = tmp_path / "eval" / "trained"
    assert reused_rows(folder, key, ["easy_test"]) is None  # never evaluated
    rows = [{"problem_id": "p1", "sample": 0, "correct": True}, {"problem_id": "p1", "sample": 1, "correct": False}]
    write_jsonl(folder / "easy_test.jsonl", rows)
    assert reused_rows(folder, key, ["easy_test"]) is None  # rows without the marker: the run died before it
    write_json(folder / "done.json", {"settings": key, "errors": [{"problem_id": "p2", "error": "x"}]})
    assert reused_rows(folder, key, ["easy_test"]) == (rows, [{"problem_id": "p2", "error": "x"}])
    assert reused_rows(folder, key, ["easy_test", "gsm8k"]) is None  # another benchmark was not evaluated
    (folder / "done.json").write_text(json.dumps({"settings": "other"}))
    assert reused_rows(folder, key, ["easy_test"]) is None
    time.sleep(0.01)
    (model_dir / "model.safetensors").write_bytes(b"weights v2, retrained")  # same path, new weights
    os.utime(model_dir / "model.safetensors")
    assert settings_key(cfg, spec) != key
