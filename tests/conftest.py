"""Session-wide fixtures: one local Ray cluster and one set of Serve apps for the whole test run.

A vLLM Serve app takes ~2 minutes to come up on this CPU, so every app is deployed once, together
(`deployments/*.yaml` plus `tests/serve_test_apps.yaml`), with tiny REAL models swapped in by overrides.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_policy_path(tmp_path_factory):
    from tiny_models import build_tiny_qwen2

    return str(build_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "qwen2"))


@pytest.fixture(scope="session")
def tiny_prm_path(tmp_path_factory):
    from tiny_models import build_tiny_qwen2_prm

    return str(build_tiny_qwen2_prm(tmp_path_factory.mktemp("tiny") / "qwen2_prm"))


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    from sphere_ray.cluster import connect_ray

    connect_ray(num_cpus=8, quiet=True)
    yield ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def serve_apps(ray_cluster, tiny_policy_path, tiny_prm_path):
    """policy: SmolLM2 on vLLM (deployments/policy.yaml as committed); small_policy: tiny Qwen2 on vLLM;
    prm: tiny Qwen2 PRM on vLLM's pooling runner; plus the tiny transformers-backend apps."""
    from sphere_ray.serving.launch import deploy_config, load_serve_config

    paths = [ROOT / "deployments" / f for f in ("policy.yaml", "small_policy.yaml", "prm.yaml")]
    paths.append(ROOT / "tests" / "serve_test_apps.yaml")
    vllm_kwargs = {"dtype": "float32", "enforce_eager": True, "max_model_len": 1024}
    overrides = {
        "small_policy": {"model": tiny_policy_path, "served_model_name": "tiny-qwen2"},
        "prm": {
            "kind": "qwen_prm",
            "model": tiny_prm_path,
            "options": {"engine": "vllm", "engine_kwargs": vllm_kwargs},
        },
        "tiny_hf": {"model": tiny_policy_path, "served_model_name": "tiny-qwen2-hf"},
        "prm_qwen_hf": {"model": tiny_prm_path},
        "prm_judge": {"model": tiny_policy_path},
        "prm_judge_vllm": {"model": tiny_policy_path},
        "prm_judge_hf_app": {"model": tiny_policy_path},
    }
    # next to the apps already running (the sim apps, when a test asked for them first)
    return deploy_config(load_serve_config(paths, overrides), timeout_s=1200, keep_running=True)


@pytest.fixture(scope="session")
def sim_apps(ray_cluster):
    """policy (2 replicas), small policy and PRM on the simulated engine, added next to any running apps."""
    from sphere_ray.serving.launch import deploy_config, load_serve_config

    config = load_serve_config([ROOT / "tests" / "serve_sim_apps.yaml"])
    return deploy_config(config, timeout_s=300, keep_running=True)
