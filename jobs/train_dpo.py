"""Entrypoint: DPO (TRL + PEFT LoRA) on Ray Train over the generation job's pairs.

Locally:   python -m jobs.train_dpo --config recipes/dpo_smollm2.yaml
Cluster:   ray job submit --working-dir . -- python -m jobs.train_dpo --config recipes/dpo_gpu.yaml
"""

from __future__ import annotations

import sys

from sphere_ray.cli import run_job, summary_text
from sphere_ray.training.config import DPOJobConfig
from sphere_ray.training.job import run_dpo_job


def main(argv: list[str] | None = None) -> int:
    """Parse the config, run the job, print the summary (:func:`sphere_ray.cli.run_job`)."""
    return run_job(
        DPOJobConfig,
        run_dpo_job,
        lambda cfg, summary: summary_text(
            summary, f"{cfg.output_dir}/ (adapter/, merged/, metrics.json, summary.json)", ("lineage",)
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
