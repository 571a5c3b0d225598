"""The live progress line of the per-problem jobs: counts, ETA, the heartbeat, and the step counting client."""

import asyncio
import logging
import time

from sphere_ray.generation.progress import (
    CountingPolicy,
    LineBoard,
    LineRelay,
    SearchProgress,
    StepBoard,
    Tally,
    clock,
)
from sphere_ray.search import StepSample


class FakePolicy:
    """A fake policy client: two samples of 3 tokens per request; records the sessions it was copied for."""

    name = "fake"

    def __init__(self, session: str | None = None) -> None:
        self.session = session

    async def sample_steps(self, requests):
        return [[StepSample("a", 3), StepSample("b", 3)] for _ in requests]

    def for_session(self, session_id: str) -> "FakePolicy":
        return FakePolicy(session_id)


def test_counting_policy_counts_samples_and_tokens_across_session_copies():
    reports = []
    tally = Tally(lambda steps, tokens: reports.append((steps, tokens)), flush_s=3600)
    policy = CountingPolicy(FakePolicy(), tally)
    session = policy.for_session("p-1")
    assert isinstance(session, CountingPolicy) and session.inner.session == "p-1" and session.name == "fake"
    out = asyncio.run(policy.sample_steps(["r1", "r2"]))
    asyncio.run(session.sample_steps(["r3"]))
    assert len(out) == 2 and reports == []  # not yet due
    tally.flush()
    assert reports == [(6, 18)]
    tally.flush()
    assert reports == [(6, 18)]  # nothing pending: nothing sent


def test_tally_reports_when_due_and_survives_a_failing_report():
    reports = []
    tally = Tally(lambda steps, tokens: reports.append((steps, tokens)), flush_s=0.0)
    tally.add(2, 10)
    tally.add(1, 5)
    assert reports == [(2, 10), (1, 5)]

    def broken(steps, tokens):
        raise RuntimeError("board is gone")

    failing = Tally(broken, flush_s=0.0)
    failing.add(1, 1)  # no exception: progress is best effort
    assert failing.steps == 0


def test_step_board_sums():
    board = StepBoard()
    board.add(3, 30)
    board.add(2, 5)
    assert board.totals() == (5, 35)


def test_search_progress_line_counts_problems_and_gives_an_eta(caplog):
    progress = SearchProgress(4, every_s=3600)
    ok = {"ok": True}
    tree = {"num_pairs": 2, "generated_tokens": 120, "step_generations": 10, "outcome": "stage1"}
    with caplog.at_level(logging.INFO, logger="sphere_ray.generation.progress"):
        progress.update(ok, {"tree": tree})
        progress.update({"ok": False}, {})
    line = progress.line(progress.start + 60)  # a minute in
    assert line.startswith("2/4 problems (1 failed), 10 steps sampled, 2 pairs, stages {'stage1': 1}, 2.0 tok/s")
    assert "1m00s elapsed, ETA 1m00s" in line
    progress.live = (25, 600)  # the board saw steps of problems still being searched
    live = progress.line(progress.start + 60)
    assert "25 steps sampled" in live and "10.0 tok/s" in live
    with caplog.at_level(logging.INFO, logger="sphere_ray.generation.progress"):
        progress.update(ok, {"tree": tree})
        progress.update(ok, {"tree": tree})
    assert "4/4 problems" in caplog.text and caplog.text.rstrip().endswith("done")  # the last one is logged


def test_heartbeat_logs_while_no_problem_finishes(caplog):
    progress = SearchProgress(3, every_s=0.2)
    with caplog.at_level(logging.INFO, logger="sphere_ray.generation.progress"):
        thread = progress.start_heartbeat()
        time.sleep(0.7)
        progress.stop()
        thread.join(timeout=2)
    beats = [r for r in caplog.records if "0/3 problems" in r.getMessage()]
    assert len(beats) >= 2 and "ETA ?" in beats[0].getMessage() and not thread.is_alive()


def test_clock():
    assert [clock(s) for s in (0, 37.4, 65, 3725)] == ["0s", "37s", "1m05s", "1h02m"]


def test_eval_progress_counts_samples_and_running_pass_at_1():
    from sphere_ray.generation.progress import EvalProgress

    p = EvalProgress(total=3, every_s=3600)
    p.update([{"correct": True, "num_tokens": 10}, {"correct": False, "num_tokens": 6}], "")
    p.update([], "TimeoutError: no answer")
    line = p.line(p.start + 4)
    assert line.startswith("2/3 problems (1 failed), 2 samples graded, Pass@1 so far 50.0%, 4.0 tok/s"), line


class ScriptedRelay(LineRelay):
    """A relay whose board is faked: each read returns the next scripted batch of lines."""

    def __init__(self, batches, **kwargs) -> None:
        super().__init__(board=None, label="DPO", **kwargs)
        self.batches = list(batches)

    def take(self):
        return self.batches.pop(0) if self.batches else []


def test_line_board_hands_each_line_over_once():
    board = LineBoard()
    board.add("a")
    board.add("b")
    assert board.take() == ["a", "b"] and board.take() == []


def test_line_relay_logs_posted_lines_in_order_and_a_heartbeat_while_quiet(caplog):
    caplog.set_level(logging.INFO, logger="sphere_ray.generation.progress")
    relay = ScriptedRelay([[], ["DPO progress step 1/4"], ["DPO progress step 2/4", "DPO progress step 3/4"]],
                          every_s=0.0)  # fmt: skip
    relay.relay()  # nothing posted yet: the heartbeat says the workers are starting
    relay.relay()
    relay.relay()
    relay.relay()  # quiet again: the heartbeat says how long ago the last line came
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("DPO: 0s elapsed, waiting for the first logged step"), lines
    assert lines[1:4] == ["DPO progress step 1/4", "DPO progress step 2/4", "DPO progress step 3/4"]
    assert lines[4].startswith("DPO: ") and "last progress line 0s ago" in lines[4], lines


def test_line_relay_logs_the_last_lines_on_exit_without_a_heartbeat(caplog):
    caplog.set_level(logging.INFO, logger="sphere_ray.generation.progress")
    relay = ScriptedRelay([], every_s=0.0, poll_s=3600)
    with relay:
        relay.batches.append(["DPO progress step 4/4, done"])
    assert [r.getMessage() for r in caplog.records] == ["DPO progress step 4/4, done"]
