"""The generation job: problems -> SPHERE search fanned out with Ray Data over Serve -> Parquet.

Driver: stage the problems not yet done in ``output_dir`` (resume) as a Parquet queue in one lazy pass
(:mod:`~sphere_ray.generation.queue`), optionally deploy the Serve apps from their YAML, stream the
queue through a Ray Data actor pool
(:class:`~sphere_ray.generation.worker.ProblemWorker`), and commit results every ``commit_every``
problems (:class:`~sphere_ray.generation.store.OutputStore`). Live progress goes to the log and to Ray
metrics; a summary is written at the end.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from sphere_ray.cluster import connect_ray
from sphere_ray.config import config_hash
from sphere_ray.generation.config import GenerateJobConfig, ProblemJobOptions
from sphere_ray.generation.lineage import manifest
from sphere_ray.generation.progress import SearchProgress, StepBoard
from sphere_ray.generation.queue import Queue, stage_problems
from sphere_ray.generation.store import GENERATION, Batch, Layout, OutputStore
from sphere_ray.generation.worker import ProblemBatchWorker, ProblemWorker

__all__ = [
    "commit_results",
    "deploy_apps",
    "failure_reject",
    "map_queue",
    "open_run",
    "retrying_args",
    "run_generate_job",
]  # fmt: skip

log = logging.getLogger(__name__)


def run_generate_job(cfg: GenerateJobConfig) -> dict[str, Any]:
    """Run the job on the connected (or a new local) Ray cluster; return the summary."""
    start = time.monotonic()
    store, queue = open_run(cfg, GENERATION)
    progress = SearchProgress(queue.todo, cfg.progress_every_s)
    if queue.todo:
        _stream(cfg, queue, store, progress)
    summary = summarize(store, queue.problems, time.monotonic() - start, progress)
    store.write_json("summary.json", summary)
    return summary


def open_run(cfg: ProblemJobOptions, layout: Layout) -> tuple[OutputStore, Queue]:
    """Start a per-problem job; return its store and queue.

    Connects to Ray, opens ``output_dir`` (resume), stages the queue, writes the manifest, and deploys the
    Serve apps when ``start_serve`` and problems remain (the rerun of a finished run deploys nothing).
    """
    connect_ray(cfg.ray_address, log_to_driver=cfg.ray_log_to_driver)
    info = manifest(cfg)
    store = OutputStore(cfg.output_dir, metadata={"manifest": info}, layout=layout)
    queue = stage_problems(cfg.problems, cfg.limit, store.recover(), store, cfg.queue_part_rows)
    store.write_json("manifest.json", info)
    if cfg.start_serve and queue.todo:
        deploy_apps(cfg)
    return store, queue


def deploy_apps(cfg: ProblemJobOptions) -> None:
    """Deploy the job's Serve apps (``serve_configs`` with ``serve_overrides``, on ``sim`` when set)."""
    from sphere_ray.serving.launch import deploy

    deploy(cfg.serve_configs, cfg.serve_overrides, timeout_s=cfg.serve_timeout_s, sim=cfg.sim)


def retrying_args(cfg: ProblemJobOptions) -> dict[str, Any]:
    """The :class:`~sphere_ray.generation.worker.RetryingWorker` arguments of a job config."""
    return {"problem_retries": cfg.problem_retries, "retry_delay_s": cfg.problem_retry_delay_s,
            "problems_in_flight": cfg.problems_in_flight, "ramp_up_s": cfg.ramp_up_s}  # fmt: skip


