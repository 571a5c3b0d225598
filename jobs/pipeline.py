"""Entrypoint: the whole SPHERE loop on one config (``sphere-ray run``).

Locally:   python -m jobs.pipeline --config recipes/pipeline_smollm2.yaml [--rounds 2]
Cluster:   ray job submit --working-dir . -- python -m jobs.pipeline --config recipes/pipeline_gpu.yaml
"""

from __future__ import annotations

import logging
import sys

from sphere_ray.config import parse_config
from sphere_ray.pipeline.config import PipelineConfig
from sphere_ray.pipeline.run import run_pipeline


def main(argv: list[str] | None = None) -> int:
    """Parse the config, run every stage, print where the report is."""
    cfg = parse_config(PipelineConfig, argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run_pipeline(cfg)
    for r in summary["rounds"]:
        print(f"round {r['round']}: {r['pairs']} pairs, trained model: {r['trained_model']}")
    print(f"report: {summary['report']}  ({summary['wall_seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
