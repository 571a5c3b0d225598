"""Bad input at scale (P11): a fuzzed problems file of 10k+ rows through the real generation job.

The file (:func:`sphere_ray.sim.fuzz.fuzzed_lines`) mixes good simulated problems with every kind of bad
row: lines that do not parse, invalid UTF-8, rows that are not objects, missing and wrong-typed fields,
NaN/None answers, empty and 1 MB texts, boolean and duplicate ids. ``python -m jobs.generate`` runs it on a
local Ray with the in-process simulated models (``models: inprocess`` + ``sim``: no Serve, so 10k problems
fit in minutes), then once more on the same folder (a resume: nothing to redo).

Reported (``results/fuzz_input.{md,json}``): rows by kind, rejects by reason, whether every bad row is a
reject with a reason and every good row was searched exactly once, and whether the counts add up.

    python benchmarks/fuzz_input.py [--rows 12000 --bad-share 0.3]
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scale import SIM_MODELS

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["--models", "inprocess", *SIM_MODELS]  # scale.py's simulated Qwen2.5-Math trio


def job(problems: Path, out: Path, log: Path) -> float:
    """Run the generation job on ``problems`` into ``out``; return its wall seconds."""
    cmd = [sys.executable, "-m", "jobs.generate", "--problems", str(problems), "--output_dir", str(out), *MODELS,
           "--sim", json.dumps({"compression": 1e4}), "--num_actors", "2", "--problems_in_flight", "64",
           "--actor_num_cpus", "0.5", "--num_candidates", "2", "--max_depth", "2", "--max_step_tokens", "16",
           "--commit_every", "1024", "--progress_every_s", "60"]  # fmt: skip
    start = time.monotonic()
    with open(log, "a") as f:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the job failed ({proc.returncode}): {log.read_text()[-3000:]}")
    return time.monotonic() - start


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from sphere_ray.generation.store import OutputStore
    from sphere_ray.sim.fuzz import fuzzed_lines

    lines = list(fuzzed_lines(args.rows, bad_share=args.bad_share, seed=args.seed))
    path = work / "fuzz.jsonl"
    path.write_bytes(b"\n".join(line for line, _ in lines) + b"\n")
    good = [json.loads(line)["id"] for line, kind in lines if kind == "good"]
    bad_rows = {i: kind for i, (_, kind) in enumerate(lines) if kind != "good"}
    wall = job(path, work / "out", work / "job.log")
    rerun = job(path, work / "out", work / "job.log")
    store = OutputStore(str(work / "out"))
    trees = store.read("trees").column("problem_id").to_pylist()
    rejects = store.read("rejects").to_pylist()
    summary = json.loads((work / "out" / "summary.json").read_text())
    reasons = collections.Counter(_reason_kind(r["reason"]) for r in rejects)
    by_row = {r["row"]: r for r in rejects if r["row"] is not None}
    return {
        "rows": len(lines), "file_mib": round(path.stat().st_size / 2**20, 1), "good_rows": len(good),
        "bad_rows": len(bad_rows), "bad_by_kind": dict(sorted(collections.Counter(bad_rows.values()).items())),
        "rejects": len(rejects), "rejects_by_reason": dict(reasons.most_common()),
        "every_bad_row_rejected_with_a_reason": set(by_row) == set(bad_rows) and all(r["reason"] for r in rejects),
        "trees": len(trees), "good_searched_once": sorted(trees) == sorted(good),
        "counts_add_up": len(trees) + len(rejects) == len(lines),
        "problems_failed": summary.get("rejects", 0) - len(bad_rows), "wall_s": round(wall, 1),
        "rerun_wall_s": round(rerun, 1), "rerun_problems_searched": summary["this_run"]["problems"],
    }  # fmt: skip


def _reason_kind(reason: str) -> str:
    """A reason without its row-specific tail (``duplicate id 'p12'`` -> ``duplicate id``)."""
    return reason.split(" '")[0].split(":")[0].split(" (")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12_000)
    parser.add_argument("--bad-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import write_results

    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args, Path(tmp))
    meta = (f"{time.strftime('%Y-%m-%d')}; `python benchmarks/fuzz_input.py`: {args.rows} fuzzed rows (bad share "
            f"{args.bad_share}, seed {args.seed}) through `python -m jobs.generate` with the in-process simulated "
            "models on a local Ray (2 actors, E=2, depth 2), then the same command again (resume).")  # fmt: skip
    flat = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in result.items()}
    print(write_results("fuzz_input", "Bad input at scale: a fuzzed problems file through the job", meta, flat,
                        {"detail": result}))  # fmt: skip


if __name__ == "__main__":
    main()
