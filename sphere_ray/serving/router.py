"""Problem affinity with balanced load: a Serve request router with sticky sessions and bounded loads.

Serve's ``ConsistentHashRouter`` keeps one session (one problem's search) on one replica, so its tree's
shared prefixes hit that replica's prefix cache. It spreads *sessions* by hash, though, and with a few
sessions per replica the busiest one gets far more than the mean (512 problems over 32 replicas: 1.6x,
``benchmarks/results/scale.md``), and the run waits for it. It also moves about 1/N of the live
sessions to another replica, cold cache, whenever a replica is added or dies.

:class:`AffinityRouter` keeps the ring but assigns each *new* session with bounded loads (consistent
hashing with bounded loads, Mirrokni, Thorup and Zadimoghaddam, SODA 2018): walking the ring from the
session's hash, the first replica holding fewer than ``ceil((1 + load_factor) x (live sessions + 1) /
replicas)`` live sessions takes it. Afterwards the session stays there (a table, not the ring) while the
replica lives, so autoscaling moves no running session; a session not seen for ``session_ttl_s`` no
longer counts. ``load_factor: 0`` balances exactly; a larger one leaves more sessions on their hash
replica, which matters only when several processes route one session. Requests without a session id
are spread by request id, as in the parent. Use it in a deployment's YAML::

    request_router_config:
      request_router_class: sphere_ray.serving.router.AffinityRouter
      request_router_kwargs: {load_factor: 0.0, session_ttl_s: 120}
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

__all__ = ["AffinityRouter", "SessionTable"]


class SessionTable:
    """Sticky session -> replica assignments with bounded loads (pure; no Ray).

    Args:
        load_factor: a replica takes a new session while it holds fewer than ``ceil((1 + load_factor) x
            (live + 1) / replicas)`` live ones.
        ttl_s: a session unseen this long stops counting and is forgotten.
        clock: seconds, monotonic (injectable for tests).
    """

    def __init__(
        self, load_factor: float = 0.0, ttl_s: float = 120.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if load_factor < 0:
            raise ValueError(f"load_factor must be >= 0, got {load_factor}")
        if ttl_s <= 0:
            raise ValueError(f"session_ttl_s must be > 0, got {ttl_s}")
        self.load_factor, self.ttl_s, self.clock = load_factor, ttl_s, clock
        self._sessions: OrderedDict[str, tuple[Hashable, float]] = OrderedDict()  # oldest use first
        self.load: Counter[Hashable] = Counter()

    def __len__(self) -> int:
        return len(self._sessions)

    def assign(self, session: str, ring_order: Sequence[Hashable]) -> Hashable:
        """The replica of ``session``: its own while alive, else a new one by bounded load.

        Args:
            session: the session id.
            ring_order: every live replica, each once, in ring order from the session's hash.
        """
        if not ring_order:
            raise ValueError("no replica to assign a session to")
        now = self.clock()
        self._expire(now)
        held = self._sessions.pop(session, None)
        if held is not None:
            if held[0] in ring_order:
                self._sessions[session] = (held[0], now)
                return held[0]
            self._drop(held[0])  # its replica is gone
        bound = math.ceil((1 + self.load_factor) * (len(self._sessions) + 1) / len(ring_order))
        replica = next((r for r in ring_order if self.load[r] < bound), ring_order[0])
        self._sessions[session] = (replica, now)
        self.load[replica] += 1
        return replica

    def replica_of(self, session: str) -> Hashable | None:
        """The replica ``session`` is assigned to, if any (no side effects)."""
        held = self._sessions.get(session)
        return None if held is None else held[0]

    def _expire(self, now: float) -> None:
        while self._sessions:
            session, (replica, seen) = next(iter(self._sessions.items()))
            if now - seen < self.ttl_s:
                return
            del self._sessions[session]
            self._drop(replica)

    def _drop(self, replica: Hashable) -> None:
        self.load[replica] -= 1
        if self.load[replica] <= 0:
            del self.load[replica]


def _router_base() -> type:
    from ray.serve.experimental.consistent_hash_router import ConsistentHashRouter

    return ConsistentHashRouter


class AffinityRouter(_router_base()):  # type: ignore[misc]
    """``ConsistentHashRouter`` with sticky, load-bounded session assignment (:class:`SessionTable`).

    ``request_router_kwargs``: ``load_factor`` (default 0.0), ``session_ttl_s`` (default 120) and the
    parent's ``num_virtual_nodes`` and ``num_fallback_replicas`` (tried, in ring order, when the
    session's replica refuses a request under backpressure).
    """

    def initialize_state(self, **kwargs: Any) -> None:
        """Read this router's kwargs; pass the rest to the parent."""
        self._table = SessionTable(float(kwargs.pop("load_factor", 0.0)), float(kwargs.pop("session_ttl_s", 120.0)))
        super().initialize_state(**kwargs)

    def _ring_order(self, key: str) -> list[Any]:
        """Every replica, once each, clockwise from ``key``'s hash."""
        from ray.serve.experimental.consistent_hash_router import _hash_bytes

        n, replicas = len(self._ring_hashes), len(self._replica_set_snapshot)
        if not n:
            return []
        start = bisect.bisect_right(self._ring_hashes, _hash_bytes(key.encode())) % n
        order: dict[Any, None] = {}  # insertion-ordered set
        for offset in range(n):
            order.setdefault(self._ring_replicas[(start + offset) % n])
            if len(order) == replicas:
                break
        return list(order)

    async def choose_replicas(self, candidate_replicas: list[Any], pending_request: Any = None) -> list[list[Any]]:
        """The session's replica first, then up to ``num_fallback_replicas`` others in ring order."""
        session = pending_request.metadata.session_id if pending_request is not None else None
        if not session or not candidate_replicas:
            return await super().choose_replicas(candidate_replicas, pending_request)
        pending_request.routing_context.should_backoff = True
        order = [r for r in self._ring_order(session) if r in self._replicas]
        if not order:
            return [candidate_replicas]
        primary = self._table.assign(session, order)
        ranked = [primary, *[r for r in order if r != primary][: self._num_fallback_replicas]]
        return [[self._replicas[r]] for r in ranked]
