"""``sphere-ray``: one command line for every stage.

    sphere-ray serve    --config deployments/policy.yaml [more.yaml ...]   deploy Serve apps and keep them up
    sphere-ray generate --config recipes/generate_smollm2.yaml             SPHERE pairs (Ray Data over Serve)
    sphere-ray train    --config recipes/dpo_smollm2.yaml                  DPO (TRL + PEFT on Ray Train)
    sphere-ray sft-data --config recipes/sft_data_smollm2.yaml             Dual-Phase SFT data (multi-turn dialogues)
    sphere-ray train-sft --config recipes/sft_smollm2.yaml                 SFT (TRL + PEFT on Ray Train)
    sphere-ray evaluate --config recipes/eval_smollm2.yaml                 Pass@1 and self-correction
    sphere-ray run      --config recipes/pipeline_smollm2.yaml [--rounds K] all of it, then a report
    sphere-ray cluster  up|down|status|env [--workers 2 --gpus_per_worker 4]  a fake multi-node GPU cluster here

Each stage takes its recipe and ``--field value`` overrides (``sphere-ray <stage> --help``). A config
mistake (unknown key, bad value, missing file) prints one line naming the field and exits 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["STAGES", "main", "run_job", "summary_text"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

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


def run_job(
    config: type | Callable[[list[str]], type],
    run: Callable[[Any], dict[str, Any]],
    describe: Callable[[Any, dict[str, Any]], str],
    argv: list[str] | None = None,
) -> int:
    """The one way every entrypoint runs: parse the config, set up logging, run, print what came out.

    Args:
        config: the job's config class, or a function of ``argv`` that chooses one (``sphere-ray run``'s method).
        run: config -> summary.
        describe: (config, summary) -> the text printed at the end.
        argv: the arguments (default ``sys.argv[1:]``); ``--debug`` anywhere shows tracebacks.

    Returns:
        the summary's ``exit_code`` (default 0), or 2 after one line on stderr for a ``ValueError`` (a bad
        config value, an unusable input) or an ``OSError`` (a missing file, a full or read-only disk).
    """
    from sphere_ray.config import parse_config

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        cfg = parse_config(config if isinstance(config, type) else config(argv), argv)
        logging.basicConfig(level=_level(getattr(cfg, "log_level", None)), format=LOG_FORMAT)
        summary = run(cfg)
    except (ValueError, OSError) as e:  # a user's mistake or the machine's state (a full disk), not a bug
        if debug:
            raise
        message = " ".join(str(e).split())  # one line, however the error was written
        sys.stderr.write(f"sphere-ray: error: {message} (--debug: traceback)\n")
        return 2
    if text := describe(cfg, summary):
        sys.stdout.write(text + "\n")
    return int(summary.get("exit_code", 0))


def summary_text(summary: dict[str, Any], outputs: str, drop: tuple[str, ...] = ()) -> str:
    """A job's closing text: its summary as JSON (without the ``drop`` keys), then where its outputs are."""
    shown = {k: v for k, v in summary.items() if k not in drop}
    return f"{json.dumps(shown, indent=2, default=str)}\noutputs in {outputs}"


def _level(name: Any) -> int:
    """A logging level from a config's ``log_level`` (INFO when it is not one, e.g. TRL's ``passive``)."""
    level = logging.getLevelName(str(name).upper())
    return level if isinstance(level, int) else logging.INFO


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