def map_queue(
    cfg: ProblemJobOptions, queue: Queue, store: OutputStore, workers: tuple[type, type], worker_args: dict[str, Any]
) -> Any:
    """The queue mapped through an actor pool, as a Ray Data dataset of the workers' result rows.

    ``workers`` = (row worker, block worker): a small queue is read into one in-memory block per problem
    (finest load balance over actors) for the row worker; a large one is streamed: one block per Parquet
    queue part, holding only the part's path, which the block worker reads and works with its rows
    concurrently. (Not ``read_parquet``: Ray 2.60 reads small files into one block whatever
    ``override_num_blocks`` says, which put a whole queue on one actor with nothing back until its end.)
    The driver holds the part paths, never the rows; the actor's ``problems_in_flight`` bound holds
    either way.
    """
    import ray

    row_worker, block_worker = workers
    if queue.todo <= cfg.stream_above:
        rows = store.read_queue().to_pylist()
        ds, worker, blocks = (
            ray.data.from_items(rows, override_num_blocks=len(rows)),
            row_worker,
            cfg.problems_in_flight,
        )
    else:
        parts = [{"uri": cfg.output_dir, "part": part} for part in queue.parts]
        ds = ray.data.from_items(parts, override_num_blocks=len(parts))
        worker, blocks = block_worker, -(-cfg.problems_in_flight // cfg.queue_part_rows) + 1
    compute = ray.data.ActorPoolStrategy(
        size=cfg.num_actors, max_tasks_in_flight_per_actor=blocks, max_concurrent_calls_per_actor=blocks
    )
    # Ray Data restarts a dead actor and retries its rows (max_restarts/max_task_retries default to -1).
    kwargs = {"fn_constructor_kwargs": worker_args, "compute": compute, "num_cpus": cfg.actor_num_cpus}
    if worker is row_worker:
        return ds.map(worker, **kwargs)
    return ds.map_batches(worker, batch_size=None, batch_format="pyarrow", **kwargs)


def commit_results(
    cfg: ProblemJobOptions, results: Any, store: OutputStore, on_row: Callable[[dict, dict, Batch], None]
) -> None:
    """Commit the result rows of :func:`map_queue` every ``commit_every`` problems or ``commit_every_s``.

    ``on_row(row, payload, batch)`` adds one result (its payload parsed once) to the batch being built.
    """
    batch, last_commit = Batch(), time.monotonic()
    for row in results.iter_rows():
        on_row(row, json.loads(row["payload"]), batch)
        if batch.problems(store.layout) >= cfg.commit_every or time.monotonic() - last_commit > cfg.commit_every_s:
            store.commit(batch)
            batch, last_commit = Batch(), time.monotonic()
    if batch.problems(store.layout):
        store.commit(batch)


def _stream(cfg: GenerateJobConfig, queue: Queue, store: OutputStore, progress: SearchProgress) -> None:
    import ray

    apps = {"policy": cfg.policy_app, "prm": cfg.prm_app, "small_policy": cfg.small_policy_app or None}
    progress.board = ray.remote(num_cpus=0)(StepBoard).remote()  # dies with this driver
    worker_args = {
        "apps": apps, "params": dataclasses.asdict(cfg.sphere_params()), "config_hash": config_hash(cfg),
        "call_timeout_s": cfg.call_timeout_s, "call_retries": cfg.call_retries, "affinity": cfg.affinity,
        "step_board": progress.board, "inprocess": cfg.inprocess_models(), **retrying_args(cfg),
    }  # fmt: skip
    results = map_queue(cfg, queue, store, (ProblemWorker, ProblemBatchWorker), worker_args)

    def on_row(row: dict[str, Any], payload: dict[str, Any], batch: Batch) -> None:
        _collect(row, payload, batch)
        progress.update(row, payload)

    progress.start_heartbeat()
    try:
        commit_results(cfg, results, store, on_row)
    finally:
        progress.stop()
        ray.kill(progress.board)


def _collect(row: dict[str, Any], payload: dict[str, Any], batch: Batch) -> None:
    if row["ok"]:
        batch["trees"].append(payload["tree"])
        batch["pairs"].extend(payload["pairs"])
    else:
        batch["rejects"].append(failure_reject(row, payload, "search"))


def failure_reject(row: dict[str, Any], payload: dict[str, Any], what: str) -> dict[str, Any]:
    """The ``rejects`` row of a problem whose every attempt failed (``payload``: its input row)."""
    return {
        "problem_id": row["problem_id"],
        "source": payload.get("source") or "",
        "row": None,
        "reason": f"{what} failed after {row['attempts']} attempts: {row['error']}",
        "raw": row["payload"][:2000],
    }


def summarize(store: OutputStore, num_problems: int, seconds: float, progress: SearchProgress) -> dict[str, Any]:
    """Totals over everything committed in the folder (all runs), plus this run's rate.

    Counted with Arrow over the few columns it needs, so a folder of 100k trees costs the driver tens of
    MiB here, not a Python dict per row.
    """
    import pyarrow.compute as pc

    pairs = store.read("pairs", ["stage", "level"])
    timings = ["seconds", "policy_seconds", "prm_seconds"]
    trees = store.read("trees", ["outcome", "generated_tokens", "prm_calls", "attempts", "call_retries", *timings])
    rejects = store.read("rejects", ["reason"]).column("reason").to_pylist()

    def total(column: str) -> Any:
        return pc.sum(trees.column(column)).as_py() or 0

    tokens, prm_calls, n = total("generated_tokens"), total("prm_calls"), pairs.num_rows
    by_stage = pairs.group_by(["stage", "level"]).aggregate([([], "count_all")]).to_pylist()
    return {
        "problems_in_input": num_problems,
        "problems_done": trees.num_rows,
        "pairs": n,
        "pairs_by_stage_level": {f"stage{g['stage']}/{g['level']}": g["count_all"] for g in by_stage},
        "outcomes": {v["values"]: v["counts"] for v in trees.column("outcome").value_counts().to_pylist()},
        "rejects": len(rejects),
        "rejects_by_reason": dict(collections.Counter(r.split(":")[0][:80] for r in rejects)),
        "generated_tokens": tokens,
        "prm_calls": prm_calls,
        "problem_seconds": {k: round(total(k), 1) for k in timings},
        "retries": {"problem_attempts": total("attempts") - trees.num_rows, "model_calls": total("call_retries")},
        "this_run": {"problems": progress.done, "failed": progress.failed, "wall_seconds": round(seconds, 2),
                     "tokens_per_second": round(progress.tokens / seconds, 2) if seconds else None,
                     "seconds_per_pair": round(seconds / progress.pairs, 2) if progress.pairs else None},
        "tokens_per_pair": round(tokens / n, 1) if n else None,
        "prm_calls_per_pair": round(prm_calls / n, 1) if n else None,
    }  # fmt: skip
