"""The serving guard without a cluster: API key resolution, 401 and 413 on a guarded FastAPI app, request
limits, closed-by-default YAML, and the OpenAI stream's server-sent events."""

import asyncio
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sphere_ray.serving.engines import StreamDelta
from sphere_ray.serving.guard import LimitExceededError, RequestLimits, check_generate, configure, resolve_key
from sphere_ray.serving.launch import load_serve_config
from sphere_ray.serving.openai_api import events

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def guarded():
    from sphere_ray.serving.apps import _guarded

    app = _guarded("test")

    @app.post("/echo")
    async def echo(body: dict) -> dict:
        check_generate(body.get("prompts", ["x"]), body.get("n", 1), body.get("max_tokens", 1))
        return body

    yield TestClient(app)
    configure(None, RequestLimits())


def test_key_from_file_then_env_and_required_without_one(tmp_path, monkeypatch):
    monkeypatch.delenv("SPHERE_RAY_API_KEY", raising=False)
    assert resolve_key("SPHERE_RAY_API_KEY", None, required=False) is None
    monkeypatch.setenv("SPHERE_RAY_API_KEY", " from-env \n")
    assert resolve_key("SPHERE_RAY_API_KEY", None, required=True) == "from-env"
    secret = tmp_path / "key"
    secret.write_text("from-file\n")
    assert resolve_key("SPHERE_RAY_API_KEY", str(secret), required=True) == "from-file"
    monkeypatch.delenv("SPHERE_RAY_API_KEY")
    with pytest.raises(ValueError, match="no API key: set SPHERE_RAY_API_KEY"):
        resolve_key("SPHERE_RAY_API_KEY", None, required=True)
    secret.write_text("  ")
    with pytest.raises(ValueError, match="is empty"):
        resolve_key("X", str(secret), required=False)
    with pytest.raises(ValueError, match="cannot be read"):
        resolve_key("X", str(tmp_path / "missing"), required=False)


def test_every_route_needs_the_key_once_one_is_set(guarded):
    assert guarded.post("/echo", json={"a": 1}).status_code == 200  # no key configured: open (loopback default)
    configure("s3cret", RequestLimits())
    assert guarded.post("/echo", json={"a": 1}).status_code == 401
    assert guarded.post("/echo", json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = guarded.post("/echo", json={"a": 1}, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json() == {"a": 1}
    assert guarded.post("/echo", json={}, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert guarded.get("/docs").status_code in (401, 404)  # nothing served without it
    assert guarded.post("/echo", json={}).headers["www-authenticate"] == "Bearer"


def test_bodies_and_requests_over_the_limits_are_refused(guarded):
    configure(None, RequestLimits(max_body_bytes=2048, max_n=4, max_tokens=100, max_prompt_chars=50))
    big = guarded.post("/echo", content=b'{"x": "' + b"a" * 5000 + b'"}', headers={"content-type": "application/json"})
    assert big.status_code == 413 and "2048 bytes" in big.json()["detail"]

    def chunks():  # no Content-Length: counted while it streams in
        yield b'{"x": "'
        for _ in range(10):
            yield b"a" * 500
        yield b'"}'

    streamed = guarded.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    for body, needle in (({"n": 5}, "n is 5"), ({"max_tokens": 101}, "max_tokens is 101"),
                         ({"prompts": ["y" * 51]}, "longest prompt")):  # fmt: skip
        r = guarded.post("/echo", json=body)
        assert r.status_code == 400 and needle in r.json()["detail"] and "limit" in r.json()["detail"]
    assert guarded.post("/echo", json={"n": 4, "max_tokens": 100}).status_code == 200
    with pytest.raises(LimitExceededError, match="prompts x n"):
        configure(None, RequestLimits(max_sequences=10))
        check_generate(["a"] * 4, 3, 1)


def test_http_is_closed_by_default_and_exposing_it_requires_the_key():
    committed = ["policy.yaml", "small_policy.yaml", "prm.yaml", "gpu.yaml"]
    for name in committed:
        config = load_serve_config([ROOT / "deployments" / name])
        assert config["http_options"]["host"] == "127.0.0.1", name
        assert not any(a.get("args", {}).get("require_api_key") for a in config["applications"])
    raw = (ROOT / "deployments" / "gpu.yaml").read_text().replace("host: 127.0.0.1", "host: 0.0.0.0")
    exposed = ROOT / "tests" / "_exposed.yaml"
    try:
        exposed.write_text(raw)
        config = load_serve_config([exposed])
    finally:
        exposed.unlink()
    assert all(a["args"]["require_api_key"] is True for a in config["applications"])


def _collect(deltas, **kw):
    async def gen():
        for d in deltas:
            yield d

    async def run():
        return [e async for e in events(gen(), **kw)]

    out = asyncio.run(run())
    assert out[-1] == "data: [DONE]\n\n" and all(e.startswith("data: ") and e.endswith("\n\n") for e in out)
    return [json.loads(e[6:]) for e in out[:-1]]


def test_stream_events_are_openai_chunks():
    deltas = [StreamDelta(0, 0, "He", None, 1, 7), StreamDelta(0, 1, "Hi", None, 1), StreamDelta(0, 0, "llo", "eos", 2),
              StreamDelta(0, 1, "!", "length", 1)]  # fmt: skip
    chat = _collect(deltas, n=2, model="m", chat=True, include_usage=True)
    assert {c["object"] for c in chat} == {"chat.completion.chunk"} and len({c["id"] for c in chat}) == 1
    assert chat[0]["choices"][0]["delta"] == {"role": "assistant", "content": "He"}
    assert chat[2]["choices"][0]["delta"] == {"content": "llo"} and chat[2]["choices"][0]["finish_reason"] == "stop"
    assert chat[3]["choices"][0]["finish_reason"] == "length" and chat[3]["choices"][0]["index"] == 1
    assert chat[-1]["choices"] == [] and chat[-1]["usage"]["prompt_tokens"] == 7
    assert chat[-1]["usage"]["completion_tokens"] == 5
    text = _collect([StreamDelta(1, 0, "x", "stop", 1)], n=3, model="m", chat=False, include_usage=False)
    assert text == [{**text[0], "choices": [{"index": 3, "text": "x", "finish_reason": "stop", "logprobs": None}]}]
    assert text[0]["object"] == "text_completion"
