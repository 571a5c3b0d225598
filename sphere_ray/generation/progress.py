"""Live progress of the generation job: one line a person can follow, updated as search steps finish.

* :class:`StepBoard` (a Ray actor the driver starts) sums the steps and tokens the workers report.
* :class:`CountingPolicy` wraps a worker's policy client: every ``sample_steps`` call adds its steps and
  tokens to a :class:`Tally`, which sends them to the board at most every ``flush_s`` seconds (fire and
  forget, so a slow or dead board never slows the search).
* :class:`Progress` (driver; :class:`SearchProgress` for SPHERE) counts finished problems, reads the board, and logs
  ``progress 3/8 problems (0 failed), 41 steps sampled, 5 pairs, stages {...}, 38.2 tok/s, 1m02s elapsed, ETA 1m43s``
  every ``every_s`` seconds from a background thread (so the line moves while problems are still being
  searched) and when a problem finishes after a quiet ``every_s``. It also feeds Ray metrics.
* :class:`LineBoard` (a Ray actor) and :class:`LineRelay` (driver): progress lines that workers on any node
  write (the training workers' step lines) are logged by the driver as they arrive, whether or not the
  workers' own output reaches this console, with a heartbeat while none arrive.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["CountingPolicy", "LineBoard", "LineRelay", "Progress", "SearchProgress", "StepBoard", "Tally", "clock"]

log = logging.getLogger(__name__)


class StepBoard:
    """Steps and tokens sampled by all workers of one job (run as a Ray actor with no CPU)."""

    def __init__(self) -> None:
        self.steps = self.tokens = 0

    def add(self, steps: int, tokens: int) -> None:
        """Add one worker's steps and tokens since its last report."""
        self.steps += steps
        self.tokens += tokens

    def totals(self) -> tuple[int, int]:
        """``(steps, tokens)`` so far."""
        return self.steps, self.tokens


class LineBoard:
    """Progress lines posted by workers, not yet logged by the driver (run as a Ray actor with no CPU)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        """Post one line."""
        self.lines.append(line)

    def take(self) -> list[str]:
        """The lines posted since the last call, oldest first."""
        lines, self.lines = self.lines, []
        return lines


class LineRelay:
    """The driver's side of a :class:`LineBoard`: a thread logs its lines, and a heartbeat while none arrive.

    Used as a context manager around the blocking call the workers run in; on exit the last lines are logged.

    Args:
        board: the :class:`LineBoard` actor handle.
        label: what the heartbeat names (``DPO``).
        every_s: seconds without a line before a heartbeat line.
        poll_s: seconds between reads of the board.
    """

    def __init__(self, board: Any, label: str, every_s: float = 30.0, poll_s: float = 2.0) -> None:
        self.board, self.label, self.every_s, self.poll_s = board, label, every_s, poll_s
        self.start = self.last_line = self.last_beat = time.monotonic()
        self.lines = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sphere-line-relay", daemon=True)

    def __enter__(self) -> LineRelay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=self.poll_s + 15)
        self.relay()

    def relay(self) -> None:
        """Log the board's new lines; a heartbeat if nothing was logged for ``every_s``."""
        lines = self.take()
        now = time.monotonic()
        for line in lines:
            log.info("%s", line)
        if lines:
            self.lines, self.last_line = self.lines + len(lines), now
        elif now - max(self.last_line, self.last_beat) >= self.every_s and not self.stopped.is_set():
            self.last_beat = now
            log.info("%s: %s elapsed, %s", self.label, clock(now - self.start), self.waiting(now))

    def take(self) -> list[str]:
        """The board's new lines (none when it cannot be read: progress never fails the job)."""
        import ray

        try:
            return ray.get(self.board.take.remote(), timeout=10)
        except Exception as e:
            log.debug("progress lines unreadable: %s", e)
            return []

    def waiting(self, now: float) -> str:
        """What the heartbeat says the job is waiting for."""
        if not self.lines:
            return "waiting for the first logged step (Ray Train start-up, loading, first steps)"
        return f"last progress line {clock(now - self.last_line)} ago"

    def _run(self) -> None:
        while not self.stopped.wait(self.poll_s):
            self.relay()


