"""Entrypoint: a fake multi-node GPU cluster on this machine (:mod:`sphere_ray.cluster`).

sphere-ray cluster up [--workers 2 --gpus_per_worker 4 --port 6390]   start it (prints the env to use it)
eval "$(sphere-ray cluster env)"                                       RAY_ADDRESS + token for ray job submit
sphere-ray cluster status                                              nodes, GPUs, alive
sphere-ray cluster down                                                stop its processes (only this cluster's)

A cluster is named by its ``--port``: pass the same ``--port`` (or ``--temp_dir``) to every command.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys

from sphere_ray.cluster import FakeClusterConfig, cluster_env, down, read_state, status, up
from sphere_ray.config import parse_config

ACTIONS = ("up", "down", "status", "env")


def main(argv: list[str] | None = None) -> int:
    """``up|down|status|env`` then ``FakeClusterConfig`` overrides."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ACTIONS:
        sys.stderr.write(__doc__ or "")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    action, cfg = argv[0], parse_config(FakeClusterConfig, argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if action == "up":
        state = up(cfg)
        gpus = sum(n["gpus"] for n in state["nodes"])
        print(f"fake cluster up: {len(state['nodes'])} nodes, {gpus:g} fake GPUs, logs in {state['temp_dir']}")
        print(f"jobs: {state['dashboard']}  serve: {state['serve']}  ray.init(address={state['address']!r})")
        print(f'use it:  eval "$(sphere-ray cluster env --port {cfg.port})"')
        return 0
    if action == "down":
        print(f"stopped {down(cfg)} processes of the cluster at port {cfg.port}")
        return 0
    state = read_state(cfg) if action == "env" else status(cfg)
    if state is None:
        sys.stderr.write(f"no fake cluster at port {cfg.port} ({cfg.temp_dir}/cluster.json missing)\n")
        return 1
    if action == "env":
        print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in cluster_env(state).items()))
        return 0
    print(json.dumps(state, indent=2))
    return 0 if state["alive"] else 1


if __name__ == "__main__":
    sys.exit(main())
