"""The simulated engine (backend: sim): timing model, continuous batching, prefix cache, text, PRM."""

import asyncio
import statistics

import pytest

from sphere_ray.grading import extract_answer, is_correct
from sphere_ray.serving.engines import build_engine
from sphere_ray.serving.prm import build_prm
from sphere_ray.serving.schema import GenerateRequest, ScoreItem, ScoreRequest
from sphere_ray.sim.calibration import step_model
from sphere_ray.sim.engine import PrefixCache, SimEngine, SimOptions, SimScheduler
from sphere_ray.sim.text import continuation, p_right_of, sim_problems

POLICY = "Qwen/Qwen2.5-Math-7B-Instruct"


def _prompt(engine, problem, steps=()):
    root = engine.render_chat([{"role": "user", "content": f"Problem: {problem['problem']}"}])
    return root + "".join(s + "\n\n" for s in steps)


def test_calibration_is_in_the_published_range():
    """A 7B bf16 model on an A100: ~10 ms per decode step alone (~100 tok/s), prefill ~10k tok/s."""
    t = step_model(POLICY, "a100")
    assert 0.008 < t.step_s(1, 500, 0) < 0.014
    assert 5_000 < 1 / t.prefill_per_token_s < 20_000
    small = step_model("Qwen/Qwen2.5-Math-1.5B-Instruct", "a100")
    assert small.step_s(1, 500, 0) < t.step_s(1, 500, 0) / 3
    with pytest.raises(ValueError, match="sim device"):
        step_model(POLICY, "tpu9")


def test_prefix_cache_hits_whole_blocks_and_evicts_lru():
    cache = PrefixCache(capacity_blocks=4, block_size=4)  # 16 characters per block
    text = "x" * 16 * 3
    assert cache.lookup(text) == 0
    assert cache.lookup(text) == 12
    assert cache.lookup(text + "y" * 20) == 12  # a longer prompt reuses the shared prefix
    cache.lookup("z" * 16 * 4)  # four new blocks push the old ones out
    assert cache.lookup(text) == 0


def test_batched_requests_share_decode_steps():
    """Continuous batching: 32 concurrent requests take far less simulated time than 32 one after another."""

    async def run(concurrent):
        sched = SimScheduler(step_model(POLICY), SimOptions(compression=1e6))
        prompts = [f"prompt {i} " * 40 for i in range(32)]
        if concurrent:
            await asyncio.gather(*(sched.run(p, [100]) for p in prompts))
        else:
            for p in prompts:
                await sched.run(p, [100])
        return sched.sim_seconds

    together, apart = asyncio.run(run(True)), asyncio.run(run(False))
    assert together < apart / 10


def test_text_is_deterministic_and_steps_stop_at_blank_lines():
    problem = next(sim_problems(1, seed=3))
    engine = SimEngine(POLICY, "policy", {"compression": 1e6})
    prompt = _prompt(engine, problem)
    one = continuation(prompt, 5, 0, ["\n\n"], 256, 0.5)
    assert one == continuation(prompt, 5, 0, ["\n\n"], 256, 0.5)
    assert "\n\n" not in one[0] and one[1] in ("stop", "eos")
    whole, reason = continuation(prompt, 5, 0, [], 1024, 0.5)
    assert reason == "eos" and whole.count("\n\n") >= 2 and extract_answer(whole) is not None
    assert continuation(prompt, 5, 0, [], 3, 0.5)[1] == "length"


def test_right_answers_follow_p_right_and_route_to_every_stage():
    problems = list(sim_problems(300, seed=1))
    mean = statistics.mean(p_right_of(p["problem"], 0.5) for p in problems)
    assert 0.4 < mean < 0.6
    engine = SimEngine(POLICY, "policy", {"compression": 1e6, "p_right": 0.5})
    outcomes = set()
    for p in problems[:60]:
        pair = [is_correct(continuation(_prompt(engine, p), s, 0, [], 1024, 0.5)[0], p["answer"]) for s in (1, 2)]
        outcomes.add(tuple(sorted(pair)))
    assert outcomes == {(False, False), (False, True), (True, True)}  # stages 2, 1 and 3


def test_engine_reports_cache_hits_and_simulated_throughput():
    engine = build_engine("sim", POLICY, "policy", options={"compression": 1e6})
    problem = next(sim_problems(1))
    request = GenerateRequest(prompts=[_prompt(engine, problem)] * 2, n=4, max_tokens=128, stop=["\n\n"], seed=0)
    first = asyncio.run(engine.generate(request))
    assert len(first.outputs) == 2 and all(len(o) == 4 for o in first.outputs)
    stats = engine.stats()
    assert stats["cached_prompt_tokens"] > 0 and 0 < stats["prefix_cache_hit_rate"] < 1
    assert stats["sim_seconds"] > 0 and stats["sim_tokens_per_s"] > 0


def test_sim_prm_scores_right_answers_high():
    prm = build_prm("sim", model="Qwen/Qwen2.5-Math-PRM-7B", name="prm", compression=1e6, noise=0.0)
    problem = next(sim_problems(1))
    right = ["Step 1: add.", f"Step 2: The final answer is \\boxed{{{problem['answer']}}}."]
    wrong = ["Step 1: add.", f"Step 2: The final answer is \\boxed{{{int(problem['answer']) + 1}}}."]
    request = ScoreRequest(items=[ScoreItem(question=problem["problem"], steps=s) for s in (right, wrong)])
    scores = asyncio.run(prm.score(request)).scores
    assert len(scores[0]) == 2 and scores[0][-1] > 0.8 > 0.3 > scores[1][-1]


def test_bad_sim_options_name_the_field():
    with pytest.raises(ValueError, match="compression"):
        SimEngine(POLICY, "policy", {"compression": 0})
    with pytest.raises(ValueError, match="unknown"):
        SimEngine(POLICY, "policy", {"unknown": 1})


def test_one_override_runs_the_gpu_yaml_on_the_sim_engine():
    from pathlib import Path

    from sphere_ray.serving.apps import GenerationAppArgs, PRMAppArgs
    from sphere_ray.serving.launch import load_serve_config

    gpu = Path(__file__).resolve().parents[2] / "deployments" / "gpu.yaml"
    config = load_serve_config([gpu], sim={"compression": 50})
    apps = {a["name"]: a for a in config["applications"]}
    assert apps["policy"]["args"]["backend"] == apps["small_policy"]["args"]["backend"] == "sim"
    assert apps["prm"]["args"]["kind"] == "sim" and apps["prm"]["args"]["options"] == {"compression": 50}
    for app in apps.values():  # placement and autoscaling are the YAML's
        assert app["deployments"][0]["ray_actor_options"]["num_gpus"] == 1
        schema = PRMAppArgs if app["name"] == "prm" else GenerationAppArgs
        schema.model_validate(app["args"])


def test_generate_config_checks_sim_options():
    from sphere_ray.config import parse_config
    from sphere_ray.generation.config import GenerateJobConfig

    cfg = parse_config(GenerateJobConfig, ["--sim", "{compression: 100, p_right: 0.3}"])
    assert cfg.sim == {"compression": 100, "p_right": 0.3}
    with pytest.raises(ValueError, match="sim"):
        GenerateJobConfig(sim={"compression": -1})
