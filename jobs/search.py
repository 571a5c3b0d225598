"""Entrypoint: SPHERE search on a problem file, in process (``python -m jobs.search --config ...``)."""

from __future__ import annotations

import sys

from sphere_ray.cli import run_job, summary_text
from sphere_ray.search_job import SearchJobConfig, run_search_job


def main(argv: list[str] | None = None) -> int:
    """Parse the config, run the job, print the summary (:func:`sphere_ray.cli.run_job`)."""
    return run_job(
        SearchJobConfig,
        run_search_job,
        lambda cfg, summary: summary_text(
            summary, f"{cfg.output_dir}/ (pairs.parquet, trees.jsonl, rejects.jsonl, summary.json)", ("config",)
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
