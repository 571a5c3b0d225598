"""Serving throughput: Serve handle vs the same engine in process; vLLM-CPU vs transformers.

For each backend (vllm, transformers) and batch size (1, 8, 32), the same prompts (bundled GSM8K
problems in the solve template, SmolLM2-135M-Instruct's chat template) are generated greedily with
``max_tokens`` new tokens, first by the engine in this process, then through a Serve deployment
started from ``deployments/policy.yaml`` (backend overridden). Reported: generated tokens/s and
the ratio Serve/in-process. Results go to ``benchmarks/results/serving.{md,json}``.

    python benchmarks/serving.py [--max-tokens 128] [--reps 2]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import time
from pathlib import Path

from common import ENGINE_KWARGS, VLLM_ENV

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
BATCHES = (1, 8, 32)


def prompts(render, n: int) -> list[str]:
    from sphere_ray.problems import load_problems
    from sphere_ray.search.prompts import SOLVE_TEMPLATE

    problems = load_problems("gsm8k_train_sample", limit=n).problems
    return [render([{"role": "user", "content": SOLVE_TEMPLATE.format(problem=p.problem)}]) for p in problems]


async def timed(generate, texts: list[str], max_tokens: int, reps: int) -> float:
    """Best tokens/s over ``reps`` runs (after one warm-up) of one batched request."""
    from sphere_ray.serving.schema import GenerateRequest

    request = GenerateRequest(prompts=texts, n=1, temperature=0.0, max_tokens=max_tokens)
    await generate(GenerateRequest(prompts=texts[:1], n=1, temperature=0.0, max_tokens=8))
    best = 0.0
    for _ in range(reps):
        start = time.perf_counter()
        response = await generate(request)
        tokens = sum(s.num_tokens for ss in response.outputs for s in ss)
        best = max(best, tokens / (time.perf_counter() - start))
    return best


def in_process(backend: str, model: str, max_tokens: int, reps: int) -> dict[int, float]:
    from sphere_ray.serving.engines import build_engine

    kwargs = {"engine_kwargs": ENGINE_KWARGS} if backend == "vllm" else {}
    engine = build_engine(backend, model, "smollm2", **kwargs)
    texts = prompts(engine.render_chat, max(BATCHES))

    async def run() -> dict[int, float]:  # one event loop: vLLM's engine is bound to the loop it started on
        return {b: await timed(engine.generate, texts[:b], max_tokens, reps) for b in BATCHES}

    result = asyncio.run(run())
    if hasattr(engine, "shutdown"):
        engine.shutdown()
    gc.collect()
    return result


def through_serve(backend: str, model: str, max_tokens: int, reps: int) -> dict[int, float]:
    import ray
    from ray import serve

    from sphere_ray.cluster import connect_ray
    from sphere_ray.serving.launch import deploy

    connect_ray(num_cpus=4, quiet=True)
    try:
        overrides = {"policy": {"model": model, "backend": backend, "engine_kwargs": ENGINE_KWARGS}}
        handle = deploy([ROOT / "deployments" / "policy.yaml"], overrides)["policy"]

        async def generate(request):
            return await handle.generate.remote(request)

        async def render(messages):
            return await handle.render_chat.remote(messages)

        async def run() -> dict[int, float]:
            texts = [await render(m) for m in _messages(max(BATCHES))]
            return {b: await timed(generate, texts[:b], max_tokens, reps) for b in BATCHES}

        return asyncio.run(run())
    finally:
        serve.shutdown()
        ray.shutdown()


def _messages(n: int) -> list[list[dict[str, str]]]:
    from sphere_ray.problems import load_problems
    from sphere_ray.search.prompts import SOLVE_TEMPLATE

    problems = load_problems("gsm8k_train_sample", limit=n).problems
    return [[{"role": "user", "content": SOLVE_TEMPLATE.format(problem=p.problem)}] for p in problems]


def table(rows: list[dict]) -> str:
    lines = ["| backend | batch | in-process tok/s | Serve handle tok/s | Serve / in-process |"]
    lines.append("|---|---|---|---|---|")
    for r in rows:
        lines.append(f"| {r['backend']} | {r['batch']} | {r['in_process']:.1f} | {r['serve']:.1f} | {r['ratio']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--backends", default="vllm,transformers")
    args = parser.parse_args()
    os.environ.update(VLLM_ENV)
    from sphere_ray.models.embedded import ensure_smollm2

    model = str(ensure_smollm2())
    rows = []
    for backend in args.backends.split(","):
        local = in_process(backend, model, args.max_tokens, args.reps)
        served = through_serve(backend, model, args.max_tokens, args.reps)
        for b in BATCHES:
            rows.append({"backend": backend, "batch": b, "in_process": local[b], "serve": served[b],
                         "ratio": served[b] / local[b]})  # fmt: skip
            print(json.dumps(rows[-1]))
    served = {(r["backend"], r["batch"]): r["serve"] for r in rows}
    vllm_vs_hf = [
        f"| {b} | {served['vllm', b] / served['transformers', b]:.2f} |"
        for b in BATCHES
        if ("vllm", b) in served and ("transformers", b) in served
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    meta = (
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, SmolLM2-135M-Instruct fp32, "
        f"greedy, {args.max_tokens} new tokens, best of {args.reps}"
    )
    md = f"# Serving throughput\n\n{meta}\n\n{table(rows)}\n"
    if vllm_vs_hf:
        md += "\n| batch | vLLM / transformers (through Serve) |\n|---|---|\n" + "\n".join(vllm_vs_hf) + "\n"
    (OUT / "serving.md").write_text(md)
    (OUT / "serving.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(md)


if __name__ == "__main__":
    main()
