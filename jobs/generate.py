"""Entrypoint: SPHERE pair generation with Ray Data over Serve.

Locally:   python -m jobs.generate --config recipes/generate_smollm2.yaml
Cluster:   ray job submit --working-dir . -- python -m jobs.generate --config recipes/generate_gpu.yaml
"""

from __future__ import annotations

import sys

from sphere_ray.cli import run_job, summary_text
from sphere_ray.generation.config import GenerateJobConfig
from sphere_ray.generation.job import run_generate_job


def main(argv: list[str] | None = None) -> int:
    """Parse the config, run the job, print the summary (:func:`sphere_ray.cli.run_job`)."""
    return run_job(
        GenerateJobConfig,
        run_generate_job,
        lambda cfg, summary: summary_text(
            summary, f"{cfg.output_dir}/ (pairs/, trees/, rejects/, manifest.json, summary.json)"
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
