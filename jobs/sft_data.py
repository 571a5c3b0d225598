"""Entrypoint: Dual-Phase SFT data (Phase 1): multi-turn self-verification dialogues with Ray Data over Serve.

Locally:   python -m jobs.sft_data --config recipes/sft_data_smollm2.yaml
Cluster:   ray job submit --working-dir . -- python -m jobs.sft_data --config recipes/sft_data_gpu.yaml
"""

from __future__ import annotations

import json
import logging
import sys

from sphere_ray.config import parse_config
from sphere_ray.dialogue.config import SftDataJobConfig
from sphere_ray.dialogue.job import run_sft_data_job


def main(argv: list[str] | None = None) -> int:
    """Parse the config, run the job, print the summary."""
    cfg = parse_config(SftDataJobConfig, argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run_sft_data_job(cfg)
    print(json.dumps(summary, indent=2))
    print(f"outputs in {cfg.output_dir}/ (sft/, sft_multiturn/, rejects/, problems/, manifest.json, summary.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
