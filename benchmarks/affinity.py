"""Problem affinity on the simulated engine: prefix-cache hit rate and simulated throughput vs replicas.

Runs the real generation job (Ray Data over Serve, one local Ray node) on simulated problems with the
policy and the PRM on the sim engine (Qwen2.5-Math-7B / PRM-7B on A100, ``sphere_ray.sim``), for:

* 1 replica each (the single-replica hit rate);
* N replicas each, routed by sphere_ray.serving.router.AffinityRouter with the job's affinity on;
* N replicas each, Serve's default router (power of two choices), affinity off.

Problems in flight scale with N. Reports per run the policy's prefix-cache hit rate (cached / prompt
tokens over all replicas), the distinct sessions summed over replicas (= problems under affinity),
and simulated policy tokens/s (generated tokens / the busiest replica's simulated seconds).
This is a one-node rehearsal; the multi-node fake cluster of P8 is not built yet.

Results: ``benchmarks/results/affinity.{md,json}``.

    python benchmarks/affinity.py [--problems 160] [--replicas 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from sphere_ray.files import write_json, write_text
from sphere_ray.sim.text import sim_problems

ROUTER = {"request_router_class": "sphere_ray.serving.router.AffinityRouter"}
OUT = Path(__file__).resolve().parent / "results"


def serve_config(replicas: int, affinity: bool, compression: float) -> dict:
    def app(name: str, builder: str, args: dict, deployment: str, n: int) -> dict:
        dep = {"name": deployment, "max_ongoing_requests": 512, "ray_actor_options": {"num_cpus": 0.01},
               "autoscaling_config": {"min_replicas": n, "max_replicas": n}}  # fmt: skip
        if affinity:
            dep["request_router_config"] = ROUTER
        return {"name": name, "route_prefix": f"/{name}", "import_path": f"sphere_ray.serving.apps:{builder}",
                "args": args, "deployments": [dep]}  # fmt: skip

    sim = {"compression": compression, "p_right": 0.5}
    return {"applications": [
        app("policy", "generation_app", {"model": "Qwen/Qwen2.5-Math-7B-Instruct", "backend": "sim", "sim": sim},
            "GenerationServer", replicas),
        app("prm", "prm_app", {"kind": "sim", "model": "Qwen/Qwen2.5-Math-PRM-7B",
                               "options": {"compression": compression}}, "PRMServer", replicas),
    ]}  # fmt: skip


def run(problems: int, replicas: int, affinity: bool, compression: float, work: Path) -> dict:
    from ray import serve

    from sphere_ray.generation.config import GenerateJobConfig
    from sphere_ray.generation.job import run_generate_job
    from sphere_ray.serving.launch import deploy_config, replica_stats

    for name in ("policy", "prm"):  # fresh replicas (empty caches) per run
        try:
            serve.delete(name)
        except Exception:  # no Serve instance yet
            pass
    deploy_config(serve_config(replicas, affinity, compression), timeout_s=300)
    path = work / f"p{problems}.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in sim_problems(problems, seed=5)))
    cfg = GenerateJobConfig(problems=str(path), output_dir=str(work / f"out-{replicas}-{affinity}"), start_serve=False,
                            policy_app="policy", prm_app="prm", small_policy_app=None, num_candidates=4, max_depth=8,
                            max_step_tokens=64, problems_in_flight=16 * replicas, commit_every=100, affinity=affinity,
                            num_actors=1, actor_num_cpus=0.01)  # fmt: skip
    start = time.monotonic()
    summary = run_generate_job(cfg)
    wall = time.monotonic() - start
    pol = replica_stats("policy")
    prm = replica_stats("prm")
    prompt = sum(s["prompt_tokens"] for s in pol.values())
    cached = sum(s["cached_prompt_tokens"] for s in pol.values())
    tokens = sum(s["generated_tokens"] for s in pol.values())
    busiest = max(s["sim_seconds"] for s in pol.values())
    return {"replicas": replicas, "affinity": affinity, "problems": problems, "problems_done": summary["problems_done"],
            "replicas_seen": len(pol), "policy_hit_rate": cached / prompt if prompt else 0.0,
            "policy_sessions": sum(s["sessions"] for s in pol.values()),
            "prm_sessions": sum(s["sessions"] for s in prm.values()), "policy_tokens": tokens,
            "sim_tokens_per_s": tokens / busiest if busiest else 0.0, "wall_s": wall}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=160)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--compression", type=float, default=1000.0)
    args = parser.parse_args()

    from sphere_ray.cluster import connect_ray

    connect_ray(num_cpus=8, quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run(max(args.problems // args.replicas, 8), 1, True, args.compression, Path(tmp)),
                run(args.problems, args.replicas, True, args.compression, Path(tmp)),
                run(args.problems, args.replicas, False, args.compression, Path(tmp))]  # fmt: skip
    one = runs[0]
    lines = ["| replicas | router / affinity | problems | policy prefix-cache hit rate | ratio to 1 replica | "
             "distinct sessions summed over policy / PRM replicas | sim policy tok/s | per replica vs 1 | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in runs:
        mode = f"{r.get('router', 'ConsistentHash')}, on" if r["affinity"] else "default (pow-2), off"
        hit_ratio = r["policy_hit_rate"] / one["policy_hit_rate"]
        scaling = r["sim_tokens_per_s"] / (r["replicas"] * one["sim_tokens_per_s"])
        lines.append(f"| {r['replicas']} | {mode} | {r['problems']} | {r['policy_hit_rate']:.3f} | {hit_ratio:.3f} | "
                     f"{r['policy_sessions']} / {r['prm_sessions']} | {r['sim_tokens_per_s']:.0f} | {scaling:.3f} | "
                     f"{r['wall_s']:.0f} |")  # fmt: skip
    md = (f"# Problem affinity on the simulated engine\n\n{time.strftime('%Y-%m-%d')}. `python benchmarks/affinity.py "
          f"--problems {args.problems} --replicas {args.replicas}` (one local Ray node, 2 CPU cores; sim "
          f"compression {args.compression:g}; Qwen2.5-Math-7B + PRM-7B on A100, calibration in "
          "`sphere_ray/sim/calibration.py`). Problems in flight: 16 per replica.\n\n" + "\n".join(lines) + "\n\n"
          "Under affinity the distinct sessions summed over replicas equal the problems: every problem's calls "
          "went to one replica of each model. Sim tokens/s: policy tokens / the busiest replica's simulated "
          "seconds (the replicas work in parallel).\n")  # fmt: skip
    write_text(OUT / "affinity.md", md)
    write_json(OUT / "affinity.json", {"runs": runs})
    print(md)


if __name__ == "__main__":
    main()
