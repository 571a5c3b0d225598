"""Chaos drill on the fake multi-node cluster with the simulated engine (P11): does a long run survive?

Runs the real generation job (``python -m jobs.generate`` as its own driver process) over Serve apps of
``deployments/gpu.yaml`` on the sim engine (policy and PRM at ``--replicas``, small policy at half), twice on
the same problems and seeds:

* **clean**: no faults;
* **chaos**: every ``--kill-every-s`` a random policy, small-policy or PRM replica is killed; once a Ray Data
  search actor is killed; once worker node 1 is removed (its raylet killed); and the driver is SIGKILLed at
  ``--driver-kills`` moments (fractions of the problems done) and rerun each time, resuming its folder.

Reported (``results/chaos.{md,json}``): problems lost and duplicated, whether the chaos run's problem ids and
pairs equal the clean run's (the sim is a pure function of prompt and seed), retries spent (problem
attempts beyond the first, and model calls retried by the clients, as committed with each problem), driver
restarts, the faults injected, and the wall-time overhead.

    python benchmarks/chaos.py [--problems 2000 --replicas 4 --kill-every-s 20]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from scale import _cluster_procs, _done, deploy, on_fake_cluster, serve_config, write_problems

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "chaos.json"
log = logging.getLogger("chaos")


def driver_cmd(args: argparse.Namespace, problems: Path, out: Path) -> list[str]:
    """The generation job against the running apps (its search seeded: reruns draw the same steps).

    It joins this process's cluster by address: with none, ``ray.init`` would start a new local one.
    """
    import ray

    address = ray.get_runtime_context().gcs_address
    return [sys.executable, "-m", "jobs.generate", "--problems", str(problems), "--output_dir", str(out),
            "--ray_address", address,
            "--start_serve", "false", "--num_actors", "2", "--problems_in_flight", str(args.in_flight),
            "--actor_num_cpus", "0.01", "--num_candidates", "2", "--max_depth", "4", "--max_step_tokens", "32",
            "--commit_every", "32", "--commit_every_s", "10", "--queue_part_rows", "32", "--progress_every_s", "30",
            "--seed", "7", "--problem_retry_delay_s", "2"]  # fmt: skip


def run_driver(cmd: list[str], log_path: Path, kill_at: float | None, total: int, out: Path) -> tuple[int, float]:
    """Run the driver; SIGKILL it once ``kill_at`` of the problems are committed. ``(return code, seconds)``."""
    t0 = time.monotonic()
    with open(log_path, "a") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            if kill_at is not None and _done(out) >= kill_at * total:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return -9, time.monotonic() - t0
            time.sleep(0.5)
    return proc.returncode, time.monotonic() - t0


class Chaos(threading.Thread):
    """Kills a random replica every ``every_s``; once a Ray Data actor; once worker node 1 (its raylet)."""

    def __init__(self, every_s: float, cluster: Any, seed: int, out: Path, total: int) -> None:
        super().__init__(daemon=True)
        self.every_s, self.cluster, self.rng, self.out, self.total = every_s, cluster, random.Random(seed), out, total
        self.events: list[dict[str, Any]] = []
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        node_removed = actor_killed = False
        while not self.stop_event.wait(self.every_s):
            done = _done(self.out) / self.total
            try:
                self._kill_replica()
                if not actor_killed and done >= 0.3:
                    actor_killed = self._kill_data_actor()
                if not node_removed and done >= 0.5:
                    node_removed = self._remove_node()
            except Exception as e:  # a fault injector must never end the drill
                self._event(f"injection failed: {type(e).__name__}: {e}")

    def _event(self, what: str) -> None:
        self.events.append({"t": round(time.monotonic() - self.t0, 1), "done": _done(self.out), "event": what})
        log.info("chaos: %s", what)

    def _alive(self, match: Any) -> list[Any]:
        import ray
        from ray.util.state import list_actors

        address = ray.get_runtime_context().gcs_address  # another Ray on the machine makes "auto" ambiguous
        alive = list_actors(address=address, filters=[("state", "=", "ALIVE")], limit=10000)
        return [a for a in alive if match(a.class_name)]

    def _kill_replica(self) -> None:
        import ray

        apps = ("ServeReplica:policy:", "ServeReplica:small_policy:", "ServeReplica:prm:")
        replicas = self._alive(lambda name: name.startswith(apps))
        if replicas:
            victim = self.rng.choice(replicas)
            ray.kill(ray.get_actor(victim.name, namespace="serve"), no_restart=True)
            self._event(f"killed replica {victim.name}")

    def _kill_data_actor(self) -> bool:
        actors = self._alive(lambda name: "MapWorker" in name)
        if not actors:
            return False
        victim = self.rng.choice(actors)
        os.kill(victim.pid, signal.SIGKILL)
        self._event(f"killed Ray Data actor {victim.class_name} (pid {victim.pid})")
        return True

    def _remove_node(self) -> bool:
        raylets = [p for p in _cluster_procs(self.cluster)
                   if "raylet" in p.name() and "fake_node_1" in " ".join(p.cmdline())]  # fmt: skip
        for proc in raylets:
            proc.send_signal(signal.SIGKILL)
        self._event(f"removed worker node 1 (killed {len(raylets)} raylet)")
        return bool(raylets)


def outputs(out: Path) -> dict[str, Any]:
    """Problem ids (with repeats), pair keys and attempts of a finished run's folder."""
    from sphere_ray.generation.store import OutputStore

    store = OutputStore(str(out))
    trees = store.read("trees").select(["problem_id", "attempts", "call_retries"]).to_pylist()
    pairs = store.read("pairs").select(["problem_id", "prompt", "chosen", "rejected"]).to_pylist()
    return {"ids": [t["problem_id"] for t in trees], "attempts": sum(t["attempts"] for t in trees),
            "call_retries": sum(t["call_retries"] or 0 for t in trees),
            "pairs": sorted((p["problem_id"], p["prompt"], p["chosen"], p["rejected"]) for p in pairs),
            "rejects": store.read("rejects").num_rows}  # fmt: skip


