"""Entrypoint: SPHERE pair generation with Ray Data over Serve.

Locally:   python -m jobs.generate --config recipes/generate_smollm2.yaml
Cluster:   ray job submit --working-dir . -- python -m jobs.generate --config recipes/generate_gpu.yaml
"""

from __future__ import annotations

import json
import logging
import sys

from sphere_ray.config import parse_config
from sphere_ray.generation.config import GenerateJobConfig
from sphere_ray.generation.job import run_generate_job


def main(argv: list[str] | None = None) -> int:
    """Parse the config, run the job, print the summary."""
    cfg = parse_config(GenerateJobConfig, argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run_generate_job(cfg)
    print(json.dumps(summary, indent=2))
    print(f"outputs in {cfg.output_dir}/ (pairs/, trees/, rejects/, manifest.json, summary.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
