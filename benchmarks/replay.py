"""Replay a generation job's model calls without the job: its step requests and its PRM requests, read back
from the trees it wrote, on in-process engines (the generation benchmark's baselines).

The PRM replay runs in its own process on the PRM's cores (``python benchmarks/replay.py OUT_DIR LIMIT CPUS``):
it loads the engine, writes ``<OUT_DIR>/prm_ready``, waits for ``<OUT_DIR>/prm_go``, submits every PRM request
at once and writes ``<OUT_DIR>/prm_replay.json`` (candidates, seconds).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def trees(out_dir: str) -> Iterator[tuple[str, object]]:
    """(problem id, :class:`SearchTree`) for every tree the job wrote."""
    from sphere_ray.generation.store import OutputStore
    from sphere_ray.search.tree import Node, SearchTree

    for row in OutputStore(out_dir).read("trees").to_pylist():
        for t in json.loads(row["trees_json"]):
            nodes = [Node(**n) for n in t["nodes"]]
            yield row["problem_id"], SearchTree(kind=t["kind"], model=t["model"], prompt=t["prompt"], nodes=nodes)


def parents(tree) -> list[int | None]:
    """Every expanded node (``None``: the prompt), in expansion order."""
    return sorted({n.parent for n in tree.nodes}, key=lambda p: -1 if p is None else p)


def step_requests(out_dir: str, max_step_tokens: int) -> list:
    """Every step request the job made (same prompt, n, temperature, limits)."""
    from sphere_ray.serving.schema import GenerateRequest

    sampling = {"temperature": 0.8, "max_tokens": max_step_tokens, "stop": ["\n\n"]}
    return [
        GenerateRequest(prompts=[tree.prefix_prompt(p)], n=len(tree.children(p)), **sampling)
        for _, tree in trees(out_dir)
        for p in parents(tree)
    ]


def prm_requests(out_dir: str, limit: int) -> list:
    """Every PRM request the job made: one per expansion, the path's steps plus each candidate (last only),
    built by the search's own client conversion (:func:`~sphere_ray.serving.client.to_score_request`)."""
    from sphere_ray.problems import load_problems
    from sphere_ray.search.types import PrmRequest
    from sphere_ray.serving.client import to_score_request

    problems = {p.id: p for p in load_problems("gsm8k_train_sample", limit).problems}
    out = []
    for pid, tree in trees(out_dir):
        problem = problems[pid]
        for p in parents(tree):
            path = () if p is None else tuple(n.text for n in tree.path(p))
            calls = [PrmRequest(problem.problem, (*path, c.text), True, problem.answer) for c in tree.children(p)]
            out.append(to_score_request(calls, [c.answer for c in calls]))
    return out


def build_prm() -> object:
    """The PRM of ``deployments/prm.yaml``, in this process."""
    from sphere_ray.models.embedded import resolve_model
    from sphere_ray.serving.launch import load_serve_config
    from sphere_ray.serving.prm import build_prm as build

    (app,) = load_serve_config([ROOT / "deployments" / "prm.yaml"])["applications"]
    args = app["args"]
    return build(args["kind"], model=resolve_model(args["model"]), **args.get("options", {}))


def replay_prm(out_dir: str, limit: int, cpus: str) -> None:
    """The PRM replay process (see the module docstring)."""
    from common import KV_ENV, app_settings

    from sphere_ray.serving.cpus import pin_to_cpus

    kv = os.environ.get(KV_ENV)  # the job's KV cache size, set by generate.py's --kv-gib
    os.environ.update({**app_settings("prm.yaml")[0], **({KV_ENV: kv} if kv else {})})
    pin_to_cpus(cpus)
    requests = prm_requests(out_dir, limit)
    prm = build_prm()
    folder = Path(out_dir)

    async def run() -> float:
        await prm.score(requests[0])  # warm-up
        (folder / "prm_ready").touch()
        while not (folder / "prm_go").exists():
            await asyncio.sleep(0.05)
        start = time.perf_counter()
        await asyncio.gather(*(prm.score(r) for r in requests))
        return time.perf_counter() - start

    seconds = asyncio.run(run())
    candidates = sum(len(r.items) for r in requests)
    (folder / "prm_replay.json").write_text(json.dumps({"candidates": candidates, "seconds": seconds}))


if __name__ == "__main__":
    replay_prm(sys.argv[1], int(sys.argv[2]), sys.argv[3])
