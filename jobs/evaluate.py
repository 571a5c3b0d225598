"""Entrypoint: Pass@1 and self-correction accuracy on the math benchmarks (Serve + Ray Data).

Locally:   python -m jobs.evaluate --config recipes/eval_smollm2.yaml
Cluster:   ray job submit --working-dir . -- python -m jobs.evaluate --config recipes/eval_gpu.yaml
"""

from __future__ import annotations

import logging
import sys

from sphere_ray.config import parse_config
from sphere_ray.evaluation.config import EvalJobConfig
from sphere_ray.evaluation.job import run_eval_job
from sphere_ray.evaluation.report import markdown


def main(argv: list[str] | None = None) -> int:
    """Parse the config, evaluate, print the table."""
    cfg = parse_config(EvalJobConfig, argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run_eval_job(cfg)
    print(markdown(summary))
    print(f"outputs in {cfg.output_dir}/ (JSONL per model/benchmark, summary.json, report.md, pass_at_1.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
