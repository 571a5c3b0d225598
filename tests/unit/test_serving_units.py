"""Pure logic of the serving layer (no Ray cluster): schemas, request grouping, retries, registries."""

import asyncio
import os

import pytest
from pydantic import ValidationError

from sphere_ray.search import StepRequest
from sphere_ray.serving.apps import GenerationAppArgs
from sphere_ray.serving.client import call_with_retries, to_generate_requests, to_step_samples
from sphere_ray.serving.cpus import parse_cpus, pin_to_cpus
from sphere_ray.serving.engines import build_engine
from sphere_ray.serving.meter import BusyMeter
from sphere_ray.serving.prm import build_prm
from sphere_ray.serving.schema import GenerateRequest, GenerateResponse, Sample


def test_step_requests_are_grouped_by_sampling_settings_keeping_seeds():
    reqs = [StepRequest("a", 5, 0.8, 64, seed=11), StepRequest("b", 10, 0.8, 64, seed=12),
            StepRequest("c", 5, 0.8, 64, seed=13)]  # fmt: skip
    groups = to_generate_requests(reqs)
    assert [(idx, g.prompts, g.seeds, g.n) for idx, g in groups] == [
        ([0, 2], ["a", "c"], [11, 13], 5),
        ([1], ["b"], [12], 10),
    ]


def test_samples_map_finish_reasons():
    response = GenerateResponse(outputs=[[Sample(text="x", num_tokens=3, finish_reason="eos"),
                                          Sample(text="y", num_tokens=4, finish_reason="stop")]])  # fmt: skip
    (samples,) = to_step_samples(response)
    assert [(s.text, s.num_tokens, s.finished) for s in samples] == [("x", 3, True), ("y", 4, False)]


@pytest.mark.parametrize(
    "body",
    [{"prompts": []}, {"prompts": ["a"], "n": 0}, {"prompts": ["a"], "temperature": -1},
     {"prompts": ["a"], "stop": [""]}, {"prompts": ["a", "b"], "seeds": [1]}, {"prompts": ["a"], "bogus": 1}],
)  # fmt: skip
def test_generate_request_validation(body):
    with pytest.raises(ValidationError):
        GenerateRequest.model_validate(body)


class ActorDiedError(Exception):
    """FAKE stand-in named like Ray's (the client classifies errors by class name)."""


def test_retries_on_dead_replica_not_on_bad_request():
    calls = {"n": 0}

    async def flaky():
        calls["n"] += 1
        if calls["n"] < 3:
            raise ActorDiedError("replica died")
        return "ok"

    retried = []
    result = asyncio.run(call_with_retries(flaky, "x", retries=3, backoff_s=0, on_retry=lambda: retried.append(1)))
    assert result == "ok" and calls["n"] == 3 and len(retried) == 2  # each retry is counted

    async def bad():
        calls["n"] += 1
        raise ValueError("invalid request")

    calls["n"] = 0
    with pytest.raises(ValueError):
        asyncio.run(call_with_retries(bad, "x", retries=3, backoff_s=0))
    assert calls["n"] == 1


def test_timeouts_are_retried_then_raised():
    async def slow():
        await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        asyncio.run(call_with_retries(slow, "x", retries=1, timeout_s=0.05, backoff_s=0))


def test_unknown_backend_and_prm_family_name_the_field():
    with pytest.raises(ValueError, match="backend must be one of"):
        build_engine("tensorrt", "m", "m")
    with pytest.raises(ValueError, match="prm kind must be one of"):
        build_prm("oracle")


def test_busy_meter_counts_time_with_requests_in_progress():
    now = [0.0]
    meter = BusyMeter(clock=lambda: now[0])
    with meter.track():  # t 0-10: one request; t 4-6: two
        now[0] = 4.0
        with meter.track():
            now[0] = 6.0
        now[0] = 10.0
        assert meter.snapshot()["requests_in_progress"] == 1
    now[0] = 30.0  # idle: not busy
    assert meter.snapshot() == {
        "busy_seconds": 10.0, "request_seconds": 12.0, "mean_requests_when_busy": 1.2, "requests_in_progress": 0,
    }  # fmt: skip


def test_cpus_spec_parsing_and_pinning(monkeypatch):
    assert parse_cpus("0,2,4-5") == [0, 2, 4, 5] and parse_cpus("1") == [1]
    for bad in ("", "a", "3-1", "-1", "0,,1"):
        with pytest.raises(ValueError, match="cpus"):
            parse_cpus(bad)
    with pytest.raises(ValueError, match="do not exist"):
        pin_to_cpus("4096")
    before = os.sched_getaffinity(0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0-1")
    try:
        assert pin_to_cpus("0") == [0] and os.sched_getaffinity(0) == {0}
        assert (os.environ["VLLM_CPU_OMP_THREADS_BIND"], os.environ["OMP_NUM_THREADS"]) == ("0", "1")
    finally:
        os.sched_setaffinity(0, before)
    with pytest.raises(ValidationError, match="cpus"):
        GenerationAppArgs(model="m", cpus="zero")


def test_app_state_line_counts_replicas_by_state():
    """What the deploy wait logs per app (fakes of Serve's status objects: ``status``, ``replica_states``)."""
    from types import SimpleNamespace

    from sphere_ray.serving.launch import app_state_line

    def fake_app(status, *replica_states):
        deployments = {f"d{i}": SimpleNamespace(replica_states=r) for i, r in enumerate(replica_states)}
        return SimpleNamespace(status=status, deployments=deployments)

    assert app_state_line(None) == "NOT_STARTED"
    assert app_state_line(fake_app("DEPLOYING")) == "DEPLOYING"
    assert app_state_line(fake_app("DEPLOYING", {"STARTING": 1}, {"STARTING": 1, "RUNNING": 2, "STOPPING": 0})) == (
        "DEPLOYING (replicas: 2 RUNNING, 2 STARTING)"
    )


def test_session_copies_count_their_own_retries():
    """A problem's session copy of a Serve client counts the retries it spends, apart from the shared client."""
    from sphere_ray.search import PrmRequest
    from sphere_ray.serving.client import ServePRM
    from sphere_ray.serving.schema import ScoreResponse

    class FakeHandle:
        """A fake deployment handle whose first score call finds a dead replica."""

        def __init__(self):
            self.calls = 0

        def options(self, **kwargs):
            return self

        @property
        def score(self):
            return self

        def remote(self, request):
            self.calls += 1

            async def answer():
                if self.calls == 1:
                    raise ActorDiedError("replica died")
                return ScoreResponse(scores=[[0.5]])

            return answer()

    shared = ServePRM(FakeHandle(), retries=2)
    copy = shared.for_session(None)
    request = PrmRequest(question="1+1?", steps=("2",), answer="2")
    scores = asyncio.run(copy.score_steps([request]))
    assert scores == [[0.5]] and copy.retries_spent == 1 and shared.retries_spent == 0
