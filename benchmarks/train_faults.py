"""Training under faults (P11): the SFT job on the embedded SmolLM2, uninterrupted vs a killed Ray Train worker vs
a killed driver rerun; the loss curves of the three runs on one plot.

Data: the easy-math curriculum's reference solutions (``easy_train``) as TRL conversational prompt-completion
samples. Each run trains ``--steps`` steps, checkpointing every ``--save-steps``:

* **clean**: no fault;
* **worker killed**: the Ray Train worker is SIGKILLed after the first checkpoint; ``max_failures`` restarts
  the worker group from it and training finishes in the same job;
* **driver killed**: the job's driver (``python -m jobs.train_sft``) is SIGKILLed after the first checkpoint,
  then rerun with the same storage and run name: it resumes from the last checkpoint.

Reported (``results/train_faults.{md,json,png}``): final step, the step each fault run resumed from, the
largest loss difference to the clean run on the steps after the resume, and wall times.

    python benchmarks/train_faults.py [--steps 40 --save-steps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sphere_ray.training.job import registered_checkpoint_step

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def write_data(path: Path) -> Path:
    """The curriculum's reference solutions as SFT rows (``prompt``/``completion`` messages, ``problem_id``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sphere_ray.evaluation.prompts import answer_messages
    from sphere_ray.problems import load_problems

    rows = [{"prompt": answer_messages(p.problem), "completion": [{"role": "assistant", "content": p.solution}],
             "problem_id": p.id} for p in load_problems("easy_train").problems]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path.parent


def argv(args: argparse.Namespace, data: Path, out: Path, gcs: str) -> list[str]:
    flags = {"model": "smollm2-135m-instruct", "data": data, "output_dir": out, "max_steps": args.steps,
             "save_strategy": "steps", "save_steps": args.save_steps, "eval_strategy": "no", "eval_fraction": 0,
             "logging_steps": 1, "per_device_train_batch_size": 2, "learning_rate": 1e-4, "bf16": "false",
             "cpus_per_worker": 2, "max_length": 512, "packing": "false", "merge": "false", "report_to": "none",
             "max_failures": 2, "ray_address": gcs, "seed": 0}  # fmt: skip
    return [x for k, v in flags.items() for x in (f"--{k}", str(v))]


def first_checkpoint(out: Path, timeout_s: float = 1800) -> None:
    """Wait until Ray Train has registered a checkpoint (what a restart resumes from)."""
    deadline = time.monotonic() + timeout_s
    while registered_checkpoint_step(out / "ray" / "sft") is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no checkpoint in {out} after {timeout_s} s")
        time.sleep(0.5)


def kill_train_worker(out: Path, killed: list[int]) -> None:
    import psutil

    first_checkpoint(out)
    for proc in psutil.process_iter(["name"]):  # the worker actor's process title: ray::RayTrainWorker...
        if (proc.info["name"] or "").startswith("ray::RayTrainWorker"):
            os.kill(proc.pid, signal.SIGKILL)
            killed.append(proc.pid)


def run(cmd: list[str], log: Path, kill_after_checkpoint: Path | None = None) -> tuple[int, float]:
    t0 = time.monotonic()
    with open(log, "a") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        if kill_after_checkpoint is not None:
            first_checkpoint(kill_after_checkpoint)
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its children
            proc.wait()
            return -9, time.monotonic() - t0
        return proc.wait(), time.monotonic() - t0


def losses(out: Path) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in json.loads((out / "metrics.json").read_text()) if "loss" in h}


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--save-steps", type=int, default=10)
    args = parser.parse_args()
    from sphere_ray.cluster import connect_ray

    connect_ray(num_cpus=4, quiet=True)
    gcs = ray.get_runtime_context().gcs_address
    job = [sys.executable, "-m", "jobs.train_sft"]
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "steps": args.steps, "save_steps": args.save_steps}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_data(work / "data" / "part-0.parquet")
        runs = {}
        rc, secs = run([*job, *argv(args, data, work / "clean", gcs)], work / "clean.log")
        runs["clean"] = {"wall_s": secs, "return_code": rc}
        killed: list[int] = []
        killer = threading.Thread(target=kill_train_worker, args=(work / "worker", killed), daemon=True)
        killer.start()
        rc, secs = run([*job, *argv(args, data, work / "worker", gcs)], work / "worker.log")
        runs["worker_killed"] = {"wall_s": secs, "return_code": rc, "workers_killed": len(killed)}
        rc1, s1 = run([*job, *argv(args, data, work / "driver", gcs)], work / "driver.log", work / "driver")
        rc2, s2 = run([*job, *argv(args, data, work / "driver", gcs)], work / "driver.log")
        runs["driver_killed"] = {"wall_s": s1 + s2, "return_code": rc2, "first_run_code": rc1}
        curves = {}
        for name, folder in (("clean", "clean"), ("worker_killed", "worker"), ("driver_killed", "driver")):
            if runs[name]["return_code"] != 0:
                raise RuntimeError(f"{name} failed: {(work / f'{folder}.log').read_text()[-3000:]}")
            summary = json.loads((work / folder / "summary.json").read_text())
            curves[name] = losses(work / folder)
            after = [s for s in curves[name] if s > summary["resumed_from_step"]]
            runs[name].update(final_step=summary["final_step"], resumed_from_step=summary["resumed_from_step"],
                              max_loss_diff_after_resume=max((abs(curves[name][s] - curves["clean"][s])
                                                              for s in after), default=0.0))  # fmt: skip
    result.update(runs=runs, curves={k: {str(s): v for s, v in c.items()} for k, c in curves.items()})
    write(result)


def write(result: dict[str, Any]) -> None:
    from sphere_ray.files import write_json, write_text
    from sphere_ray.pipeline.plots import _plt, _save

    fig, ax = _plt().subplots(figsize=(6, 3.2))
    for name, curve in result["curves"].items():
        steps = sorted(int(s) for s in curve)
        ax.plot(steps, [curve[str(s)] for s in steps], marker="o", markersize=2, label=name.replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel("SFT loss")
    ax.legend()
    _save(fig, OUT / "train_faults.png")
    rows = [f"| {name} | {r['final_step']} | {r['resumed_from_step']} | {r['max_loss_diff_after_resume']:.2e} | "
            f"{r['wall_s']:.0f} |" for name, r in result["runs"].items()]  # fmt: skip
    md = "\n".join([
        "# Training under faults", "",
        f"{result['date']}; `python benchmarks/train_faults.py`: the SFT job (SmolLM2-135M + LoRA, fp32, 2 cores) on "
        f"the curriculum's reference solutions, {result['steps']} steps, a checkpoint every {result['save_steps']}. "
        "Worker killed: the Ray Train worker SIGKILLed after the first checkpoint (the job restarts it, "
        "`max_failures`). Driver killed: the job's driver SIGKILLed after the first checkpoint, then rerun.", "",
        "| run | final step | resumed from step | largest loss difference to clean after the resume | wall s |",
        "|---|---|---|---|---|", *rows, "", "![loss curves](train_faults.png)", "",
    ])  # fmt: skip
    write_text(OUT / "train_faults.md", md)
    write_json(OUT / "train_faults.json", result)
    print(md)


if __name__ == "__main__":
    main()
