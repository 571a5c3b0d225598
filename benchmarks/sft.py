"""SFT job vs a plain TRL SFTTrainer script: training tokens/s and peak memory, same data and model.

1. Samples: the bundled GSM8K sample in the SFT data job's format (conversational prompt/completion), the
   completion = the reference solution ending in its boxed answer (SmolLM2's own dialogues keep almost no
   samples; this measures throughput). One epoch over ``--samples`` samples.
2. Plain: TRL ``SFTTrainer`` + PEFT LoRA in one process, no Ray (a subprocess, for a clean peak RSS), with the
   job's hyperparameters and TRL's defaults otherwise: no packing, batches of ``--batch`` samples padded to the
   longest, the chat template's newline after ``<|im_end|>`` trained.
3. Plain, same settings: the job's trainer and arguments without Ray (bfd packing into rows of ``--max-length``
   tokens, padding-free, nothing trained after the end-of-turn token): what Ray itself costs.
4. Job: ``run_sft_job`` on a local Ray cluster, one Ray Train worker with the same CPUs; peak RSS of the worker.
5. tokens/s = TRL's ``num_tokens`` (real, unpadded tokens seen, the same data in every run) / seconds from
   building the trainer (tokenizing, packing) to the end of training (the final checkpoint save included).
   Ratios job / plain (target >= 1.0) and job / plain-same-settings.

Results: ``benchmarks/results/sft.{md,json}``.

    python benchmarks/sft.py [--samples 64] [--batch 4] [--max-length 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import write_results  # noqa: E402


def build_samples(path: Path, limit: int) -> Path:
    """SFT samples (prompt/completion messages + problem_id) from the bundled GSM8K sample's first ``limit``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for line in (ROOT / "sphere_ray" / "data" / "gsm8k_train_sample.jsonl").read_text().splitlines()[:limit]:
        p = json.loads(line)
        answer = f"{p['solution'].strip()}\nThe answer is \\boxed{{{p['answer']}}}."
        rows.append({"prompt": [{"role": "user", "content": p["problem"]}],
                     "completion": [{"role": "assistant", "content": answer}], "problem_id": p["id"]})  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def job_config(args, data: Path, out: Path, packing: bool = True):
    from sphere_ray.training.config import SFTJobConfig

    return SFTJobConfig(
        data=str(data), output_dir=str(out), num_train_epochs=1, packing=packing, max_length=args.max_length,
        per_device_train_batch_size=1 if packing else args.batch, eval_fraction=0.0, eval_strategy="no",
        save_strategy="epoch", logging_steps=1, bf16=False, gradient_checkpointing=False,
        cpus_per_worker=os.cpu_count(), merge=False, dataloader_num_workers=0, seed=0,
    )  # fmt: skip


