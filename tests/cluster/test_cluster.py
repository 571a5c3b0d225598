"""The fake multi-node GPU cluster (``sphere-ray cluster``): a generation job sent by ``ray job submit``.

A head plus 2 worker nodes with 3 fake GPUs each; ``deployments/gpu.yaml`` on the simulated engine with
policy and PRM at 2 replicas (5 GPU replicas in all), 200 problems. The cluster is its own Ray (own temp
dir, ports and token), next to the session's; ``down`` stops only its processes.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sphere_ray.cluster import FakeClusterConfig, _cluster_procs, _free_port
from sphere_ray.generation.store import OutputStore
from sphere_ray.sim.text import sim_problems

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sphere_ray.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize(
    "override, field",
    [({"workers": -1}, "workers"), ({"gpus_per_worker": 0}, "gpus_per_worker"), ({"port": 80}, "port"),
     ({"serve_port": 6390}, "port, dashboard_port and serve_port"), ({"temp_dir": "/tmp/" + "x" * 60}, "temp_dir")],
)  # fmt: skip
def test_config_errors_name_the_field(override, field):
    with pytest.raises(ValueError, match=field):
        FakeClusterConfig(**override)


def test_cli_errors_are_one_line():
    run = _cli("cluster", "status", "--port", str(_free_port()))
    assert run.returncode == 1 and "no fake cluster at port" in run.stderr
    run = _cli("cluster", "sideways")
    assert run.returncode == 2 and "sphere-ray cluster up" in run.stderr


def _gpu_yaml(path: Path) -> Path:
    """deployments/gpu.yaml with policy and PRM at 2 replicas (autoscaling pinned: the test counts replicas)."""
    config = yaml.safe_load((ROOT / "deployments" / "gpu.yaml").read_text())
    for app in config["applications"]:
        if app["name"] != "small_policy":
            app["deployments"][0]["autoscaling_config"].update(min_replicas=2, max_replicas=2)
    path.write_text(yaml.safe_dump(config))
    return path


def test_ray_job_submit_to_fake_cluster(tmp_path):
    port = _free_port()
    names = ["--port", str(port), "--dashboard_port", str(_free_port()), "--serve_port", str(_free_port())]
    cfg = FakeClusterConfig(port=port)
    up = _cli("cluster", "up", "--workers", "2", "--gpus_per_worker", "3", *names)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        env_lines = _cli("cluster", "env", "--port", str(port)).stdout.splitlines()
        env = {**os.environ, **dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in env_lines)}
        assert env["RAY_AUTH_MODE"] == "token" and Path(env["RAY_AUTH_TOKEN_PATH"]).is_file()
        problems = list(sim_problems(200, seed=21))
        path = tmp_path / "problems.jsonl"
        path.write_text("".join(json.dumps(p) + "\n" for p in problems))
        out, serve_yaml = tmp_path / "out", _gpu_yaml(tmp_path / "gpu.yaml")
        job = subprocess.run(
            [str(Path(sys.executable).with_name("ray")), "job", "submit", "--working-dir", str(ROOT), "--",
             "python", "-m", "jobs.generate", "--config", "recipes/generate_gpu.yaml", "--sim", "{compression: 1000}",
             "--problems", str(path), "--output_dir", str(out), "--serve_configs", f"[{serve_yaml}]",
             "--num_actors", "2", "--problems_in_flight", "32", "--max_depth", "8", "--max_step_tokens", "64",
             "--num_candidates", "4"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        assert job.returncode == 0 and "succeeded" in job.stdout + job.stderr, (job.stdout + job.stderr)[-4000:]
        store = OutputStore(str(out))
        trees = store.read("trees").column("problem_id").to_pylist()
        assert sorted(trees) == sorted(p["id"] for p in problems)  # every problem exactly once
        assert store.read("rejects").num_rows == 0 and set(store.read("pairs").column("stage").to_pylist()) == {1, 2, 3}
        state = json.loads(_cli("cluster", "status", "--port", str(port)).stdout)
        (tmp_path / "state.json").write_text(json.dumps(state, indent=2))  # for a failure's post-mortem
        _check_placement_and_affinity(state, len(problems))
    finally:
        down = _cli("cluster", "down", "--port", str(port))
        assert down.returncode == 0, down.stderr[-2000:]
    assert _cluster_procs(cfg.temp_dir, port) == []  # only this cluster's processes, and all of them


def _check_placement_and_affinity(state: dict, problems: int) -> None:
    """Replicas sit on the fake-GPU workers, spread over both; each problem stayed on one replica."""
    workers = {n["node_id"] for n in state["nodes"] if not n["head"] and n["gpus"] == 3}
    assert len(workers) == 2 and state["alive"], state["nodes"]
    replicas = state["replicas"]
    assert {len(replicas[a]) for a in ("policy", "prm")} == {2} and len(replicas["small_policy"]) == 1, replicas
    nodes = [r["node_id"] for reps in replicas.values() for r in reps]
    assert set(nodes) == workers, (nodes, workers)  # num_gpus: 1 placed them on GPU nodes, both used
    for app in ("policy", "prm"):
        sessions = [r["sessions"] for r in replicas[app]]
        assert min(sessions) > 0, (app, sessions)  # load spread over both replicas
        # The router hands a request to the next replica when the primary's queue probe is slow
        # (a loaded 2-core machine): a few problems are counted on two replicas, none is lost.
        assert problems <= sum(sessions) <= problems * 1.05, (app, sessions)
