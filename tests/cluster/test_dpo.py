"""DPO job on the session's local Ray cluster with a tiny REAL Qwen2: TRL DPOTrainer + PEFT LoRA on Ray Train.

Shows: loss and DPO metrics logged, bad pairs dropped with counts, every LoRA parameter trained, the adapter
and the merged model load back and generate (the merged one on vLLM too), resume after the driver is killed,
and DeepSpeed ZeRO-2 / ZeRO-3 across two CPU workers.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from log_lines import Lines, captured
from pair_data import good_rows, pair_row, write_pair_rows

from sphere_ray.training.config import DPOJobConfig
from sphere_ray.training.job import registered_checkpoint_step, run_dpo_job

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _args(model: str, pairs: Path, out: Path, **over) -> dict:
    args = {
        "model": model, "pairs": str(pairs), "output_dir": str(out), "max_steps": 4, "eval_strategy": "steps",
        "save_strategy": "steps", "eval_steps": 2, "save_steps": 2, "logging_steps": 1, "learning_rate": 1e-3,
        "lora_r": 8, "lora_alpha": 16, "per_device_train_batch_size": 2, "per_device_eval_batch_size": 2,
        "eval_fraction": 0.34, "bf16": False, "cpus_per_worker": 1, "max_length": 256,
    }  # fmt: skip
    return {**args, **over}


@pytest.fixture(scope="module")
def pairs_path(tmp_path_factory) -> Path:
    bad = [pair_row("p-9", 0, chosen=""), pair_row("p-9", 1, chosen="same", rejected="same"),
           pair_row("p-9", 2, rejected="x " * 400)]  # fmt: skip
    return write_pair_rows([*good_rows(6, 4), *bad], tmp_path_factory.mktemp("pairs") / "pairs" / "part-0.parquet")


RELAYED = Lines()  # the driver's progress lines during the `trained` job


@pytest.fixture(scope="module")
def trained(ray_cluster, tiny_policy_path, pairs_path, tmp_path_factory):
    # the model as a path relative to this directory (as a pipeline round's merged model is): Ray Train runs
    # its workers elsewhere, so the job must pass them the absolute path
    relative = os.path.relpath(tiny_policy_path)
    cfg = DPOJobConfig(**_args(relative, pairs_path, tmp_path_factory.mktemp("dpo")))
    with captured("sphere_ray.generation.progress", RELAYED):
        return cfg, run_dpo_job(cfg)


def _checkpoints(cfg) -> list[Path]:
    """The HF checkpoint folders in Ray Train's storage, oldest first."""
    return sorted(Path(cfg.output_dir, "ray", cfg.run_name).glob("checkpoint_*/checkpoint"))