def plain(args, data: Path, out: Path, same_settings: bool) -> dict:
    """The plain TRL script (run in a subprocess by :func:`main`).

    ``same_settings=False``: what a user writes today, TRL's ``SFTTrainer`` with TRL's defaults (no packing) and
    the benchmark's hyperparameters. ``True``: the job's exact arguments and trainer, to isolate what Ray costs.
    """
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from sphere_ray.models.embedded import ensure_smollm2
    from sphere_ray.training.samples import load_sft_splits

    cfg = job_config(args, data, out, packing=same_settings)
    model_path = ensure_smollm2()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    table = load_sft_splits(str(data), tokenizer, cfg.max_length, 0.0).train
    training_args = cfg.training_args(str(out), train_rows=len(table))
    trainer_class = cfg.trainer()[0] if same_settings else SFTTrainer
    model = AutoModelForCausalLM.from_pretrained(model_path)
    start = time.perf_counter()  # as the job's clock: from building the trainer, the model already loaded
    trainer = trainer_class(
        model=model, args=training_args, processing_class=tokenizer, train_dataset=Dataset(table),
        peft_config=LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                               target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM"),
    )  # fmt: skip
    trainer.train()
    seconds = time.perf_counter() - start
    return {"tokens": _tokens(trainer.state.log_history), "train_seconds": seconds, "steps": trainer.state.global_step,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def _tokens(history: list[dict]) -> float:
    return max(h.get("num_tokens", 0) for h in history)


def run_plain(args, data: Path, same_settings: bool) -> dict:
    """:func:`plain` in a fresh process (a clean peak RSS)."""
    cmd = [sys.executable, __file__, "--batch", str(args.batch), "--max-length", str(args.max_length)]
    cmd += ["--samples", str(args.samples), "--plain-only", str(data)] + (["--same-settings"] if same_settings else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def job(args, data: Path, out: Path) -> dict:
    import ray

    from sphere_ray.cluster import connect_ray
    from sphere_ray.training.job import run_sft_job

    connect_ray(num_cpus=os.cpu_count(), quiet=True)
    try:
        start = time.perf_counter()
        summary = run_sft_job(job_config(args, data, out))
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    last = summary["last_metrics"]
    return {"tokens": _tokens(json.loads((out / "metrics.json").read_text())), "steps": summary["final_step"],
            "train_seconds": last["train_seconds"], "peak_rss_mb": last["peak_rss_mb"],
            "job_wall_seconds": wall}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64, help="samples (one epoch)")
    parser.add_argument("--batch", type=int, default=4, help="plain TRL: samples per batch (the job packs rows)")
    parser.add_argument("--max-length", type=int, default=1024, help="the job's packed row length; the cap")
    parser.add_argument("--plain-only", metavar="DATA", help=argparse.SUPPRESS)
    parser.add_argument("--same-settings", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sphere-sft-bench-"))
    if args.plain_only:
        print(json.dumps(plain(args, Path(args.plain_only), work / "plain", args.same_settings)))
        return
    data = build_samples(work / "sft" / "part-0.parquet", args.samples)
    p, same, j = run_plain(args, data, False), run_plain(args, data, True), job(args, data, work / "job")
    rate = {name: r["tokens"] / r["train_seconds"] for name, r in (("plain", p), ("same", same), ("job", j))}
    result = {
        "tokens": j["tokens"], "plain_tokens": p["tokens"], "steps": {"plain": p["steps"], "job": j["steps"]},
        "plain_train_seconds": round(p["train_seconds"], 1),
        "plain_same_settings_train_seconds": round(same["train_seconds"], 1),
        "job_train_seconds": round(j["train_seconds"], 1), "plain_tokens_per_s": round(rate["plain"], 1),
        "plain_same_settings_tokens_per_s": round(rate["same"], 1), "job_tokens_per_s": round(rate["job"], 1),
        "throughput_ratio": round(rate["job"] / rate["plain"], 3),
        "throughput_ratio_same_settings": round(rate["job"] / rate["same"], 3),
        "plain_peak_rss_mb": round(p["peak_rss_mb"]), "plain_same_settings_peak_rss_mb": round(same["peak_rss_mb"]),
        "job_worker_peak_rss_mb": round(j["peak_rss_mb"]),
        "memory_ratio_job_over_plain": round(j["peak_rss_mb"] / p["peak_rss_mb"], 3),
        "job_wall_seconds_incl_worker_start_and_export": round(j["job_wall_seconds"], 1),
    }  # fmt: skip
    meta = (
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, no GPU; SmolLM2-135M-Instruct "
        f"fp32 + LoRA r64/alpha128 (all-linear), lr 1e-4, one epoch over {args.samples} GSM8K reference solutions as "
        f"SFT samples; job: 1 Ray Train worker with {os.cpu_count()} CPUs, no DeepSpeed, its defaults (bfd packing "
        f"into {args.max_length}-token rows, 1 row per step, padding-free, loss on the completion and its "
        f"end-of-turn token); plain: TRL's SFTTrainer with TRL's defaults (no packing, batch {args.batch} padded); "
        "plain same settings: the job's trainer and arguments without Ray; seconds from building the trainer to "
        "the end of training"
    )
    print(write_results("sft", "SFT job vs plain TRL script", meta, result))


if __name__ == "__main__":
    main()
