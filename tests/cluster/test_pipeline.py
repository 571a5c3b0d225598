"""`sphere-ray run` end to end on the session's local Ray cluster with tiny REAL models: generate (over the
running Serve apps) -> DPO -> evaluate base vs trained -> report; plus the CLI dispatch and config checks."""

import json
from pathlib import Path

import pytest

from sphere_ray.cli import STAGES
from sphere_ray.cli import main as cli_main
from sphere_ray.config import parse_config
from sphere_ray.pipeline.config import PipelineConfig

ROOT = Path(__file__).resolve().parents[2]


def test_cli_lists_every_stage(capsys):
    assert set(STAGES) == {"serve", "generate", "train", "sft-data", "train-sft", "evaluate", "run", "cluster"}
    usage = capsys.readouterr().err if cli_main(["--help"]) == 0 else ""
    assert all(f"sphere-ray {stage}" in usage for stage in STAGES)
    assert cli_main(["fly"]) == 2 and "unknown command" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])  # the stage's own parser answers
    assert "--lora_r" in capsys.readouterr().out


@pytest.mark.parametrize("recipe", ["pipeline_smollm2.yaml", "pipeline_gpu.yaml"])
def test_committed_pipeline_recipes_parse(recipe):
    cfg = parse_config(PipelineConfig, ["--config", str(ROOT / "recipes" / recipe)])
    assert cfg.train_config(2, "x").pairs.endswith("round-2/generate/pairs")
    assert [m["name"] for m in cfg.eval_config("y").models] == ["base", "trained"]


def test_bad_sections_name_the_section_and_field():
    with pytest.raises(ValueError, match="train: lora_r"):
        PipelineConfig(train={"lora_r": 0})
    with pytest.raises(ValueError, match=r"generate: .*max_depthh"):
        PipelineConfig(generate={"max_depthh": 3})
    with pytest.raises(ValueError, match="rounds > 1 needs start_serve"):
        PipelineConfig(rounds=2, generate={"start_serve": False})


@pytest.mark.slow
def test_run_end_to_end(serve_apps, tiny_policy_path, tmp_path):
    cfg = PipelineConfig(
        output_dir=str(tmp_path / "run"), base_model=tiny_policy_path,
        generate={"start_serve": False, "policy_app": "small_policy", "small_policy_app": None, "limit": 3,
                  "num_candidates": 2, "max_depth": 2, "max_step_tokens": 12, "reference_fallback": True,
                  "problem_retry_delay_s": 1.0},
        train={"max_steps": 2, "eval_fraction": 0.34, "eval_strategy": "steps", "save_strategy": "steps",
               "eval_steps": 1, "save_steps": 1, "logging_steps": 1, "bf16": False, "lora_r": 8, "lora_alpha": 16,
               "per_device_train_batch_size": 2, "cpus_per_worker": 1, "max_length": 512},
        evaluate={"benchmarks": ["gsm8k_test", "amc23"], "limit": 2, "max_tokens": 12, "bootstrap": 100},
    )  # fmt: skip
    from sphere_ray.pipeline.run import run_pipeline

    summary = run_pipeline(cfg)
    (round1,) = summary["rounds"]
    assert round1["pairs"] >= 3 and round1["trained_model"].endswith("round-1/dpo/merged")  # fallback: >= 1/problem
    run_dir = Path(cfg.output_dir)
    assert (run_dir / "round-1" / "generate" / "summary.json").exists()
    assert (run_dir / "round-1" / "dpo" / "adapter" / "adapter_model.safetensors").exists()
    evaluation = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert evaluation["models"] == ["base", "trained"] and evaluation["comparison"]
    report = Path(summary["report"]).read_text()
    for needle in ("Round 1", "tokens / pair", "| stage | level | pairs |", "DPO loss", "Pass@1", "trained vs base"):
        assert needle in report, needle
    figures = sorted(p.name for p in (run_dir / "report").glob("*.png"))
    assert figures == ["pass_at_1.png", "round1_dpo_loss.png", "round1_pairs.png", "round1_rewards.png",
                       "round1_trees.png"]  # fmt: skip
    assert all((run_dir / "report" / f).read_bytes()[:4] == b"\x89PNG" for f in figures)
    html = (run_dir / "report" / "report.html").read_text()  # the interactive report, from the same Parquet
    assert "[report.html](report.html)" in report and '"trees_json"' not in html and '"nodes"' in html
    assert html.count("data:image/png;base64,") == len(figures)
    from ray import serve

    assert "policy" in serve.status().applications  # start_serve false: the running apps were left alone


