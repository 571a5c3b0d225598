"""Entrypoint: SPHERE search on a problem file, in process (``python -m jobs.search --config ...``)."""

from __future__ import annotations

import json
import logging
import sys

from sphere_ray.config import parse_config
from sphere_ray.search_job import SearchJobConfig, run_search_job


def main(argv: list[str] | None = None) -> int:
    """Parse the config, run the job, print the summary."""
    cfg = parse_config(SearchJobConfig, argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run_search_job(cfg)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    print(f"outputs in {cfg.output_dir}/ (pairs.parquet, trees.jsonl, rejects.jsonl, summary.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
