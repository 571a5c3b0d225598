"""Cluster scale on the fake multi-node GPU cluster with the simulated engine (P8).

Starts ``sphere-ray cluster up`` (a head plus 2 fake-GPU workers, :mod:`sphere_ray.cluster`), connects
as a driver and runs the real generation job (Ray Data over Serve) against ``deployments/gpu.yaml``
switched to the simulated engine (:mod:`sphere_ray.sim`: Qwen2.5-Math-7B policy, 1.5B small policy,
PRM-7B on A100). Parts (``--parts``; each merges its result into ``results/scale.json``):

* ``scaling``: N policy replicas (PRM at N, small policy at N/2) for each N of ``--replicas``, problems
  and problems in flight scaled with N; gpu.yaml's AffinityRouter with affinity on, and Serve's default
  router with affinity off at N > 1. Simulated time runs ``--compression / N`` times real time, so the
  request rate the 2 cores must carry is the same at every N (the measured CPU use is reported: a
  saturated CPU would shrink the replicas' batches and void the comparison).
* ``autoscale``: gpu.yaml's own autoscaling settings under a load that rises and falls; replicas over time.
* ``drill``: a policy replica killed, then a worker node removed (its raylet killed) mid-run.
* ``rss``: a long run's driver (``python -m jobs.generate``, a child process) RSS sampled over time.

Scaling efficiency at N = sim tokens/s at N / (N x sim tokens/s at 1), where sim tokens/s = policy
tokens / the busiest policy replica's simulated busy seconds (replicas work in parallel, so the busiest
one sets the makespan). Report: ``results/scale.{md,json,png}`` (``benchmarks/scale_report.py``).

    python benchmarks/scale.py [--parts scaling autoscale drill rss] [--replicas 1 8 32]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
SEARCH = {"num_candidates": 4, "max_depth": 8, "max_step_tokens": 64}
log = logging.getLogger("scale")


def serve_config(n: int | None, affinity: bool, compression: float) -> dict[str, Any]:
    """gpu.yaml on the sim engine; ``n``: fixed replicas (policy, PRM n; small policy n/2), None: its autoscaling."""
    from sphere_ray.serving.launch import load_serve_config

    config = load_serve_config([ROOT / "deployments" / "gpu.yaml"], sim={"compression": compression, "p_right": 0.5})
    for app in config["applications"]:
        dep = app["deployments"][0]
        if n is not None:
            k = max(1, n // 2) if app["name"] == "small_policy" else n
            dep["autoscaling_config"] = {**dep["autoscaling_config"], "min_replicas": k, "max_replicas": k}
        if not affinity:
            dep.pop("request_router_config", None)
    return config


def deploy(config: dict[str, Any]) -> None:
    """Replace the running apps by ``config``'s (fresh replicas: empty prefix caches, zeroed counters)."""
    from ray import serve

    from sphere_ray.serving.launch import deploy_config

    for name in [a for a in serve.status().applications if a]:
        serve.delete(name)
    deploy_config(config, timeout_s=1800)


def write_problems(path: Path, n: int, seed: int) -> Path:
    from sphere_ray.sim.text import sim_problems

    path.write_text("".join(json.dumps(p) + "\n" for p in sim_problems(n, seed=seed)))
    return path


