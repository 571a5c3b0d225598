"""How busy a replica is: seconds with at least one request in progress, and how many were in progress.

A replica's ``stats()`` reports these, so a job can tell a model that waited for work (pipeline bubbles)
from one that was busy all along (the model is the bottleneck).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

__all__ = ["BusyMeter", "SessionTally"]

T = TypeVar("T")


class BusyMeter:
    """Integrates the number of requests in progress over time.

    Args:
        clock: seconds, monotonic (a fake clock in tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._active = 0
        self._last: float | None = None
        self.busy_seconds = 0.0
        self.request_seconds = 0.0

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count one request in progress for the duration of the ``with`` block."""
        self._advance(+1)
        try:
            yield
        finally:
            self._advance(-1)

    async def track_stream(self, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """``items``, counting one request in progress until the stream ends (or its consumer stops)."""
        with self.track():
            async for item in items:
                yield item

    def _advance(self, delta: int) -> None:
        now = self._clock()
        if self._last is not None and self._active:
            self.busy_seconds += now - self._last
            self.request_seconds += self._active * (now - self._last)
        self._last = now
        self._active += delta

    def snapshot(self) -> dict[str, float]:
        """Totals up to now and the present load.

        Returns:
            ``busy_seconds`` (>= 1 request in progress), ``request_seconds`` (requests in progress integrated
            over time), ``mean_requests_when_busy`` (their ratio) and ``requests_in_progress``.
        """
        self._advance(0)
        mean = self.request_seconds / self.busy_seconds if self.busy_seconds else 0.0
        totals = {"busy_seconds": self.busy_seconds, "request_seconds": self.request_seconds}
        return {**totals, "mean_requests_when_busy": mean, "requests_in_progress": self._active}


class SessionTally:
    """Distinct Serve session ids (problem ids under affinity) one replica has served.

    Summed over a deployment's replicas it equals the number of problems exactly when every problem
    stayed on one replica. Keeps at most ``cap`` ids (then counts stop growing; ``capped`` says so).
    """

    def __init__(self, cap: int = 1_000_000) -> None:
        self.cap, self.capped = cap, False
        self._ids: set[str] = set()

    def add_current(self) -> None:
        """Record the session id of the request being served, if it has one."""
        try:
            from ray.serve.context import _get_serve_request_context

            session = _get_serve_request_context().session_id
        except Exception:  # outside a Serve request (unit tests)
            return
        if session and session not in self._ids:
            if len(self._ids) >= self.cap:
                self.capped = True
                return
            self._ids.add(session)

    def snapshot(self) -> dict[str, float]:
        """``sessions``: distinct ids seen; ``replica``: this replica's id; ``node_id``: the Ray node it runs on."""
        try:
            import ray
            from ray import serve

            replica = serve.get_replica_context().replica_id.unique_id
            node = ray.get_runtime_context().get_node_id()
        except Exception:
            replica = node = ""
        return {"sessions": len(self._ids), "sessions_capped": self.capped, "replica": replica, "node_id": node}
