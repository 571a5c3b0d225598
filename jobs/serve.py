"""Entrypoint: deploy Serve apps from YAML on the cluster and keep them up (Ctrl-C tears them down).

python -m jobs.serve deployments/policy.yaml deployments/small_policy.yaml deployments/prm.yaml
python -m jobs.serve --detach --address auto deployments/gpu.yaml     # leave them running on a cluster
"""

from __future__ import annotations

import argparse
import logging
import sys
import time


def main(argv: list[str] | None = None) -> int:
    """Deploy the YAML files, print the apps, block until interrupted (or return with --detach)."""
    parser = argparse.ArgumentParser(description="Deploy sphere-ray Serve apps from YAML")
    parser.add_argument("configs", nargs="+", help="Serve YAML files (deployments/*.yaml)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: the job's or a new local one)")
    parser.add_argument("--detach", action="store_true", help="return once the apps are RUNNING")
    parser.add_argument("--timeout_s", type=float, default=1200.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ray import serve

    from sphere_ray.cluster import connect_ray
    from sphere_ray.serving.launch import deploy

    connect_ray(args.address, log_to_driver=True)
    handles = deploy(args.configs, timeout_s=args.timeout_s)
    print(f"running: {', '.join(handles)} (HTTP on the proxy, e.g. http://127.0.0.1:8000/<app>/v1/completions)")
    if args.detach:
        return 0
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
