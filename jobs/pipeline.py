"""Entrypoint: a whole method on one config (``sphere-ray run``): SPHERE (default) or Dual-Phase SFT.

Locally:   python -m jobs.pipeline --config recipes/pipeline_smollm2.yaml [--rounds 2]
           python -m jobs.pipeline --config recipes/dual_phase_smollm2.yaml     (method: dual_phase)
Cluster:   ray job submit --working-dir . -- python -m jobs.pipeline --config recipes/pipeline_gpu.yaml
"""

from __future__ import annotations

import sys

from sphere_ray.cli import run_job
from sphere_ray.pipeline.methods import config_class, run_method


def main(argv: list[str] | None = None) -> int:
    """Parse the config of the chosen method, run every stage, print where the report is."""
    return run_job(config_class, run_method, _describe, argv)


def _describe(cfg: object, summary: dict) -> str:
    lines = [f"round {r['round']}: {r['pairs']} pairs, trained model: {r['trained_model']}"
             for r in summary.get("rounds", [])]  # fmt: skip
    lines += [f"{name}: {model}" for name, model in summary.get("models", {}).items()]
    return "\n".join([*lines, f"report: {summary['report']}  ({summary['wall_seconds'] / 60:.1f} min)"])


if __name__ == "__main__":
    sys.exit(main())
