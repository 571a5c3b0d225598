"""`sphere-ray run --method dual_phase`: config and method choice (pure), the stage chain with fake stage
functions (pure orchestration logic), and the whole pipeline on the session's Ray cluster.

The end-to-end test runs phase 1, phase 2 and the baseline sampler on the simulated policy (every job's own
real-engine path is tested on SmolLM2 in test_sft_data.py; the sim answers its sums right with a known
probability, so each stage keeps samples), three REAL TRL SFT runs of a tiny model, and the REAL evaluation
over the tiny vLLM app; then the report.
"""

import json
from pathlib import Path

import pytest

from sphere_ray.config import parse_config
from sphere_ray.pipeline.dual_phase import RFT_DEFAULTS, DualPhaseConfig
from sphere_ray.pipeline.methods import config_class

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ["dual_phase_smollm2.yaml", "dual_phase_gpu.yaml", "dual_phase_then_sphere_smollm2.yaml"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_committed_recipes_parse_and_build_every_stage(recipe):
    argv = ["--config", str(ROOT / "recipes" / recipe)]
    cfg = parse_config(config_class(argv), argv)
    assert isinstance(cfg, DualPhaseConfig)
    p1, p2 = cfg.phase1_config(), cfg.phase2_config("out/sft/merged")
    assert p1.phase == 1 and p2.phase == 2 and p2.serve_overrides[p2.policy_app]["model"] == "out/sft/merged"
    assert p1.serve_overrides[p1.policy_app]["model"] == cfg.base_model and p2.problems == p1.problems
    assert cfg.sft_config("rej", "m", "d").output_dir.endswith("/rej")
    assert cfg.rft_config(700).problem_token_budget == 700
    evaluation = cfg.eval_config({"base": cfg.base_model, "sft": "out/sft/merged"})
    assert evaluation.start_serve and evaluation.swap_weights  # one app deployed, each model's weights loaded in turn


def test_the_method_is_chosen_by_flag_then_recipe_then_default(tmp_path):
    from sphere_ray.pipeline.config import PipelineConfig

    dual = str(ROOT / "recipes" / "dual_phase_smollm2.yaml")
    assert config_class(["--config", dual]) is DualPhaseConfig
    assert config_class(["--config", str(ROOT / "recipes" / "pipeline_smollm2.yaml")]) is PipelineConfig
    assert config_class([]) is PipelineConfig and config_class(["--method", "dual_phase"]) is DualPhaseConfig
    with pytest.raises(ValueError, match="method must be one of"):
        config_class(["--method", "grpo"])
    with pytest.raises(ValueError, match="method must be sphere"):
        PipelineConfig(method="dual_phase")
    with pytest.raises(ValueError, match="unknown field"):
        parse_config(PipelineConfig, ["--config", dual])  # a dual-phase recipe is not a SPHERE config


def test_sections_merge_cli_keys_and_errors_name_the_section():
    argv = ["--config", str(ROOT / "recipes" / "dual_phase_smollm2.yaml"), "--phase2", "{max_samples: 12}",
            "--sft", "{num_train_epochs: 1}"]  # fmt: skip
    cfg = parse_config(DualPhaseConfig, argv)
    assert cfg.phase2["max_samples"] == 12 and cfg.phase2["strategy"] == "prop2diff"  # the recipe's others stay
    assert cfg.sft["num_train_epochs"] == 1 and cfg.sft["max_length"] == 2048
    nested = DualPhaseConfig(phase1={"filters": {"max_tokens": 999}}, phase2={"filters": {"min_tokens": 5}})
    filters = nested.phase2_config("m").filter_config()
    assert (filters.max_tokens, filters.min_tokens) == (999, 5)  # filters merge key by key across sections
    with pytest.raises(ValueError, match=r"phase1: .*max_turnz"):
        DualPhaseConfig(phase1={"max_turnz": 3})
    with pytest.raises(ValueError, match="rej_sft: lora_r"):
        DualPhaseConfig(rej_sft={"lora_r": 0})
    with pytest.raises(ValueError, match="rej_from must be"):
        DualPhaseConfig(rej_from="pi_sft")


def test_rft_sampler_is_plain_rejection_sampling_at_the_budget():
    cfg = DualPhaseConfig(phase1={"filters": {"max_tokens": 999}}, phase2={"strategy": "band", "per_problem": 2},
                          rft={"samples": 3})  # fmt: skip
    rft = cfg.rft_config(1234)
    assert rft.phase == 2 and rft.samples == 3 and rft.problem_token_budget == 1234
    assert rft.min_samples == rft.max_samples == RFT_DEFAULTS["max_samples"]  # no early stop
    assert rft.strategy == "uniform" and rft.per_problem == rft.max_samples  # every correct sample kept
    assert rft.filter_config().filters == ["final_correct", "one_final_answer", "not_truncated"]
    assert rft.filter_config().max_tokens == 999  # the other filter settings are phase 1's
    assert rft.serve_overrides[rft.policy_app]["model"] == cfg.base_model and rft.output_dir.endswith("rft_data")


def _fake_stages(monkeypatch, tmp_path, kept1=5):
    """Fake stage functions that record their calls (the chain is the logic under test)."""
    import ray

    import sphere_ray.dialogue.job as data_job
    import sphere_ray.evaluation.job as eval_job
    import sphere_ray.pipeline.dual_report as report
    import sphere_ray.training.job as train_job

    calls = []

    def fake_data(cfg):
        model = cfg.serve_overrides[cfg.policy_app]["model"]
        calls.append(("data", Path(cfg.output_dir).name, model, cfg.problem_token_budget))
        kept = kept1 if cfg.phase == 1 else 4
        return {"kept": kept, "generated_tokens": 1000 if cfg.phase == 1 else 500, "problems_done": 10,
                "allocation": {"selected": kept}}  # fmt: skip

    def fake_sft(cfg):
        calls.append(("sft", Path(cfg.output_dir).name, cfg.model, cfg.data))
        return {"outputs": {"merged": f"{cfg.output_dir}/merged"}}

    monkeypatch.setattr(data_job, "run_sft_data_job", fake_data)
    monkeypatch.setattr(train_job, "run_sft_job", fake_sft)
    monkeypatch.setattr(eval_job, "run_eval_job", lambda cfg: calls.append(("eval", cfg.models)) or {})
    monkeypatch.setattr(report, "write_report", lambda cfg, run, ev: tmp_path / "report.md")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    return calls


def test_stages_chain_each_model_into_the_next(monkeypatch, tmp_path):
    from sphere_ray.pipeline.dual_phase import run_dual_phase

    calls = _fake_stages(monkeypatch, tmp_path)
    off = {"start_serve": False}
    cfg = DualPhaseConfig(output_dir=str(tmp_path), base_model="base-m", phase1=off)
    run = run_dual_phase(cfg)
    d = lambda s: str(tmp_path / s)  # noqa: E731
    assert calls == [
        ("data", "phase1", "base-m", None),
        ("sft", "sft", "base-m", f"{d('phase1')}/sft"),
        ("data", "phase2", f"{d('sft')}/merged", None),
        ("sft", "rej", f"{d('sft')}/merged", f"{d('phase2')}/sft"),  # rej_from: sft
        ("data", "rft_data", "base-m", 150),  # (1000 + 500) tokens over 10 problems
        ("sft", "rft", "base-m", f"{d('rft_data')}/sft"),
        ("eval", [{"name": "base", "model": "base-m"}, {"name": "sft", "model": f"{d('sft')}/merged"},
                  {"name": "rej", "model": f"{d('rej')}/merged"}, {"name": "rft", "model": f"{d('rft')}/merged"}]),
    ]  # fmt: skip
    assert run["rft_budget"] == {"dual_phase_tokens": 1500, "per_problem": 150} and not run["skipped"]
    assert json.loads((tmp_path / "run.json").read_text())["models"]["rej"] == f"{d('rej')}/merged"


def test_no_kept_sample_skips_the_models_that_need_it(monkeypatch, tmp_path):
    from sphere_ray.pipeline.dual_phase import run_dual_phase

    calls = _fake_stages(monkeypatch, tmp_path, kept1=0)
    cfg = DualPhaseConfig(output_dir=str(tmp_path), base_model="b", phase1={"start_serve": False}, rej_from="base")
    run = run_dual_phase(cfg)
    assert [c[:2] for c in calls[:-1]] == [("data", "phase1"), ("data", "rft_data"), ("sft", "rft")]
    assert calls[2][2] == "b" and calls[1][3] == 100  # phase 1's 1000 tokens over 10 problems
    assert [m["name"] for m in calls[-1][1]] == ["base", "rft"]
    assert run["skipped"] == [
        "sft: phase1 kept no sample",
        "phase2, rej: pi_sft was not trained (phase 1 kept no sample)",
    ]


def test_the_sphere_section_starts_sphere_from_pi_rej(monkeypatch, tmp_path):
    import sphere_ray.pipeline.run as sphere_run
    from sphere_ray.pipeline.dual_phase import run_dual_phase

    calls = _fake_stages(monkeypatch, tmp_path)
    starts = []

    def fake_rounds(cfg, policy):
        starts.append((policy, cfg.output_dir))
        return [{"round": 1}], f"{cfg.output_dir}/round1/merged"

    monkeypatch.setattr(sphere_run, "run_rounds", fake_rounds)
    cfg = DualPhaseConfig(output_dir=str(tmp_path), base_model="b", phase1={"start_serve": False}, baseline=False,
                          sphere={"rounds": 1})  # fmt: skip
    run = run_dual_phase(cfg)
    assert starts == [(str(tmp_path / "rej" / "merged"), str(tmp_path / "sphere"))]
    assert [m["name"] for m in calls[-1][1]] == ["base", "sft", "rej", "sphere"]
    assert run["models"]["sphere"] == str(tmp_path / "sphere" / "round1" / "merged")


@pytest.mark.slow
def test_dual_phase_end_to_end(sim_apps, serve_apps, tiny_policy_path, tmp_path):
    from sphere_ray.dialogue.worker import PHASE2
    from sphere_ray.generation.store import OutputStore
    from sphere_ray.pipeline.dual_phase import run_dual_phase
    from sphere_ray.sim.text import sim_problems

    problems = tmp_path / "sums.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in sim_problems(6, seed=3)))
    sft = {"max_steps": 2, "eval_fraction": 0.0, "save_strategy": "steps", "save_steps": 1, "logging_steps": 1,
           "bf16": False, "lora_r": 8, "lora_alpha": 16, "per_device_train_batch_size": 2, "cpus_per_worker": 1,
           "max_length": 512, "packing": False, "report_to": "none"}  # fmt: skip
    names = ["base", "sft", "rej", "rft"]
    cfg = DualPhaseConfig(
        output_dir=str(tmp_path / "run"), base_model=tiny_policy_path,
        phase1={"problems": str(problems), "start_serve": False, "policy_app": "sim_policy", "samples": 2,
                "max_turns": 2, "max_tokens": 96, "affinity": False, "problem_retry_delay_s": 1.0,
                "filters": {"filters": ["final_correct", "not_truncated", "no_flip"]}},
        phase2={"samples": 2, "min_samples": 2, "max_samples": 4, "strategy": "uniform", "per_problem": 2},
        rft={"samples": 2}, sft=sft,
        evaluate={"benchmarks": ["easy_test"], "limit": 2, "max_tokens": 12, "bootstrap": 100,
                  "self_correction": False, "start_serve": False, "apps": dict.fromkeys(names, "small_policy")},
    )  # fmt: skip
    run = run_dual_phase(cfg)
    assert list(run["models"]) == names and not run["skipped"]
    stages = run["stages"]
    assert stages["phase1"]["summary"]["kept"] > 0 and stages["phase2"]["summary"]["allocation"]["selected"] > 0
    spent = stages["phase1"]["summary"]["generated_tokens"] + stages["phase2"]["summary"]["generated_tokens"]
    assert run["rft_budget"]["per_problem"] == -(-spent // 6)
    rft = OutputStore(str(tmp_path / "run" / "rft_data"), layout=PHASE2).read("problems").to_pylist()
    assert len(rft) == 6  # every problem sampled until its share of the budget was spent
    assert all(p["generated_tokens"] >= run["rft_budget"]["per_problem"] or p["samples"] == 64 for p in rft)
    assert stages["rej"]["start_model"] == run["models"]["sft"]
    for stage in ("sft", "rej", "rft"):
        assert (tmp_path / "run" / stage / "merged" / "config.json").exists()
    evaluation = json.loads((tmp_path / "run" / "eval" / "summary.json").read_text())
    assert evaluation["models"] == names and set(evaluation["comparison"]) == {"sft", "rej", "rft"}
    report = Path(run["report"]).read_text()
    for needle in ("Phase 1", "Acceptance by filter", "Acceptance by template", "Phase 2", "Pass-rate histogram",
                   "same token budget", "pi_sft", "pi_rej", "length ÷ base", "rft vs base", "rej vs base"):  # fmt: skip
        assert needle in report, needle
    figures = sorted(p.name for p in (tmp_path / "run" / "report").glob("*.png"))
    assert figures == ["behaviours.png", "pass_at_1.png", "phase2_difficulty.png", "rej_loss.png", "rft_loss.png",
                       "sft_loss.png"]  # fmt: skip
