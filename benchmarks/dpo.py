"""DPO job vs a plain TRL DPOTrainer script: training tokens/s and peak memory, same data and model.

1. Pairs: the bundled GSM8K sample, chosen = the reference solution with its answer, rejected = the same
   solution ending in a wrong answer (SmolLM2's own search yields almost no pairs; this measures throughput).
   ``--pairs 32`` with 16 steps x batch 4 is two epochs (the paper trains 10).
2. Plain: TRL ``DPOTrainer`` + PEFT LoRA in one process, no Ray (a subprocess, for a clean peak RSS), with the
   job's hyperparameters and TRL's defaults otherwise: HF's random batch order, a reference forward every step.
3. Plain, same settings: the job's trainer and arguments without Ray (length-grouped batches; the reference
   log-probs precomputed once, in length order, since training is multi-epoch): what Ray itself costs.
4. Job: ``run_dpo_job`` on a local Ray cluster, one Ray Train worker with the same CPUs; peak RSS of the worker.
5. tokens/s = TRL's ``num_tokens`` (real, unpadded tokens trained on) / seconds from building the trainer
   (tokenizing, the reference pass if any) to the end of training (the final checkpoint save included).
   Ratios job / plain (target >= 1.0) and job / plain-same-settings.

Results: ``benchmarks/results/dpo.{md,json}``.

    python benchmarks/dpo.py [--steps 16] [--batch 4] [--pairs 32]
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


def build_pairs(path: Path, limit: int) -> Path:
    """Pairs in the P3 schema from the bundled GSM8K sample (its first ``limit`` problems, one pair each)."""
    import pyarrow as pa
    from transformers import AutoTokenizer

    from sphere_ray.models.embedded import ensure_smollm2
    from sphere_ray.pairs import PAIR_SCHEMA, write_pairs

    tok = AutoTokenizer.from_pretrained(ensure_smollm2())
    rows = []
    for line in (ROOT / "sphere_ray" / "data" / "gsm8k_train_sample.jsonl").read_text().splitlines()[:limit]:
        p = json.loads(line)
        answer, solution = p["answer"], p["solution"].strip()
        wrong = str(int(answer) + 1) if answer.lstrip("-").isdigit() else answer + "1"
        prompt = tok.apply_chat_template([{"role": "user", "content": p["problem"]}], tokenize=False,
                                         add_generation_prompt=True)  # fmt: skip
        rows.append({
            "prompt": prompt, "chosen": f"{solution}\nThe answer is \\boxed{{{answer}}}.",
            "rejected": f"{solution}\nThe answer is \\boxed{{{wrong}}}.", "pair_id": p["id"], "problem_id": p["id"],
            "stage": 1, "level": "trajectory", "prompt_kind": "solve", "depth": None, "chosen_score": 1.0,
            "rejected_score": 0.0, "chosen_correct": True, "rejected_correct": False, "chosen_model": "reference",
            "rejected_model": "reference", "config_hash": "benchmark",
        })  # fmt: skip
    return write_pairs(pa.Table.from_pylist(rows, schema=PAIR_SCHEMA), path)


def job_config(args, pairs: Path, out: Path):
    from sphere_ray.training.config import DPOJobConfig

    return DPOJobConfig(
        pairs=str(pairs), output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch,
        eval_fraction=0.0, eval_strategy="no", save_strategy="steps", save_steps=args.steps, logging_steps=1,
        bf16=False, gradient_checkpointing=False, cpus_per_worker=os.cpu_count(), merge=False, max_length=512,
        dataloader_num_workers=0, seed=0,
    )  # fmt: skip


def plain(args, pairs: Path, out: Path, same_settings: bool) -> dict:
    """The plain TRL script (run in a subprocess by :func:`main`).

    ``same_settings=False``: what a user writes today, TRL's ``DPOTrainer`` with TRL's defaults and the
    benchmark's hyperparameters (random batch order). ``True``: the job's exact arguments and trainer
    (length-grouped batches), to isolate what Ray itself costs.
    """
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer

    from sphere_ray.models.embedded import ensure_smollm2
    from sphere_ray.training.data import load_pair_splits
    from sphere_ray.training.worker import dpo_trainer_class

    cfg = job_config(args, pairs, out)
    model_path = ensure_smollm2()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    table = load_pair_splits(str(pairs), tokenizer, cfg.max_length, 0.0).train
    training_args = cfg.training_args(str(out), train_rows=len(table))
    if not same_settings:  # TRL's defaults
        table, training_args.train_sampling_strategy = table.select(["prompt", "chosen", "rejected"]), "random"
        training_args.precompute_ref_log_probs = False
    model = AutoModelForCausalLM.from_pretrained(model_path)
    start = time.perf_counter()  # as the job's clock: from building the trainer, the model already loaded
    trainer = (dpo_trainer_class() if same_settings else DPOTrainer)(
        model=model, args=training_args, processing_class=tokenizer,
        train_dataset=Dataset(table),
        peft_config=LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                               target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM"),
    )  # fmt: skip
    trainer.train()
    seconds = time.perf_counter() - start
    tokens = max(h.get("num_tokens", 0) for h in trainer.state.log_history)
    return {"tokens": tokens, "train_seconds": seconds, "precompute": training_args.precompute_ref_log_probs,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def run_plain(args, pairs: Path, same_settings: bool) -> dict:
    """:func:`plain` in a fresh process (a clean peak RSS)."""
    cmd = [sys.executable, __file__, "--steps", str(args.steps), "--batch", str(args.batch), "--plain-only", str(pairs)]
    cmd += ["--pairs", str(args.pairs)]
    if same_settings:
        cmd.append("--same-settings")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def job(args, pairs: Path, out: Path) -> dict:
    import ray

    from sphere_ray.cluster import connect_ray
    from sphere_ray.training.job import run_dpo_job

    connect_ray(num_cpus=os.cpu_count(), quiet=True)
    try:
        start = time.perf_counter()
        summary = run_dpo_job(job_config(args, pairs, out))
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    history = json.loads((out / "metrics.json").read_text())
    last = summary["last_metrics"]
    precompute = job_config(args, pairs, out).training_args(str(out), train_rows=args.pairs).precompute_ref_log_probs
    return {"tokens": max(h.get("num_tokens", 0) for h in history), "train_seconds": last["train_seconds"],
            "peak_rss_mb": last["peak_rss_mb"], "job_wall_seconds": wall, "precompute": precompute}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=32, help="pairs (steps x batch / pairs = epochs)")
    parser.add_argument("--plain-only", metavar="PAIRS", help=argparse.SUPPRESS)
    parser.add_argument("--same-settings", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sphere-dpo-bench-"))
    if args.plain_only:
        print(json.dumps(plain(args, Path(args.plain_only), work / "plain", args.same_settings)))
        return
    pairs = build_pairs(work / "pairs.parquet", args.pairs)
    p, same, j = run_plain(args, pairs, False), run_plain(args, pairs, True), job(args, pairs, work / "job")
    rate = {name: r["tokens"] / r["train_seconds"] for name, r in (("plain", p), ("same", same), ("job", j))}
    result = {
        "tokens": j["tokens"], "plain_train_seconds": round(p["train_seconds"], 1),
        "plain_same_settings_train_seconds": round(same["train_seconds"], 1),
        "job_train_seconds": round(j["train_seconds"], 1), "plain_tokens_per_s": round(rate["plain"], 1),
        "plain_same_settings_tokens_per_s": round(rate["same"], 1), "job_tokens_per_s": round(rate["job"], 1),
        "throughput_ratio": round(rate["job"] / rate["plain"], 3),
        "throughput_ratio_same_settings": round(rate["job"] / rate["same"], 3),
        "plain_peak_rss_mb": round(p["peak_rss_mb"]), "plain_same_settings_peak_rss_mb": round(same["peak_rss_mb"]),
        "job_worker_peak_rss_mb": round(j["peak_rss_mb"]),
        "memory_ratio_plain_over_job": round(p["peak_rss_mb"] / j["peak_rss_mb"], 3),
        "job_wall_seconds_incl_worker_start_and_export": round(j["job_wall_seconds"], 1),
        "reference_precomputed": {"plain": p["precompute"], "plain_same_settings": same["precompute"],
                                  "job": j["precompute"]},
    }  # fmt: skip
    meta = (
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, no GPU; SmolLM2-135M-Instruct "
        f"fp32 + LoRA r64/alpha128 (all-linear), beta 0.8, {args.steps} steps x batch {args.batch}, max_length 512, "
        f"{args.pairs} constructed GSM8K pairs ({args.steps * args.batch / args.pairs:g} epochs); job: 1 Ray Train "
        f"worker with {os.cpu_count()} CPUs, no DeepSpeed, its defaults (length-grouped batches, reference log-probs "
        "precomputed when multi-epoch); plain: TRL's DPOTrainer with TRL's defaults (random batch order, reference "
        "forward each step); plain same settings: the job's trainer and arguments without Ray; seconds from building "
        "the trainer to the end of training"
    )
    md = write_results("dpo", "DPO job vs plain TRL script", meta, result)
    print(md)


if __name__ == "__main__":
    main()
