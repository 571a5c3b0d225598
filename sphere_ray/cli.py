"""``sphere-ray``: one command line for every stage.

    sphere-ray serve    --config deployments/policy.yaml [more.yaml ...]   deploy Serve apps and keep them up
    sphere-ray generate --config recipes/generate_smollm2.yaml             SPHERE pairs (Ray Data over Serve)
    sphere-ray train    --config recipes/dpo_smollm2.yaml                  DPO (TRL + PEFT on Ray Train)
    sphere-ray sft-data --config recipes/sft_data_smollm2.yaml             Dual-Phase SFT data (multi-turn dialogues)
    sphere-ray train-sft --config recipes/sft_smollm2.yaml                 SFT (TRL + PEFT on Ray Train)
    sphere-ray evaluate --config recipes/eval_smollm2.yaml                 Pass@1 and self-correction
    sphere-ray run      --config recipes/pipeline_smollm2.yaml [--rounds K] all of it, then a report
    sphere-ray cluster  up|down|status|env [--workers 2 --gpus_per_worker 4]  a fake multi-node GPU cluster here

Each stage takes its recipe and ``--field value`` overrides (``sphere-ray <stage> --help``).
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["STAGES", "main"]

STAGES = {
    "serve": "jobs.serve",
    "generate": "jobs.generate",
    "train": "jobs.train_dpo",
    "sft-data": "jobs.sft_data",
    "train-sft": "jobs.train_sft",
    "evaluate": "jobs.evaluate",
    "run": "jobs.pipeline",
    "cluster": "jobs.cluster",
}
"""Subcommand -> entrypoint module (each has ``main(argv) -> int``)."""


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its stage's entrypoint."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STAGES:
        sys.stderr.write(__doc__ or "")
        if argv and argv[0] not in ("-h", "--help"):
            sys.stderr.write(f"\nunknown command {argv[0]!r}; one of {', '.join(STAGES)}\n")
            return 2
        return 0 if argv else 2
    return importlib.import_module(STAGES[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