def drill(args: argparse.Namespace, work: Path, cluster: Any) -> dict[str, Any]:
    """The clean run, then the chaos run on the same problems; the comparison."""
    deploy(serve_config(args.replicas, True, args.compression))
    problems = write_problems(work / "chaos.jsonl", args.problems, seed=13)
    clean_out, chaos_out = work / "clean", work / "chaos"
    rc, clean_s = run_driver(driver_cmd(args, problems, clean_out), work / "clean.log", None, args.problems, clean_out)
    if rc != 0:
        raise RuntimeError(f"clean run failed ({rc}): {(work / 'clean.log').read_text()[-3000:]}")
    deploy(serve_config(args.replicas, True, args.compression))  # fresh replicas, as the clean run had
    rng = random.Random(args.seed)
    kills = sorted(rng.uniform(0.1, 0.9) for _ in range(args.driver_kills))
    chaos = Chaos(args.kill_every_s, cluster, args.seed, chaos_out, args.problems)
    chaos.start()
    runs, chaos_s = [], 0.0
    for kill_at in [*kills, None]:
        rc, seconds = run_driver(driver_cmd(args, problems, chaos_out), work / "chaos.log", kill_at, args.problems,
                                 chaos_out)  # fmt: skip
        chaos_s += seconds
        runs.append({"kill_at_done": kill_at, "return_code": rc, "seconds": round(seconds, 1),
                     "done_after": _done(chaos_out)})  # fmt: skip
        if kill_at is not None:
            chaos.events.append({"t": round(time.monotonic() - chaos.t0, 1), "done": _done(chaos_out),
                                 "event": f"SIGKILLed the driver at {kill_at:.0%} done"})  # fmt: skip
    chaos.stop_event.set()
    chaos.join(timeout=30)
    if runs[-1]["return_code"] != 0:
        raise RuntimeError(f"chaos run failed: {(work / 'chaos.log').read_text()[-3000:]}")
    clean, dirty = outputs(clean_out), outputs(chaos_out)
    expected = {json.loads(line)["id"] for line in problems.read_text().splitlines()}
    return {
        "problems": args.problems, "replicas": args.replicas, "compression": args.compression,
        "lost": len(expected - set(dirty["ids"])), "duplicated": len(dirty["ids"]) - len(set(dirty["ids"])),
        "same_problem_ids": sorted(clean["ids"]) == sorted(dirty["ids"]),
        "same_pairs": clean["pairs"] == dirty["pairs"],
        "pairs_clean": len(clean["pairs"]), "pairs_chaos": len(dirty["pairs"]),
        "pairs_only_in_one": len(set(clean["pairs"]) ^ set(dirty["pairs"])),
        "retries_clean": clean["attempts"] - len(clean["ids"]), "retries_chaos": dirty["attempts"] - len(dirty["ids"]),
        "call_retries_clean": clean["call_retries"], "call_retries_chaos": dirty["call_retries"],
        "rejects_clean": clean["rejects"], "rejects_chaos": dirty["rejects"], "driver_runs": runs,
        "faults": {"replicas_killed": sum("killed replica" in e["event"] for e in chaos.events),
                   "data_actors_killed": sum("Ray Data actor" in e["event"] for e in chaos.events),
                   "nodes_removed": sum("removed worker node" in e["event"] for e in chaos.events),
                   "driver_kills": args.driver_kills},
        "clean_wall_s": round(clean_s, 1), "chaos_wall_s": round(chaos_s, 1),
        "wall_overhead": round(chaos_s / clean_s, 3), "events": chaos.events,
    }  # fmt: skip


