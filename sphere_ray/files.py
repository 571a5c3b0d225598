"""Atomic local file writes: a temporary sibling renamed into place, so readers never see a partial file."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["write_json", "write_jsonl", "write_text"]


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def write_json(path: str | Path, value: Any) -> Path:
    """``value`` as indented JSON (non-JSON values via ``str``), atomically."""
    return write_text(path, json.dumps(value, indent=2, default=str))


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """One JSON object per line, atomically."""
    return write_text(path, "".join(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in rows))
