"""Driver memory of the generation job's input stage: the staged Parquet queue vs materialising the file.

For a JSONL file of N simulated problems (each with a 500-character solution, so rows are the size of
real MATH rows), measures in a fresh subprocess each:

* ``staged``: what the job does now (``sphere_ray.generation.queue.stage_problems``: one lazy pass,
  queue parts of 256 rows, input rejects written in chunks), with 1% of rows bad and 1% done;
* ``materialised``: what the job did before P8 (``load_problems`` into a list, then one Ray Data row dict
  per problem, as ``ray.data.from_items`` was given), without Ray itself.

Reports peak RSS (``ru_maxrss``) above the interpreter's baseline after imports, and wall seconds.
Results: ``benchmarks/results/input_memory.{md,json}``.

    python benchmarks/input_memory.py [--problems 100000 1000000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sphere_ray.files import write_json, write_text

OUT = Path(__file__).resolve().parent / "results"


def make_input(path: Path, n: int) -> None:
    from sphere_ray.sim.text import sim_problems

    with path.open("w") as f:
        for i, p in enumerate(sim_problems(n, seed=1)):
            if i % 100 == 50:
                f.write(json.dumps({"id": f"bad-{i}", "problem": ""}) + "\n")
            f.write(json.dumps({**p, "solution": "step " * 100}) + "\n")


def child(mode: str, path: str, out: str) -> None:
    """Run one mode in this process; print its peak RSS increase (MiB) and seconds as JSON."""
    from sphere_ray.generation.queue import stage_problems
    from sphere_ray.generation.store import OutputStore
    from sphere_ray.problems import load_problems

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if mode == "staged":
        done = {f"sim-{i:07d}" for i in range(0, 10**7, 100)}
        queue = stage_problems(path, None, done, OutputStore(out), part_rows=256)
        count = queue.todo
    else:
        loaded = load_problems(path)
        rows = [dataclasses.asdict(p) for p in loaded.problems]
        count = len(rows)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "problems": count, "peak_mib": (peak - base) / 1024, "seconds": seconds}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, nargs="+", default=[100_000])
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.problems:
            path = Path(tmp) / f"in-{n}.jsonl"
            make_input(path, n)
            size_mib = path.stat().st_size / 2**20
            for mode in ("staged", "materialised"):
                cmd = [sys.executable, __file__, "--child", mode, str(path), f"{tmp}/out-{n}-{mode}"]
                row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
                results.append({**row, "input_rows": n, "file_mib": round(size_mib, 1)})
                print(results[-1], flush=True)
    write_json(OUT / "input_memory.json", {"results": results})
    lines = ["# Driver memory of the input stage", "", "Peak RSS above the interpreter after imports "
             "(`ru_maxrss`), one fresh process per row; 1% bad rows, 1% already done. "
             "`python benchmarks/input_memory.py`.", "",
             "| input rows | file MiB | mode | problems | peak MiB | seconds |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        lines.append(f"| {r['input_rows']} | {r['file_mib']} | {r['mode']} | {r['problems']} | "
                     f"{r['peak_mib']:.0f} | {r['seconds']:.1f} |")  # fmt: skip
    write_text(OUT / "input_memory.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
