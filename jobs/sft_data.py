"""Entrypoint: Dual-Phase SFT data (Phase 1): multi-turn self-verification dialogues with Ray Data over Serve.

Locally:   python -m jobs.sft_data --config recipes/sft_data_smollm2.yaml
Cluster:   ray job submit --working-dir . -- python -m jobs.sft_data --config recipes/sft_data_gpu.yaml
"""

from __future__ import annotations

import sys

from sphere_ray.cli import run_job, summary_text
from sphere_ray.dialogue.config import SftDataJobConfig
from sphere_ray.dialogue.job import run_sft_data_job


def main(argv: list[str] | None = None) -> int:
    """Parse the config, run the job, print the summary (:func:`sphere_ray.cli.run_job`)."""
    return run_job(
        SftDataJobConfig,
        run_sft_data_job,
        lambda cfg, summary: summary_text(
            summary, f"{cfg.output_dir}/ (sft/, sft_multiturn/, rejects/, problems/, manifest.json, summary.json)"
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