def test_rounds_chain_each_trained_model_into_the_next_round(monkeypatch, tmp_path):
    """Fake stage functions (pure orchestration logic): round k+1 generates and trains from round k's model,
    each round in its own folder; a round without pairs ends the loop."""
    import sphere_ray.evaluation.job as eval_job
    import sphere_ray.generation.job as gen_job
    import sphere_ray.pipeline.report as report
    import sphere_ray.training.job as train_job
    from sphere_ray.pipeline.run import run_pipeline

    calls = []

    def fake_generate(cfg):
        calls.append(("generate", cfg.serve_overrides["policy"]["model"], cfg.output_dir))
        return {"pairs": 0 if "round-3" in cfg.output_dir else 5}

    def fake_train(cfg):
        calls.append(("train", cfg.model, cfg.pairs))
        return {"outputs": {"merged": f"{cfg.output_dir}/merged"}, "best_eval_loss": 0.5}

    monkeypatch.setattr(gen_job, "run_generate_job", fake_generate)
    monkeypatch.setattr(train_job, "run_dpo_job", fake_train)
    monkeypatch.setattr(eval_job, "run_eval_job", lambda cfg: calls.append(("eval", cfg.models)) or {})
    monkeypatch.setattr(report, "write_report", lambda cfg, run, ev: tmp_path / "report.md")
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    cfg = PipelineConfig(output_dir=str(tmp_path), base_model="base-m", generate={"start_serve": False})
    cfg.rounds = 4  # start_serve false would refuse rounds > 1 at construction; the fakes serve nothing
    summary = run_pipeline(cfg)
    r = lambda k: str(tmp_path / f"round-{k}")  # noqa: E731
    assert calls == [
        ("generate", "base-m", f"{r(1)}/generate"), ("train", "base-m", f"{r(1)}/generate/pairs"),
        ("generate", f"{r(1)}/dpo/merged", f"{r(2)}/generate"),
        ("train", f"{r(1)}/dpo/merged", f"{r(2)}/generate/pairs"),
        ("generate", f"{r(2)}/dpo/merged", f"{r(3)}/generate"),  # no pairs: the loop stops
        ("eval", [{"name": "base", "model": "base-m"}, {"name": "trained", "model": f"{r(2)}/dpo/merged"}]),
    ]  # fmt: skip
    assert [x["pairs"] for x in summary["rounds"]] == [5, 5, 0] and summary["trained_model"] == f"{r(2)}/dpo/merged"


def test_base_is_evaluated_on_the_running_policy_app(monkeypatch, tmp_path):
    """Fake stage functions and a fake Serve status (pure orchestration): round 1 evaluates the base model on
    the generation's policy app before Serve shuts down; the final evaluation lists base and trained (the eval
    job reuses the base rows) and deploys one app for both, the trained weights swapped in."""
    from types import SimpleNamespace

    from ray import serve

    from sphere_ray.pipeline.run import run_pipeline

    calls = []
    _fake_stages(monkeypatch, tmp_path, calls, lambda cfg: ("eval", [m["name"] for m in cfg.models], cfg.start_serve,
                                                             cfg.apps, cfg.swap_weights))  # fmt: skip
    running = SimpleNamespace(applications={"policy": SimpleNamespace(status="RUNNING")})
    monkeypatch.setattr(serve, "status", lambda: running)
    monkeypatch.setattr(serve, "shutdown", lambda: calls.append("shutdown"))
    run_pipeline(PipelineConfig(output_dir=str(tmp_path), base_model="base-m"))
    # the final evaluation deploys one app (start_serve) and swaps the trained weights into it
    assert calls == ["generate", ("eval", ["base"], False, {"base": "policy"}, False), "shutdown", "train",
                     ("eval", ["base", "trained"], True, {}, True)]  # fmt: skip


def test_reuse_policy_app_keeps_it_and_swaps_weights_for_the_evaluation(monkeypatch, tmp_path):
    """Fake stage functions and a fake Serve (pure orchestration): with reuse_policy_app, round 1 deletes every
    app but the policy app before training, the final evaluation runs on the policy app with swap_weights,
    and the policy app is deleted after it."""
    from types import SimpleNamespace

    from ray import serve

    from sphere_ray.pipeline.run import run_pipeline

    calls = []
    _fake_stages(monkeypatch, tmp_path, calls, lambda cfg: ("eval", [m["name"] for m in cfg.models], cfg.apps,
                                                             cfg.swap_weights))  # fmt: skip
    apps = {"policy": SimpleNamespace(status="RUNNING"), "prm": SimpleNamespace(status="RUNNING")}
    monkeypatch.setattr(serve, "status", lambda: SimpleNamespace(applications=apps))
    monkeypatch.setattr(serve, "delete", lambda name: calls.append(("delete", name)) or apps.pop(name))
    monkeypatch.setattr(serve, "shutdown", lambda: calls.append("shutdown"))
    run_pipeline(PipelineConfig(output_dir=str(tmp_path), base_model="base-m", reuse_policy_app=True))
    assert calls == ["generate", ("eval", ["base"], {"base": "policy"}, False), ("delete", "prm"), "train",
                     ("eval", ["base", "trained"], {"base": "policy", "trained": "policy"}, True),
                     ("delete", "policy")]  # fmt: skip


def _fake_stages(monkeypatch, tmp_path, calls, eval_record):
    """Fake generate (2 pairs), DPO, evaluation (``eval_record(cfg)`` appended) and report: pure orchestration."""
    import ray

    import sphere_ray.evaluation.job as eval_job
    import sphere_ray.generation.job as gen_job
    import sphere_ray.pipeline.report as report
    import sphere_ray.training.job as train_job

    monkeypatch.setattr(gen_job, "run_generate_job", lambda cfg: calls.append("generate") or {"pairs": 2})
    monkeypatch.setattr(train_job, "run_dpo_job", lambda cfg: calls.append("train") or
                        {"outputs": {"merged": f"{cfg.output_dir}/merged"}, "best_eval_loss": 0.5})  # fmt: skip
    monkeypatch.setattr(eval_job, "run_eval_job", lambda cfg: calls.append(eval_record(cfg)) or {})
    monkeypatch.setattr(report, "write_report", lambda cfg, run, ev: tmp_path / "report.md")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
