"""SFT job on the session's local Ray cluster with a tiny REAL Qwen2: TRL SFTTrainer + PEFT LoRA on Ray Train.

Shows: packed training with loss and eval loss logged, bad samples dropped with counts, the best checkpoint by
eval loss exported, the adapter and the merged model load back and agree, the ``train-sft`` CLI, and a rerun with
the same storage and run name resuming from the latest checkpoint. (The worker, launch and export path is the DPO
job's, whose tests also cover a killed driver, DeepSpeed ZeRO-2/3 and serving the merged model on vLLM.)
"""

import json
from pathlib import Path

import pytest
from sft_rows import good_sft_rows, sft_row, write_sft_rows

from sphere_ray.training.config import SFTJobConfig
from sphere_ray.training.job import registered_checkpoint_step, run_sft_job

pytestmark = pytest.mark.slow


def _args(model: str, data: Path, out: Path, **over) -> dict:
    args = {
        "model": model, "data": str(data), "output_dir": str(out), "max_steps": 4, "eval_strategy": "steps",
        "save_strategy": "steps", "eval_steps": 2, "save_steps": 2, "logging_steps": 1, "learning_rate": 1e-3,
        "lora_r": 8, "lora_alpha": 16, "per_device_train_batch_size": 1, "per_device_eval_batch_size": 1,
        "eval_fraction": 0.34, "bf16": False, "cpus_per_worker": 1, "max_length": 256,
    }  # fmt: skip
    return {**args, **over}


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    bad = [sft_row("p-9", 0, completion=""), sft_row("p-9", 1, completion="x " * 400)]
    return write_sft_rows([*good_sft_rows(6, 3), *bad], tmp_path_factory.mktemp("sft") / "sft" / "part-0.parquet")


@pytest.fixture(scope="module")
def trained(ray_cluster, tiny_policy_path, data_path, tmp_path_factory):
    cfg = SFTJobConfig(**_args(tiny_policy_path, data_path.parent, tmp_path_factory.mktemp("out") / "sft"))
    return cfg, run_sft_job(cfg)


def test_trains_packed_logs_metrics_and_drops_bad_samples(trained):
    cfg, summary = trained
    data = summary["data"]
    assert data["samples_read"] == 20 and data["train_samples"] + data["eval_samples"] == 18
    assert data["dropped"] == {"empty completion": 1, "longer than max_length=256 tokens": 1}
    history = json.loads(Path(cfg.output_dir, "metrics.json").read_text())
    train_logs = [h for h in history if "loss" in h]
    assert [h["step"] for h in train_logs] == [1, 2, 3, 4]
    assert all("mean_token_accuracy" in h and h["num_tokens"] > 0 for h in train_logs)
    # packed: each step's batch of one row carries several samples (~100 tokens each), so tokens per step > 100
    assert train_logs[0]["num_tokens"] > 150
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    assert len(evals) == 2 and summary["best_eval_loss"] == min(evals)
    assert train_logs[-1]["loss"] < train_logs[0]["loss"]  # lr 1e-3 on a repetitive toy set: it learns


def test_adapter_and_merged_model_agree(trained, tiny_policy_path):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg, summary = trained
    out = Path(cfg.output_dir)
    exported = load_file(out / "adapter" / "adapter_model.safetensors")
    best = load_file(Path(summary["best_checkpoint"], "checkpoint", "adapter_model.safetensors"))
    assert exported.keys() == best.keys() and all(exported[k].equal(best[k]) for k in best)
    assert all(v.abs().sum() > 0 for k, v in exported.items() if "lora_B" in k)  # lora_B starts at zero: it trained
    tok = AutoTokenizer.from_pretrained(out / "merged")
    ids = tok("What is 3 + 4?", return_tensors="pt")
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_policy_path), out / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    with torch.inference_mode():
        assert torch.allclose(peft(**ids).logits, merged(**ids).logits, atol=1e-4)


def test_cli_rerun_resumes_from_the_latest_checkpoint(trained, ray_cluster):
    from jobs.train_sft import main

    cfg, _ = trained
    argv = [x for k, v in _args(cfg.model, Path(cfg.data), Path(cfg.output_dir), max_steps=6, merge=False).items()
            for x in (f"--{k}", str(v).lower() if isinstance(v, bool) else str(v))]  # fmt: skip
    assert main(argv) == 0  # same storage and run name: Ray Train restores step 4, training goes on to 6
    summary = json.loads(Path(cfg.output_dir, "summary.json").read_text())
    assert summary["resumed_from_step"] == 4 and summary["final_step"] == 6
    history = json.loads(Path(cfg.output_dir, "metrics.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == list(range(1, 7))  # one history, no step redone


def test_a_killed_train_worker_resumes_from_its_checkpoint(ray_cluster, tiny_policy_path, data_path, tmp_path):
    """A Ray Train worker SIGKILLed mid-run: the worker group restarts from the last checkpoint (max_failures)
    and finishes; the steps after the restart have the losses of an uninterrupted run (same seeds, restored RNG)."""
    import os
    import signal
    import threading
    import time

    import psutil

    over = {"max_steps": 12, "eval_strategy": "no", "save_steps": 2, "eval_fraction": 0.0, "merge": False}
    clean = run_sft_job(SFTJobConfig(**_args(tiny_policy_path, data_path.parent, tmp_path / "clean", **over)))
    out = tmp_path / "killed"
    killed = []

    def kill_once_checkpointed():
        deadline = time.monotonic() + 600
        # registered by the controller, not only written: a report the controller has not polled dies with the worker
        while time.monotonic() < deadline and registered_checkpoint_step(out / "ray" / "sft") is None:
            time.sleep(0.2)
        for proc in psutil.process_iter(["name"]):  # the worker actor's process title: ray::RayTrainWorker...
            if (proc.info["name"] or "").startswith("ray::RayTrainWorker"):
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(proc.pid)

    killer = threading.Thread(target=kill_once_checkpointed, daemon=True)
    killer.start()
    summary = run_sft_job(SFTJobConfig(**_args(tiny_policy_path, data_path.parent, out, max_failures=2, **over)))
    killer.join(timeout=5)
    assert killed and summary["final_step"] == 12 and 2 <= summary["resumed_from_step"] < 12, summary
    losses = {h["step"]: h["loss"] for h in json.loads((out / "metrics.json").read_text()) if "loss" in h}
    reference = {h["step"]: h["loss"] for h in json.loads((tmp_path / "clean" / "metrics.json").read_text())
                 if "loss" in h}  # fmt: skip
    assert sorted(losses) == list(range(1, 13)) and clean["final_step"] == 12
    after = [s for s in losses if s > summary["resumed_from_step"]]
    assert after and all(abs(losses[s] - reference[s]) < 1e-3 for s in after), (losses, reference)
