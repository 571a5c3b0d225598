"""Load over time: an engine's cumulative generated tokens and requests in progress, sampled every few seconds.

The generation benchmark records one timeline for the job's policy replica (and the PRM's requests in
progress) and one for the direct engine, so the ramp-up and the tail can be told from the steady state.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable


class Timeline:
    """Samples ``probe()`` (a dict of numbers) every ``every_s`` seconds, from a thread or an event loop."""

    def __init__(self, probe: Callable[[], dict[str, float]], every_s: float = 2.0) -> None:
        self.probe, self.every_s = probe, every_s
        self.rows: list[dict[str, float]] = []
        self._start = time.perf_counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        self.rows.append({"t": round(time.perf_counter() - self._start, 2), **self.probe()})

    def start_thread(self) -> Timeline:
        """Sample in a background thread until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(self.every_s):
                self.sample()

        self._start = time.perf_counter()
        self.sample()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    async def run_until(self, done: asyncio.Future) -> None:
        """Sample on this event loop until ``done`` completes (and once more after it)."""
        self._start = time.perf_counter()
        while not done.done():
            self.sample()
            await asyncio.wait([done], timeout=self.every_s)
        self.sample()

    def stop(self) -> list[dict[str, float]]:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sample()
        return self.rows

    @staticmethod
    def to_columns(rows: list[dict[str, float]]) -> dict[str, list[float]]:
        """Rows as columns (compact JSON)."""
        return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}


def middle_rate(rows: list[dict[str, float]], key: str = "tokens", lo: float = 0.1, hi: float = 0.9) -> float:
    """Rate of ``key`` between the samples where it first reaches ``lo`` and ``hi`` of its final value.

    This is the steady-state rate: it leaves out the ramp-up (first 10% of the tokens) and the tail (last 10%).
    """
    base, total = rows[0][key], rows[-1][key] - rows[0][key]
    first = next(r for r in rows if r[key] - base >= lo * total)
    last = next(r for r in rows if r[key] - base >= hi * total)
    return (last[key] - first[key]) / (last["t"] - first["t"]) if last["t"] > first["t"] else float("nan")


def plot(timelines: dict[str, list[dict[str, float]]], path: str) -> None:
    """Tokens/s (per sampling interval) and requests in progress over time, one line per timeline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for name, rows in timelines.items():
        t = [r["t"] for r in rows]
        rate = [(b["tokens"] - a["tokens"]) / (b["t"] - a["t"]) for a, b in itertools.pairwise(rows)]
        top.plot(t[1:], _smooth(rate), label=f"{name} tokens/s")
        for key in (k for k in rows[0] if k.endswith("in_progress")):
            bottom.plot(t, [r[key] for r in rows], label=f"{name} {key.replace('_', ' ')}")
    top.set_ylabel("generated tokens/s (15 s mean)")
    bottom.set_ylabel("requests in progress")
    bottom.set_xlabel("seconds")
    top.legend()
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _smooth(values: list[float], width: int = 7) -> list[float]:
    windows = (values[max(0, i - width + 1) : i + 1] for i in range(len(values)))
    return [sum(w) / len(w) for w in windows]
