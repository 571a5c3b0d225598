"""Evaluation job on the session's local Ray cluster with tiny REAL models: every benchmark end to end, files
written, scores recomputed from the per-sample rows; a LoRA adapter merged and served; running apps reused."""

import json
from pathlib import Path

import pytest
from log_lines import captured

from sphere_ray.evaluation.config import BENCHMARKS, EvalJobConfig
from sphere_ray.evaluation.job import run_eval_job
from sphere_ray.evaluation.metrics import compare, score

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def adapter(tiny_policy_path, tmp_path_factory) -> str:
    """A LoRA adapter with non-zero weights on the tiny policy (as the DPO job would write it)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_policy_path),
                           LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))  # fmt: skip
    path = tmp_path_factory.mktemp("adapter") / "adapter"
    model.save_pretrained(path)
    return str(path)


def _read_rows(out: Path, model: str) -> list[dict]:
    return [json.loads(line) for b in BENCHMARKS for line in (out / model / f"{b}.jsonl").read_text().splitlines()]


def test_two_models_every_benchmark_end_to_end(serve_apps, tiny_policy_path, adapter, tmp_path):
    # swap_weights: one app is deployed (for base), and the merged adapter's weights are loaded into it for tuned
    out = tmp_path / "eval"
    cfg = EvalJobConfig(
        models=[{"name": "base", "model": tiny_policy_path},
                {"name": "tuned", "model": tiny_policy_path, "adapter": adapter}],
        limit=2, samples=2, max_tokens=24, output_dir=str(out), bootstrap=200, swap_weights=True,
    )  # fmt: skip
    with captured("sphere_ray.evaluation.job") as logged:
        summary = run_eval_job(cfg)
    serving = [m for m in logged.lines if m.startswith(("deploying", "loading"))]
    assert [m.split(" (")[0] for m in serving] == [
        "deploying eval-models for base",
        "loading tuned's weights into the running eval-models app",
    ]
    rows = {m: _read_rows(out, m) for m in ("base", "tuned")}
    for m, model_rows in rows.items():
        assert len(model_rows) == 5 * 2 * 2  # benchmarks x problems x samples, each exactly once
        assert len({(r["problem_id"], r["sample"]) for r in model_rows}) == 20
        assert all(r["output"] and r["revised_output"] and isinstance(r["revised_correct"], bool) for r in model_rows)
        for b in BENCHMARKS:  # the summary is what the rows say
            assert summary["scores"][m][b] == score([r for r in model_rows if r["benchmark"] == b])
    assert summary["scores"]["base"]["gsm8k_test"]["samples"] == 2 and "pass@2" in summary["scores"]["base"]["math500"]
    both = rows["base"] + rows["tuned"]
    assert summary["comparison"] == {"tuned": json.loads(json.dumps(compare(both, "base", "tuned", 200, 0)))}
    assert rows["base"][0]["output"] != rows["tuned"][0]["output"]  # the adapter was merged and served
    assert (out / "models" / "tuned" / "model.safetensors").exists() and summary["errors"] == 0
    report = (out / "report.md").read_text()
    assert "tuned vs base" in report and all(b in report for b in BENCHMARKS)
    assert (out / "pass_at_1.png").read_bytes()[:4] == b"\x89PNG"
    from ray import serve

    assert {"policy", "prm"} <= set(serve.status().applications)  # the session's apps were kept
    assert not any(a.startswith("eval-") for a in serve.status().applications)  # eval apps removed when done


def test_uses_a_running_app(serve_apps, tmp_path):
    cfg = EvalJobConfig(models=[{"name": "tiny", "model": "unused"}], benchmarks=["amc23"], limit=3,
                        max_tokens=16, self_correction=False, start_serve=False, apps={"tiny": "small_policy"},
                        output_dir=str(tmp_path))  # fmt: skip
    summary = run_eval_job(cfg)
    rows = [json.loads(x) for x in (tmp_path / "tiny" / "amc23.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["revised_correct"] is None for r in rows)
    assert summary["scores"]["tiny"]["amc23"] == score(rows) and "self_correction" not in score(rows)
