"""Entrypoint: SFT (TRL SFTTrainer + PEFT LoRA) on Ray Train over the SFT data job's samples (Dual-Phase SFT).

Locally:   python -m jobs.train_sft --config recipes/sft_smollm2.yaml
Cluster:   ray job submit --working-dir . -- python -m jobs.train_sft --config recipes/sft_gpu.yaml
"""

from __future__ import annotations

import json
import logging
import sys

from sphere_ray.config import parse_config
from sphere_ray.training.config import SFTJobConfig
from sphere_ray.training.job import run_sft_job


def main(argv: list[str] | None = None) -> int:
    """Parse the config, train, print the summary."""
    cfg = parse_config(SFTJobConfig, argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run_sft_job(cfg)
    print(json.dumps({k: v for k, v in summary.items() if k != "lineage"}, indent=2, default=str))
    print(f"outputs in {cfg.output_dir}/ (adapter/, merged/, metrics.json, summary.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
