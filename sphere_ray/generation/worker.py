"""The Ray Data UDF: one row in (a problem), one row out (its result or its failure).

Each actor holds clients of the Serve apps and runs many problems at once on its event loop (Ray Data
sends it up to ``problems_in_flight`` rows concurrently). A problem whose search raises is retried up to
``problem_retries`` times and then returned as a failure row with the error; a dead actor's rows are
retried by Ray Data on a new actor. Model calls already retry a dead replica (see the clients).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import Any

from sphere_ray.generation.progress import CountingPolicy, Tally
from sphere_ray.search import Models, Problem, SearchParams, SphereParams, sphere_search

__all__ = [
    "BatchWorkerMixin", "ProblemBatchWorker", "ProblemWorker", "RetryingWorker", "problem_to_row", "ramp_delay",
    "row_to_problem",
]  # fmt: skip

log = logging.getLogger(__name__)


def problem_to_row(problem: Problem) -> dict[str, Any]:
    """A problem as a Ray Data row."""
    return dataclasses.asdict(problem)


def row_to_problem(row: dict[str, Any]) -> Problem:
    """A Ray Data row back into a problem."""
    level = row.get("level")
    return Problem(
        id=row["id"], problem=row["problem"], answer=row["answer"], source=row.get("source") or "",
        level=int(level) if level is not None else None, subject=row.get("subject"), solution=row.get("solution"),
    )  # fmt: skip


def ramp_delay(started: int, in_flight: int, ramp_up_s: float) -> float:
    """Seconds the actor's problem number ``started`` (0-based) waits before its search starts.

    The first ``in_flight`` problems start evenly spread over ``ramp_up_s``; later ones (which arrive as
    earlier ones finish) start at once. Without a ramp, problems started together make their model calls
    together: all policy steps, then all PRM calls, each model idle while the other works.
    """
    if started >= in_flight or ramp_up_s <= 0:
        return 0.0
    return started * ramp_up_s / in_flight


class RetryingWorker:
    """Base of the Ray Data UDFs that work one problem per call: slots, ramp-up and retries.

    A subclass implements :meth:`attempt` (one try at a problem; raises on failure) and :meth:`payload`
    (the JSON-able result of a successful try). A call returns ``{problem_id, ok, error, attempts,
    payload}``: ``payload`` is the result as JSON, or the input row when every attempt failed.

    Args:
        problem_retries: extra attempts for a problem whose attempt raises.
        retry_delay_s: wait before attempt k+1 is ``retry_delay_s * k`` (time for a replica to be replaced).
        problems_in_flight / ramp_up_s: this actor's first ``problems_in_flight`` problems start spread over
            ``ramp_up_s`` seconds (:func:`ramp_delay`), and at most that many run at once.
    """

    def __init__(self, problem_retries: int = 2, retry_delay_s: float = 30.0, problems_in_flight: int = 1,
                 ramp_up_s: float = 0.0) -> None:  # fmt: skip
        self.problem_retries = problem_retries
        self.retry_delay_s = retry_delay_s
        self.ramp = (problems_in_flight, ramp_up_s)
        self.started = 0
        self._slots: asyncio.Semaphore | None = None  # made on first call, in Ray Data's event loop

    async def attempt(self, problem: Problem) -> Any:
        """One try at ``problem``; raises on failure."""
        raise NotImplementedError

    def payload(self, problem: Problem, result: Any, attempts: int, seconds: float) -> dict[str, Any]:
        """The committed rows of a successful try, as a JSON-able dict."""
        raise NotImplementedError

    async def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        """Work one problem; never raises (a failure is a row with ``error`` set).

        At most ``problems_in_flight`` problems run at once in this actor, however Ray Data hands rows over
        (streamed blocks hold many rows, and Ray Data runs an async UDF's rows concurrently).
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.ramp[0])
        async with self._slots:
            return await self._work(row)

    async def _work(self, row: dict[str, Any]) -> dict[str, Any]:
        problem = row_to_problem(row)
        delay = ramp_delay(self.started, *self.ramp)
        self.started += 1
        if delay:
            await asyncio.sleep(delay)
        start = time.monotonic()
        for attempt in range(1, self.problem_retries + 2):
            if attempt > 1:
                await asyncio.sleep(self.retry_delay_s * (attempt - 1))
            try:
                result = await self.attempt(problem)
            except Exception as e:
                log.warning("problem %s attempt %d failed: %s: %s", problem.id, attempt, type(e).__name__, e)
                error = f"{type(e).__name__}: {e}"[:2000]
                continue
            payload = json.dumps(self.payload(problem, result, attempt, time.monotonic() - start))
            return {"problem_id": problem.id, "ok": True, "error": "", "attempts": attempt, "payload": payload}
        return {"problem_id": problem.id, "ok": False, "error": error, "attempts": attempt, "payload": json.dumps(row)}