def job_config(problems: Path, out: Path, in_flight: int, affinity: bool, **extra: Any) -> Any:
    """The generation job against the running apps; ``in_flight`` problems over up to 4 search actors."""
    from sphere_ray.generation.config import GenerateJobConfig

    actors = max(1, min(4, in_flight // 16))
    return GenerateJobConfig(
        problems=str(problems), output_dir=str(out), start_serve=False, num_actors=actors,
        problems_in_flight=math.ceil(in_flight / actors), actor_num_cpus=0.01, affinity=affinity,
        **{"commit_every": 256, "progress_every_s": 30.0, **SEARCH, **extra},
    )  # fmt: skip


def app_stats(app: str) -> list[dict[str, Any]]:
    """Every replica's ``stats()`` (sim seconds, tokens, prefix cache, sessions, node)."""
    from sphere_ray.serving.launch import replica_stats

    return list(replica_stats(app, max_calls=2000).values())


def measured(fn: Any) -> tuple[Any, dict[str, float]]:
    """Run ``fn()``; return its result and wall seconds, machine CPU seconds and mean CPU use (of all cores)."""
    cpu0, t0 = psutil.cpu_times(), time.monotonic()
    psutil.cpu_percent(None)
    result = fn()
    cpu1, wall = psutil.cpu_times(), time.monotonic() - t0
    busy = sum(getattr(cpu1, f) - getattr(cpu0, f) for f in ("user", "system", "nice", "irq", "softirq"))
    return result, {"wall_s": wall, "cpu_s": busy, "cpu_use": psutil.cpu_percent(None) / 100.0}


def summarize_run(n: int, affinity: bool, compression: float, summary: dict, cost: dict) -> dict[str, Any]:
    """One scaling row from the job summary and the replicas' counters."""
    pol, prm, small = app_stats("policy"), app_stats("prm"), app_stats("small_policy")
    prompt, cached = sum(s["prompt_tokens"] for s in pol), sum(s["cached_prompt_tokens"] for s in pol)
    tokens = [s["generated_tokens"] for s in pol]
    busiest = max(s["sim_seconds"] for s in pol)
    requests = 2 * sum(s["requests"] for s in pol + small)  # each expansion: one policy call, one PRM call
    return {
        "replicas": n, "affinity": affinity, "compression": compression, "problems": summary["problems_done"],
        "outcomes": summary.get("outcomes"), "policy_replicas_seen": len(pol), "prm_replicas_seen": len(prm),
        "policy_hit_rate": cached / prompt if prompt else 0.0,
        "policy_sessions": sum(s["sessions"] for s in pol), "prm_sessions": sum(s["sessions"] for s in prm),
        "policy_tokens": sum(tokens), "token_imbalance": max(tokens) / (sum(tokens) / len(tokens)),
        "sim_tokens_per_s": sum(tokens) / busiest if busiest else 0.0,
        "busy_tokens_per_s": sum(tokens) / sum(s["sim_seconds"] for s in pol) * len(pol),  # without the imbalance
        "mean_batch_requests": sum(s["mean_requests_when_busy"] for s in pol) / len(pol),
        "policy_nodes": sorted({s["node_id"][:8] for s in pol}), "model_requests": requests,
        "cpu_ms_per_request": 1000 * cost["cpu_s"] / requests if requests else None, **cost,
    }  # fmt: skip


def part_scaling(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Efficiency and prefix-cache hit rate at each N, affinity on and (N > 1) the default router."""
    from sphere_ray.generation.job import run_generate_job

    runs = []
    for n in args.replicas:
        for affinity in [a for a in (True, False) if a or n > 1 if ("affinity" if a else "default") in args.routers]:
            compression = args.compression / n
            deploy(serve_config(n, affinity, compression))
            problems = write_problems(work / f"s{n}.jsonl", args.problems_per_replica * n, seed=5)
            cfg = job_config(problems, work / f"scale-{n}-{affinity}", args.in_flight_per_replica * n, affinity)
            summary, cost = measured(lambda cfg=cfg: run_generate_job(cfg))
            runs.append(summarize_run(n, affinity, compression, summary, cost))
            if affinity:
                runs[-1]["router"] = "AffinityRouter"
            log.info("scaling %s", json.dumps(runs[-1]))
    new = {(r["replicas"], r["affinity"]) for r in runs}  # runs of an earlier call (other N) are kept
    runs = sorted([r for r in args.previous.get("runs", []) if (r["replicas"], r["affinity"]) not in new] + runs,
                  key=lambda r: (r["replicas"], not r["affinity"]))  # fmt: skip
    one = next(r for r in runs if r["replicas"] == 1)
    for r in runs:
        r["efficiency"] = r["sim_tokens_per_s"] / (r["replicas"] * one["sim_tokens_per_s"])
        r["hit_rate_ratio"] = r["policy_hit_rate"] / one["policy_hit_rate"] if one["policy_hit_rate"] else None
    return {"runs": runs, "problems_per_replica": args.problems_per_replica, **SEARCH,
            "in_flight_per_replica": args.in_flight_per_replica, "compression_at_1": args.compression}  # fmt: skip


class ReplicaRecorder(threading.Thread):
    """Samples every app's replica states (``serve.status()``) every ``every_s`` seconds."""

    def __init__(self, every_s: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.every_s, self.samples, self.t0 = every_s, [], time.monotonic()
        self._stop_event = threading.Event()

    def run(self) -> None:
        from ray import serve

        while not self._stop_event.is_set():
            try:
                apps = serve.status().applications
                row = {name: {s: n for d in a.deployments.values() for s, n in d.replica_states.items()}
                       for name, a in apps.items()}  # fmt: skip
                self.samples.append({"t": round(time.monotonic() - self.t0, 1), "apps": row})
            except Exception as e:  # a controller hiccup under load: skip one sample
                log.warning("serve.status failed: %s", e)
            self._stop_event.wait(self.every_s)

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)


def running(sample: dict, app: str) -> int:
    return sample["apps"].get(app, {}).get("RUNNING", 0)


def part_autoscale(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """gpu.yaml's autoscaling (1..8) under a job whose load rises (ramp-up) and falls (its end), then idle."""
    from sphere_ray.generation.job import run_generate_job

    config = serve_config(None, True, args.autoscale_compression)
    for app in config["applications"]:  # the one setting changed: a 300 s downscale wait is long for a benchmark
        app["deployments"][0]["autoscaling_config"]["downscale_delay_s"] = args.autoscale_downscale_delay_s
    autoscaling = {a["name"]: a["deployments"][0]["autoscaling_config"] for a in config["applications"]}
    deploy(config)
    recorder = ReplicaRecorder()
    recorder.start()
    problems = write_problems(work / "auto.jsonl", args.autoscale_problems, seed=7)
    cfg = job_config(problems, work / "auto", args.autoscale_in_flight, True, ramp_up_s=args.autoscale_ramp_s)
    start = recorder.now()
    summary, cost = measured(lambda: run_generate_job(cfg))
    end = recorder.now()
    idle_until = time.monotonic() + args.autoscale_idle_s
    while time.monotonic() < idle_until:
        if recorder.samples and all(running(recorder.samples[-1], a) == autoscaling[a]["min_replicas"]
                                    for a in autoscaling) and recorder.now() > end + 10:  # fmt: skip
            break
        time.sleep(2)
    recorder.stop()
    return {"autoscaling": autoscaling, "job_start_s": start, "job_end_s": end, "problems": summary["problems_done"],
            "in_flight": args.autoscale_in_flight, "ramp_up_s": args.autoscale_ramp_s,
            "compression": args.autoscale_compression, "samples": recorder.samples,
            "reactions": reactions(recorder.samples, autoscaling, start, end), **cost}  # fmt: skip


def reactions(samples: list[dict], autoscaling: dict, start: float, end: float) -> dict[str, dict]:
    """Per app: seconds from job start to the first upscale and to the peak, from job end back to min."""
    out = {}
    for app, auto in autoscaling.items():
        lo = auto["min_replicas"]
        counts = [(s["t"], running(s, app)) for s in samples]
        peak = max(c for _, c in counts)
        first_up = next((t for t, c in counts if t >= start and c > lo), None)
        at_peak = next((t for t, c in counts if t >= start and c == peak), None)
        back = next((t for t, c in counts if t >= end and c == lo), None)
        out[app] = {"min": lo, "max": auto["max_replicas"], "peak_running": peak,
                    "first_upscale_after_start_s": None if first_up is None else round(first_up - start, 1),
                    "peak_after_start_s": None if at_peak is None else round(at_peak - start, 1),
                    "back_to_min_after_end_s": None if back is None else round(back - end, 1)}  # fmt: skip
    return out


def part_drill(args: argparse.Namespace, work: Path, cluster: Any) -> dict[str, Any]:
    """Kill a policy replica at 30% of the problems, remove worker node 1 at 60%; check exactly-once."""
    from sphere_ray.generation.job import run_generate_job
    from sphere_ray.generation.store import OutputStore

    n, total = 4, args.drill_problems
    deploy(serve_config(n, True, args.drill_compression))
    problems = write_problems(work / "drill.jsonl", total, seed=9)
    out = work / "drill"
    cfg = job_config(problems, out, args.in_flight_per_replica * n, True, commit_every=16, commit_every_s=5.0)
    events: list[dict] = []
    recorder = ReplicaRecorder()
    recorder.start()
    chaos = threading.Thread(target=_chaos, args=(out, total, cluster, events, recorder), daemon=True)
    chaos.start()
    summary, cost = measured(lambda: run_generate_job(cfg))
    chaos.join(timeout=5)
    recorder.stop()
    ids = OutputStore(str(out)).read("trees").column("problem_id").to_pylist()
    expected = [json.loads(line)["id"] for line in problems.read_text().splitlines()]
    return {"replicas": n, "problems": total, "events": events, "trees": len(ids), "distinct": len(set(ids)),
            "lost": len(set(expected) - set(ids)), "duplicated": len(ids) - len(set(ids)),
            "summary_problems_done": summary["problems_done"], "outcomes": summary.get("outcomes"),
            "samples": recorder.samples, **cost}  # fmt: skip


def _done(out: Path) -> int:
    from sphere_ray.generation.store import OutputStore

    try:
        return OutputStore(str(out)).read("trees").num_rows
    except Exception:  # nothing committed yet
        return 0


def _chaos(out: Path, total: int, cluster: Any, events: list[dict], recorder: ReplicaRecorder) -> None:
    import ray
    from ray.util.state import list_actors

    while _done(out) < 0.3 * total:
        time.sleep(1)
    address = ray.get_runtime_context().gcs_address  # another Ray on the machine makes "auto" ambiguous
    actor = next(a for a in list_actors(address=address, filters=[("state", "=", "ALIVE")], limit=10000)
                 if a.class_name.startswith("ServeReplica:policy:"))  # fmt: skip
    ray.kill(ray.get_actor(actor.name, namespace="serve"), no_restart=True)
    events.append({"t": recorder.now(), "done": _done(out), "event": f"killed policy replica {actor.name}"})
    while _done(out) < 0.6 * total:
        time.sleep(1)
    raylets = [p for p in _cluster_procs(cluster) if "raylet" in p.name() and "fake_node_1" in " ".join(p.cmdline())]
    for proc in raylets:
        proc.send_signal(signal.SIGKILL)
    events.append({"t": recorder.now(), "done": _done(out), "event": f"killed worker node 1's raylet ({len(raylets)})"})


def _cluster_procs(cluster: Any) -> list[psutil.Process]:
    from sphere_ray.cluster import _cluster_procs as procs

    return procs(cluster.temp_dir, cluster.port)


SIM_MODELS = ["--policy_model", "Qwen/Qwen2.5-Math-7B-Instruct", "--small_policy_model",
              "Qwen/Qwen2.5-Math-1.5B-Instruct", "--prm_model", "Qwen/Qwen2.5-Math-PRM-7B"]  # fmt: skip


def part_rss(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """A long run's driver: ``python -m jobs.generate`` as a child; its RSS every 5 s.

    ``--rss-models serve``: over 4 sim replicas per app; ``inprocess``: each search actor simulates the
    models itself (no Serve round trips, so 100k problems fit in this machine's time; the driver's side,
    input streaming, Ray Data and commits, is the same).
    """
    import ray

    n = 4 if args.rss_models == "serve" else 0
    if n:
        deploy(serve_config(n, True, args.rss_compression))
    models = (
        ["--start_serve", "false"]
        if n
        else ["--models", "inprocess", "--sim", json.dumps({"compression": args.rss_compression}), *SIM_MODELS]
    )
    problems = write_problems(work / "rss.jsonl", args.rss_problems, seed=11)
    out = work / "rss"
    # serve: the 2026-12-05 run's shallow search; inprocess: deep enough that stages 1-3 fire and pairs are written
    depth, tokens = (2, 16) if n else (4, 32)
    address = ray.get_runtime_context().gcs_address  # with none, the child's ray.init would start a new cluster
    cmd = [sys.executable, "-m", "jobs.generate", "--problems", str(problems), "--output_dir", str(out),
           "--ray_address", address, *models, "--num_actors", "2", "--problems_in_flight", "64",
           "--actor_num_cpus", "0.01",
           "--num_candidates", "2", "--max_depth", str(depth), "--max_step_tokens", str(tokens),
           "--commit_every", "1024", "--progress_every_s", "60"]  # fmt: skip
    samples, t0 = [], time.monotonic()
    cpu0 = psutil.cpu_times()
    with open(work / "rss.log", "w") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                samples.append({"t": round(time.monotonic() - t0, 1), "rss_mib": ps.memory_info().rss / 2**20,
                                "done": _done(out)})  # fmt: skip
            except psutil.NoSuchProcess:
                break
            time.sleep(5)
    cpu1 = psutil.cpu_times()
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    if proc.returncode != 0:
        raise RuntimeError(f"rss run failed ({proc.returncode}): {(work / 'rss.log').read_text()[-3000:]}")
    cpu_s = sum(getattr(cpu1, f) - getattr(cpu0, f) for f in ("user", "system", "nice"))
    trees = _tree_ids(out)
    return {"problems": args.rss_problems, "problems_done": summary.get("problems_done"), "replicas": n,
            "models": args.rss_models, "lost": args.rss_problems - len(set(trees)),
            "duplicated": len(trees) - len(set(trees)),
            "wall_s": time.monotonic() - t0, "cpu_s": cpu_s, "samples": samples,
            "peak_rss_mib": max(s["rss_mib"] for s in samples), "search": f"E=2, depth {depth}, {tokens} tokens/step",
            "pairs": summary.get("pairs"), "outcomes": summary.get("outcomes")}  # fmt: skip


def _tree_ids(out: Path) -> list[str]:
    from sphere_ray.generation.store import OutputStore

    return OutputStore(str(out)).read("trees").column("problem_id").to_pylist()


def part_target(args: argparse.Namespace) -> dict[str, Any]:
    """One sim policy replica (no Ray) at c concurrent step requests: throughput and latency vs c.

    Each client repeats a tree-search step: a prompt that grows by one step per call (a 600-token problem
    plus earlier steps, so later calls hit the prefix cache), ``num_candidates`` samples of
    ``max_step_tokens`` (recipes/generate_gpu.yaml's). The autoscaling target is the smallest c that
    reaches 90% of the best throughput.
    """
    import asyncio

    from sphere_ray.sim.calibration import step_model
    from sphere_ray.sim.engine import SimOptions, SimScheduler

    recipe = yaml.safe_load((ROOT / "recipes" / "generate_gpu.yaml").read_text())
    e, step, depth = recipe["num_candidates"], recipe["max_step_tokens"], 8

    async def load(c: int) -> dict[str, float]:
        options = SimOptions(compression=1e6)
        sched = SimScheduler(step_model("Qwen/Qwen2.5-Math-7B-Instruct"), options)
        latencies: list[float] = []
        gate = asyncio.Semaphore(c)  # c requests in flight at the replica

        async def client(i: int) -> None:
            prompt = f"problem {i} " + "x" * 2400
            for _ in range(depth):
                async with gate:
                    t0 = sched.sim_seconds
                    await sched.run(prompt, [step] * e)
                    latencies.append(sched.sim_seconds - t0)
                prompt += "\n\n" + "y" * 4 * step

        await asyncio.gather(*(client(i) for i in range(c * 4)))  # 4 trees per slot
        tokens = c * 4 * depth * e * step
        return {"c": c, "tokens_per_s": tokens / sched.sim_seconds, "mean_latency_s": sum(latencies) / len(latencies)}

    rows = []
    for c in (1, 2, 4, 8, 16, 32, 48, 64, 96, 128):
        rows.append(asyncio.run(load(c)))
    best = max(r["tokens_per_s"] for r in rows)
    target = next(r["c"] for r in rows if r["tokens_per_s"] >= 0.9 * best)
    return {"rows": rows, "target_ongoing_requests": target, "num_candidates": e, "max_step_tokens": step}


def cluster_config(args: argparse.Namespace) -> Any:
    from sphere_ray.cluster import FakeClusterConfig, _free_port

    gpus = math.ceil(2.5 * max([*args.replicas, 8]) / args.workers)  # policy + PRM + small policy (N/2)
    return FakeClusterConfig(workers=args.workers, gpus_per_worker=gpus, cpus_per_worker=4 * gpus + 4, head_cpus=8,
                             port=_free_port(), dashboard_port=_free_port(), serve_port=_free_port(),
                             object_store_mib=512, timeout_s=600)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["target", "scaling", "autoscale", "drill", "rss"])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--routers", nargs="+", choices=["affinity", "default"], default=["affinity", "default"],
                        help="scaling: gpu.yaml's router with affinity, and/or Serve's default router")  # fmt: skip
    parser.add_argument("--problems-per-replica", type=int, default=32)
    parser.add_argument("--in-flight-per-replica", type=int, default=16)
    parser.add_argument("--compression", type=float, default=4.0, help="sim compression at 1 replica (/N at N)")
    parser.add_argument("--autoscale-problems", type=int, default=1500)
    parser.add_argument("--autoscale-in-flight", type=int, default=384)
    parser.add_argument("--autoscale-ramp-s", type=float, default=60.0)
    parser.add_argument("--autoscale-compression", type=float, default=0.5)
    parser.add_argument("--autoscale-idle-s", type=float, default=300.0)
    parser.add_argument("--autoscale-downscale-delay-s", type=float, default=60.0)
    parser.add_argument("--drill-problems", type=int, default=400)
    parser.add_argument("--drill-compression", type=float, default=1.0)
    parser.add_argument("--rss-problems", type=int, default=100_000)
    parser.add_argument("--rss-compression", type=float, default=1e4)
    parser.add_argument("--rss-models", choices=["inprocess", "serve"], default="inprocess")
    parser.add_argument("--driver-state", help=argparse.SUPPRESS)  # internal: run the parts as the cluster's driver
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if "target" in args.parts and not args.driver_state:
        results["target"] = {"date": time.strftime("%Y-%m-%d"), **part_target(args)}
        RESULTS.write_text(json.dumps(results, indent=1))
    parts = [p for p in args.parts if p != "target"]
    if args.driver_state:
        return drive(args, parts, results)
    if parts:
        on_fake_cluster(args, __file__)
        results.update(json.loads(RESULTS.read_text()))
    from scale_report import write_report

    print(write_report(results))


def on_fake_cluster(args: argparse.Namespace, script: str) -> None:
    """Bring the fake cluster up, run ``script`` (with ``--driver-state``) as its driver process, bring it down.

    The driver is a child process started with the cluster's token in its environment: Ray reads
    ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN_PATH`` once per process, before this one could set them.
    """
    from sphere_ray.cluster import cluster_env, down, up

    cluster = cluster_config(args)
    state = up(cluster)
    log.info("fake cluster up: %s", json.dumps(state["nodes"]))
    env = {k: v for k, v in {**os.environ, **cluster_env(state)}.items() if k != "RAY_ADDRESS"}
    try:
        cmd = [sys.executable, script, "--driver-state", str(Path(state["temp_dir"]) / "cluster.json"), *sys.argv[1:]]
        subprocess.run(cmd, env=env, check=True)
    finally:
        down(cluster)


def drive(args: argparse.Namespace, parts: list[str], results: dict[str, Any]) -> None:
    """(The driver process) connect to the running fake cluster and run ``parts``, saving after each."""
    import ray

    from sphere_ray.cluster import FakeClusterConfig, connect_ray

    state = json.loads(Path(args.driver_state).read_text())
    cluster = FakeClusterConfig(**state["config"])
    connect_ray(state["address"], quiet=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for part in parts:
                args.previous = results.get(part, {})
                fn = {"scaling": part_scaling, "autoscale": part_autoscale, "rss": part_rss}.get(part)
                result = part_drill(args, Path(tmp), cluster) if part == "drill" else fn(args, Path(tmp))
                key = "rss_serve" if part == "rss" and args.rss_models == "serve" else part
                results[key] = {"date": time.strftime("%Y-%m-%d"), "nodes": state["nodes"], **result}
                RESULTS.write_text(json.dumps(results, indent=1))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