def test_trains_logs_metrics_and_drops_bad_pairs(trained):
    cfg, summary = trained
    assert summary["data"]["pairs_read"] == 27 and summary["data"]["train_pairs"] + summary["data"]["eval_pairs"] == 24
    assert summary["data"]["dropped"] == {"empty chosen or rejected": 1, "chosen identical to rejected": 1,
                                          "longer than max_length=256 tokens": 1}  # fmt: skip
    history = json.loads(Path(cfg.output_dir, "metrics.json").read_text())
    train_logs = [h for h in history if "loss" in h]
    assert [h["step"] for h in train_logs] == [1, 2, 3, 4]
    assert train_logs[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy == reference at step 1
    assert all({"rewards/margins", "rewards/accuracies", "rewards/chosen"} <= set(h) for h in train_logs)
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    assert len(evals) == 2 and summary["best_eval_loss"] == min(evals)  # the kept checkpoint is the best by eval loss
    assert summary["last_metrics"]["distributed_type"] == "NO"  # a lone worker trains without a DDP wrapper


def test_the_driver_logs_the_workers_progress_lines(trained):
    # the session's Ray keeps the workers' output off this console (log_to_driver=False), as a pipeline's does:
    # the step lines still reach the driver's log, one per logged step, in order
    steps = [line for line in RELAYED.lines if line.startswith("DPO progress step")]
    trained_steps = [line.split()[3] for line in steps if line.split(", ")[1].startswith("loss")]
    assert trained_steps == ["1/4", "2/4", "3/4", "4/4"], steps
    assert steps[-1].endswith("done"), steps


def test_every_lora_parameter_changed(trained):
    from safetensors.torch import load_file

    cfg, summary = trained
    first, last = (load_file(p / "adapter_model.safetensors") for p in _checkpoints(cfg)[:: len(_checkpoints(cfg)) - 1])
    assert first.keys() == last.keys() and any("lora_A" in k for k in first) and any("lora_B" in k for k in first)
    assert all(not first[k].equal(last[k]) for k in first)  # every trainable tensor moved between checkpoints
    assert all(first[k].abs().sum() > 0 for k in first if "lora_B" in k)  # lora_B starts at zero: it trained
    exported = load_file(Path(cfg.output_dir, "adapter", "adapter_model.safetensors"))
    best = load_file(Path(summary["best_checkpoint"], "checkpoint", "adapter_model.safetensors"))
    assert all(exported[k].equal(best[k]) for k in best)


def test_adapter_and_merged_model_load_and_generate(trained, tiny_policy_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg, _ = trained
    out = Path(cfg.output_dir)
    tok = AutoTokenizer.from_pretrained(out / "merged")
    ids = tok("What is 3 + 4?", return_tensors="pt")
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_policy_path), out / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    with torch.inference_mode():
        assert torch.allclose(peft(**ids).logits, merged(**ids).logits, atol=1e-4)
        text = merged.generate(**ids, max_new_tokens=6, do_sample=False)
    assert text.shape[1] == ids["input_ids"].shape[1] + 6


def test_merged_model_serves_on_vllm(trained):
    cfg, _ = trained
    script = ROOT / "tests" / "vllm_check.py"
    out = subprocess.run([sys.executable, str(script), str(Path(cfg.output_dir, "merged"))], capture_output=True,
                         text=True, timeout=600, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert 1 <= result["num_tokens"] <= 8 and result["model"] == "merged"


def test_resume_after_the_driver_is_killed(ray_cluster, tiny_policy_path, pairs_path, tmp_path):
    args = _args(tiny_policy_path, pairs_path, tmp_path / "dpo", max_steps=12, merge=False)
    gcs = ray_cluster.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "jobs.train_dpo", "--ray_address", gcs]
    cmd += [x for k, v in args.items() for x in (f"--{k}", str(v).lower() if isinstance(v, bool) else str(v))]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while registered_checkpoint_step(tmp_path / "dpo" / "ray" / "dpo") is None:
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint registered before the job ended"
        time.sleep(0.5)  # Ray Train registered a checkpoint (not just uploaded its files)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-training: the driver (and with it the run) dies
    proc.wait()
    time.sleep(5)
    cfg = DPOJobConfig(**args)
    summary = run_dpo_job(cfg)  # same storage and run name: Ray Train restores the latest checkpoint
    assert 2 <= summary["resumed_from_step"] < 12 and summary["final_step"] == 12
    history = json.loads(Path(cfg.output_dir, "metrics.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == list(range(1, 13))  # one history, no step lost or redone


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_across_two_cpu_workers(ray_cluster, tiny_policy_path, pairs_path, tmp_path, stage):
    args = _args(tiny_policy_path, pairs_path, tmp_path / "dpo", max_steps=2, eval_fraction=0.0, merge=False)
    cfg = DPOJobConfig(**{**args, "zero_stage": stage, "num_workers": 2})
    summary = run_dpo_job(cfg)
    assert summary["final_step"] == 2 and Path(cfg.output_dir, "adapter", "adapter_model.safetensors").exists()
    (ckpt,) = _checkpoints(cfg)
    shards = sorted(p.name for p in ckpt.glob("global_step2/*optim_states.pt"))
    assert len(shards) == 2, shards  # DeepSpeed's ZeRO optimizer state, partitioned over the two ranks
    assert summary["last_metrics"]["distributed_type"] == "DEEPSPEED"


def test_precomputed_reference_log_probs(ray_cluster, tiny_policy_path, pairs_path, tmp_path):
    args = _args(tiny_policy_path, pairs_path, tmp_path / "dpo", max_steps=2, merge=False, eval_steps=1, save_steps=1)
    summary = run_dpo_job(DPOJobConfig(**{**args, "precompute_ref_log_probs": True}))
    history = json.loads(Path(args["output_dir"], "metrics.json").read_text())
    assert summary["final_step"] == 2 and history[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