class Tally:
    """A worker's steps and tokens not yet reported; ``report(steps, tokens)`` is called at most every ``flush_s``."""

    def __init__(self, report: Callable[[int, int], None], flush_s: float = 2.0) -> None:
        self.report, self.flush_s = report, flush_s
        self.steps = self.tokens = 0
        self.last = time.monotonic()

    def add(self, steps: int, tokens: int) -> None:
        """Count a call's steps; report the pending counts if ``flush_s`` has passed."""
        self.steps += steps
        self.tokens += tokens
        if time.monotonic() - self.last >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Report the pending counts now (nothing when there are none)."""
        self.last = time.monotonic()
        if self.steps or self.tokens:
            steps, tokens, self.steps, self.tokens = self.steps, self.tokens, 0, 0
            try:
                self.report(steps, tokens)
            except Exception as e:  # progress is best effort: never fail a search for it
                log.debug("progress report failed: %s", e)


class CountingPolicy:
    """A search :class:`~sphere_ray.search.types.Policy` that counts the steps it samples into a :class:`Tally`.

    Everything else (``render_prompt``, ``name``, ...) is the wrapped client's; ``for_session`` wraps the
    session copy with the same tally.
    """

    def __init__(self, inner: Any, tally: Tally) -> None:
        self.inner, self.tally = inner, tally

    async def sample_steps(self, requests: Sequence[Any]) -> list[list[Any]]:
        """The wrapped client's samples; counts the step samples and their tokens."""
        out = await self.inner.sample_steps(requests)
        self.tally.add(sum(len(samples) for samples in out), sum(s.num_tokens for samples in out for s in samples))
        return out

    def for_session(self, session_id: str) -> CountingPolicy:
        """The wrapped client's session copy, counted into the same tally."""
        return CountingPolicy(self.inner.for_session(session_id), self.tally)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Progress:
    """A job's progress line: problems done/total, the job's own counts, tokens/s, elapsed and ETA.

    Subclasses count what their problems yield (:meth:`detail`) and call :meth:`finished` per problem.

    Args:
        total: problems this run will work.
        every_s: seconds between progress lines.
        board: the job's :class:`StepBoard` actor handle (live tokens and steps), or None.
        metrics: Ray metrics prefix (``<prefix>_problems``, ``_tokens``, ``_failed``).
    """

    def __init__(self, total: int, every_s: float, board: Any = None, metrics: str = "sphere_generate") -> None:
        self.total, self.every_s, self.board = total, every_s, board
        self.done = self.failed = self.tokens = 0
        self.live = (0, 0)  # (steps, tokens) from the board
        self.start = self.last = time.monotonic()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.prefix = metrics
        self.metrics = _metrics(metrics, ("problems", "problems finished"), ("tokens", "tokens generated"),
                                ("failed", "problems failed"))  # fmt: skip

    def finished(self, ok: bool, tokens: int) -> None:
        """Count one finished problem; log the line if ``every_s`` has passed or it was the last."""
        with self.lock:
            self.done += 1
            self.failed += not ok
            self.tokens += tokens
            _inc(self.metrics.get("problems"), 1)
            _inc(self.metrics.get("failed"), int(not ok))
            _inc(self.metrics.get("tokens"), tokens)
        if time.monotonic() - self.last >= self.every_s or self.done == self.total:
            self.emit()

    def detail(self) -> str:
        """The job's own counts in the line (e.g. steps, pairs)."""
        return ""

    def emit(self) -> None:
        """Log the progress line now."""
        with self.lock:
            self.last = time.monotonic()
            log.info("progress %s", self.line(self.last))

    def line(self, now: float) -> str:
        """``3/8 problems (0 failed), <detail>, 38.2 tok/s, 1m02s elapsed, ETA 1m43s``."""
        elapsed = max(now - self.start, 1e-9)
        left = self.total - self.done
        eta = "done" if not left else f"ETA {clock(elapsed / self.done * left)}" if self.done else "ETA ?"
        detail = self.detail()
        tokens = max(self.tokens, self.live[1])
        return (f"{self.done}/{self.total} problems ({self.failed} failed), {detail + ', ' if detail else ''}"
                f"{tokens / elapsed:.1f} tok/s, {clock(elapsed)} elapsed, {eta}")  # fmt: skip

    def start_heartbeat(self) -> threading.Thread:
        """Log a line every ``every_s`` while no problem finishes, with the board's live steps and tokens."""

        def beat() -> None:
            while not self.stopped.wait(min(self.every_s / 2, 5.0)):
                self._read_board()
                if time.monotonic() - self.last >= self.every_s:
                    self.emit()

        thread = threading.Thread(target=beat, name="sphere-progress", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the heartbeat."""
        self.stopped.set()

    def _read_board(self) -> None:
        if self.board is None:
            return
        import ray

        try:
            self.live = tuple(ray.get(self.board.totals.remote(), timeout=10))
        except Exception as e:  # the board is best effort
            log.debug("progress board unreadable: %s", e)


class SearchProgress(Progress):
    """The generation job's line: step samples (live), pairs and the stage mix."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics.update(_metrics(self.prefix, ("pairs", "pairs written")))
        self.pairs = self.steps = 0
        self.stages: collections.Counter[str] = collections.Counter()

    def update(self, row: dict[str, Any], payload: dict[str, Any]) -> None:
        """Count one finished problem (a result row and its parsed payload)."""
        tree = payload["tree"] if row["ok"] else {}
        with self.lock:
            self.pairs += tree.get("num_pairs", 0)
            self.steps += tree.get("step_generations", 0)
            if tree:
                self.stages[tree["outcome"]] += 1
            _inc(self.metrics.get("pairs"), tree.get("num_pairs", 0))
        self.finished(row["ok"], tree.get("generated_tokens", 0))

    def detail(self) -> str:
        """``41 steps sampled, 5 pairs, stages {...}``."""
        steps = max(self.steps, self.live[0])
        return f"{steps} steps sampled, {self.pairs} pairs, stages {dict(self.stages)}"


def clock(seconds: float) -> str:
    """``1h02m``, ``4m05s`` or ``37s``."""
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class EvalProgress(Progress):
    """The evaluation job's line: samples graded so far and their running Pass@1."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.samples = self.right = 0

    def update(self, rows: list[dict[str, Any]], error: str) -> None:
        """Count one evaluated problem: its graded sample rows (``correct``, ``num_tokens``), or its error."""
        with self.lock:
            self.samples += len(rows)
            self.right += sum(bool(r["correct"]) for r in rows)
        self.finished(not error, sum(r["num_tokens"] for r in rows))

    def detail(self) -> str:
        """``40 samples graded, Pass@1 so far 17.5%``."""
        rate = f"{100 * self.right / self.samples:.1f}%" if self.samples else "-"
        return f"{self.samples} samples graded, Pass@1 so far {rate}"


def _metrics(prefix: str, *names: tuple[str, str]) -> dict[str, Any]:
    """Ray metrics counters ``<prefix>_<name>`` (none outside Ray)."""
    try:
        from ray.util.metrics import Counter

        return {name: Counter(f"{prefix}_{name}", description=desc) for name, desc in names}
    except Exception as e:
        log.debug("no Ray metrics: %s", e)
        return {}


def _inc(counter: Any, value: float) -> None:
    if counter is not None and value > 0:  # Ray's Counter rejects 0
        counter.inc(value)
