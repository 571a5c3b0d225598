"""Entrypoint: Pass@1 and self-correction accuracy on the math benchmarks (Serve + Ray Data).

Locally:   python -m jobs.evaluate --config recipes/eval_smollm2.yaml
Cluster:   ray job submit --working-dir . -- python -m jobs.evaluate --config recipes/eval_gpu.yaml
"""

from __future__ import annotations

import sys

from sphere_ray.cli import run_job
from sphere_ray.evaluation.config import EvalJobConfig
from sphere_ray.evaluation.job import run_eval_job
from sphere_ray.evaluation.report import markdown


def main(argv: list[str] | None = None) -> int:
    """Parse the config, run the job, print the summary (:func:`sphere_ray.cli.run_job`)."""
    return run_job(
        EvalJobConfig,
        run_eval_job,
        lambda cfg, summary: (
            markdown(summary)
            + f"\noutputs in {cfg.output_dir}/ (JSONL per model/benchmark, summary.json, report.md, pass_at_1.png)"
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