class ProblemWorker(RetryingWorker):
    """Callable class for ``Dataset.map``: searches one problem per call (SPHERE).

    Args:
        apps: Serve app names: ``policy``, ``prm`` and optionally ``small_policy``.
        params: :class:`SphereParams` fields as a dict (``search`` nested).
        config_hash: recorded in every pair.
        call_timeout_s / call_retries: per model call (see :class:`~sphere_ray.serving.client.ServePolicy`).
        inprocess: ``models: inprocess`` settings (:func:`~sphere_ray.generation.inprocess.build_inprocess_models`
            arguments): this actor loads the models itself and ``apps`` is unused.
        affinity: send each problem's calls with its id as Serve session id, so deployments routed by
            a session router (``sphere_ray.serving.router.AffinityRouter``) keep one problem on one replica.
        step_board: the job's :class:`~sphere_ray.generation.progress.StepBoard` actor: step samples and
            tokens are reported to it as they happen (the driver's live progress line), or None.
        **retrying: :class:`RetryingWorker` arguments.
    """

    def __init__(
        self, apps: dict[str, str | None], params: dict[str, Any], config_hash: str, call_timeout_s: float = 600.0,
        call_retries: int = 3, affinity: bool = True, step_board: Any = None,
        inprocess: dict[str, Any] | None = None, **retrying: Any,
    ) -> None:  # fmt: skip
        super().__init__(**retrying)
        self.tally = Tally(lambda steps, tokens: step_board.add.remote(steps, tokens)) if step_board else None
        models = _inprocess(inprocess) if inprocess else _serve_clients(apps, call_timeout_s, call_retries)
        if self.tally:
            small = models.small_policy
            models = dataclasses.replace(models, policy=CountingPolicy(models.policy, self.tally),
                                         small_policy=CountingPolicy(small, self.tally) if small else None)  # fmt: skip
        self.models = models
        self.params = SphereParams(**{**params, "search": SearchParams(**params["search"])})
        self.config_hash = config_hash
        self.inprocess = bool(inprocess)  # in-process models are shared: no sessions, no retries
        self.affinity = affinity
        self.call_retries: dict[str, int] = {}  # problem id -> model-call retries over its attempts

    def _models_for(self, problem: Problem) -> Models:
        """The clients of one problem's search.

        Per-problem copies of the Serve clients, each counting the retries it spends; with affinity their calls
        carry the problem id as session. In-process models are shared.
        """
        m = self.models
        if self.inprocess:
            return m
        sid = problem.id if self.affinity else None
        small = m.small_policy.for_session(sid) if m.small_policy else None
        return dataclasses.replace(m, policy=m.policy.for_session(sid), prm=m.prm.for_session(sid), small_policy=small)

    async def attempt(self, problem: Problem) -> Any:
        """The SPHERE search of ``problem``; the model-call retries it spends are added to its count."""
        models = self._models_for(problem)
        try:
            return await sphere_search(problem, models, self.params)
        finally:
            spent = sum(getattr(x, "retries_spent", 0) for x in (models.policy, models.prm, models.small_policy))
            self.call_retries[problem.id] = self.call_retries.get(problem.id, 0) + spent

    def payload(self, problem: Problem, result: Any, attempts: int, seconds: float) -> dict[str, Any]:
        """``{tree: TREE_SCHEMA row, pairs: [PAIR_SCHEMA rows]}``."""
        if self.tally:
            self.tally.flush()
        pairs = [{**dataclasses.asdict(p), "pair_id": p.pair_id, "config_hash": self.config_hash} for p in result.pairs]
        c = result.counters
        tree = {
            "problem_id": result.problem.id, "stage": result.stage, "outcome": result.outcome,
            "num_pairs": len(pairs), "generated_tokens": c.generated_tokens, "step_generations": c.step_generations,
            "prm_calls": c.prm_calls, "seconds": seconds, "policy_seconds": c.policy_seconds,
            "prm_seconds": c.prm_seconds, "attempts": attempts,
            "call_retries": self.call_retries.pop(result.problem.id, 0),
            "trees_json": json.dumps([t.to_dict() for t in result.trees]),
        }  # fmt: skip
        return {"tree": tree, "pairs": pairs}


def _serve_clients(apps: dict[str, str | None], timeout_s: float, retries: int) -> Models:
    """Clients of the Serve apps (``policy``, ``prm``, optional ``small_policy``)."""
    from sphere_ray.serving.client import ServePolicy, ServePRM

    small = apps.get("small_policy")
    return Models(
        policy=ServePolicy(apps["policy"], timeout_s=timeout_s, retries=retries),
        prm=ServePRM(apps["prm"], timeout_s=timeout_s, retries=retries),
        small_policy=ServePolicy(small, timeout_s=timeout_s, retries=retries) if small else None,
    )


def _inprocess(settings: dict[str, Any]) -> Models:
    from sphere_ray.generation.inprocess import build_inprocess_models

    return build_inprocess_models(**settings)


class BatchWorkerMixin:
    """A :class:`RetryingWorker` over whole queue parts: each part's rows are worked concurrently.

    Used when the job streams its queue: a Ray Data block holds ``{uri, part}`` rows naming staged queue
    parts (:meth:`~sphere_ray.generation.store.OutputStore.write_queue_part`), the actor reads each part
    itself (:func:`~sphere_ray.generation.store.read_queue_part`), and works its problems together (still
    at most ``problems_in_flight`` at once), so Ray Data's in-order row reassembly never holds finished
    problems behind a slow one. Output: one result row per problem (columns as
    :meth:`RetryingWorker.__call__` returns), as a ``pyarrow.Table``.
    """

    async def __call__(self, batch: Any) -> Any:
        """Work every problem of the parts named in ``batch``; return their result rows."""
        import pyarrow as pa

        from sphere_ray.generation.store import read_queue_part

        problems = [r for ref in batch.to_pylist() for r in read_queue_part(ref["uri"], ref["part"]).to_pylist()]
        rows = await asyncio.gather(*(super(BatchWorkerMixin, self).__call__(r) for r in problems))
        return pa.Table.from_pylist(list(rows))


class ProblemBatchWorker(BatchWorkerMixin, ProblemWorker):
    """:class:`ProblemWorker` over a whole Ray Data block (:class:`BatchWorkerMixin`)."""