def write_report(result: dict[str, Any]) -> str:
    f, r = result["faults"], result
    lines = [
        "# Chaos drill (fake multi-node cluster, simulated engine)", "",
        f"{r['date']}; `python benchmarks/chaos.py`: the generation job on {r['problems']} simulated problems, "
        f"deployments/gpu.yaml on the sim engine ({result['replicas']} policy and PRM replicas, "
        f"{max(1, result['replicas'] // 2)} small policy; compression {result['compression']:g}), a clean run and "
        "a chaos run on the same problems and seeds.", "",
        f"Faults in the chaos run: {f['replicas_killed']} replicas killed (a random app's, every "
        f"~{r['kill_every_s']:g} s), "
        f"{f['data_actors_killed']} Ray Data search actor killed, {f['nodes_removed']} worker node removed, the "
        f"driver SIGKILLed {f['driver_kills']} times and rerun.", "",
        "| figure | value | target |", "|---|---|---|",
        f"| problems lost | {result['lost']} | 0 |", f"| problems duplicated | {result['duplicated']} | 0 |",
        f"| same problem ids as the clean run | {result['same_problem_ids']} | yes |",
        f"| same pairs as the clean run | {result['same_pairs']} ({result['pairs_chaos']} vs {result['pairs_clean']}; "
        f"{result['pairs_only_in_one']} in one run only) | yes |",
        f"| problem retries (attempts beyond the first) | {r['retries_chaos']} (clean: {r['retries_clean']}) | |",
        f"| model-call retries (of committed problems) | {r['call_retries_chaos']} (clean: {r['call_retries_clean']}) "
        "| |",
        f"| problem rejects (failed after retries) | {r['rejects_chaos']} (clean: {r['rejects_clean']}) | 0 |",
        f"| wall time | {result['chaos_wall_s']:.0f} s vs {result['clean_wall_s']:.0f} s clean "
        f"(x{result['wall_overhead']:.2f}) | |", "",
        "Driver runs of the chaos run:", "", "| run | killed at (done share) | exit | seconds | problems done after |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for i, r in enumerate(result["driver_runs"], 1):
        at = "-" if r["kill_at_done"] is None else f"{r['kill_at_done']:.0%}"
        lines.append(f"| {i} | {at} | {r['return_code']} | {r['seconds']} | {r['done_after']} |")
    lines += ["", "Events (seconds since the chaos run started, problems committed then):", ""]
    lines += [f"- {e['t']} s, {e['done']} done: {e['event']}" for e in result["events"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=2000)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=32, help="problems in flight per driver actor")
    parser.add_argument("--compression", type=float, default=50.0)
    parser.add_argument("--kill-every-s", type=float, default=20.0)
    parser.add_argument("--driver-kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--driver-state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.driver_state:
        on_fake_cluster(argparse.Namespace(replicas=[2 * args.replicas], workers=args.workers), __file__)
        from sphere_ray.files import write_text

        result = json.loads(RESULTS.read_text())
        write_text(RESULTS.with_suffix(".md"), write_report(result))
        print(RESULTS.with_suffix(".md").read_text())
        return
    import ray

    from sphere_ray.cluster import FakeClusterConfig, connect_ray
    from sphere_ray.files import write_json

    state = json.loads(Path(args.driver_state).read_text())
    connect_ray(state["address"], quiet=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = drill(args, Path(tmp), FakeClusterConfig(**state["config"]))
        write_json(RESULTS, {"date": time.strftime("%Y-%m-%d"), "kill_every_s": args.kill_every_s, **result})
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
