"""Entrypoint: a fake multi-node GPU cluster on this machine (:mod:`sphere_ray.cluster`).

sphere-ray cluster up [--workers 2 --gpus_per_worker 4 --port 6390]   start it (prints the env to use it)
eval "$(sphere-ray cluster env)"                                       RAY_ADDRESS + token for ray job submit
sphere-ray cluster status                                              nodes, GPUs, alive
sphere-ray cluster down                                                stop its processes (only this cluster's)

A cluster is named by its ``--port``: pass the same ``--port`` (or ``--temp_dir``) to every command.
"""

from __future__ import annotations

import json
import shlex
import sys

from sphere_ray.cli import run_job
from sphere_ray.cluster import FakeClusterConfig, cluster_env, down, read_state, status, up

ACTIONS = ("up", "down", "status", "env")


def main(argv: list[str] | None = None) -> int:
    """``up|down|status|env`` then ``FakeClusterConfig`` overrides (:func:`sphere_ray.cli.run_job`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ACTIONS:
        sys.stderr.write(__doc__ or "")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    action = argv[0]
    return run_job(FakeClusterConfig, lambda cfg: _act(action, cfg), lambda cfg, out: out["text"], argv[1:])


def _act(action: str, cfg: FakeClusterConfig) -> dict:
    """Do ``action``; ``{"text": what to print, "exit_code": 0 or 1}``."""
    if action == "up":
        state = up(cfg)
        gpus = sum(n["gpus"] for n in state["nodes"])
        text = (f"fake cluster up: {len(state['nodes'])} nodes, {gpus:g} fake GPUs, logs in {state['temp_dir']}\n"
                f"jobs: {state['dashboard']}  serve: {state['serve']}  ray.init(address={state['address']!r})\n"
                f'use it:  eval "$(sphere-ray cluster env --port {cfg.port})"')  # fmt: skip
        return {"text": text, "exit_code": 0}
    if action == "down":
        return {"text": f"stopped {down(cfg)} processes of the cluster at port {cfg.port}", "exit_code": 0}
    state = read_state(cfg) if action == "env" else status(cfg)
    if state is None:
        sys.stderr.write(f"no fake cluster at port {cfg.port} ({cfg.temp_dir}/cluster.json missing)\n")
        return {"text": "", "exit_code": 1}
    if action == "env":
        return {
            "text": "\n".join(f"export {k}={shlex.quote(v)}" for k, v in cluster_env(state).items()),
            "exit_code": 0,
        }
    return {"text": json.dumps(state, indent=2), "exit_code": 0 if state["alive"] else 1}


if __name__ == "__main__":
    sys.exit(main())
