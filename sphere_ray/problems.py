"""Loading problems from JSONL or Parquet, with bad rows set aside as rejects.

A row is ``{"id", "problem", "answer", ...}`` (the format of the bundled benchmarks). Bad rows are
never fatal: each comes back as a :class:`Reject` with a reason, and every good row is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sphere_ray.search.types import Problem

__all__ = ["BUNDLED", "LoadResult", "Reject", "iter_problems", "load_problems", "validate_rows"]

log = logging.getLogger(__name__)

MAX_PROBLEM_CHARS = 20_000
MAX_ANSWER_CHARS = 1_000

BUNDLED = {
    "gsm8k_train_sample": "gsm8k_train_sample.jsonl",
    "gsm8k_test": "gsm8k_test.jsonl",
    "math500": "math500.jsonl",
    "aime24": "aime24.jsonl",
    "amc23": "amc23.jsonl",
    "olympiadbench": "olympiadbench.jsonl",
    "easy_train": "easy_train.jsonl",
    "easy_test": "easy_test.jsonl",
}
"""Bundled problem sets (``sphere_ray/data/``, see ``ATTRIBUTION.md``): name -> file."""
"""Problem sets shipped inside the package (see ``sphere_ray/data/ATTRIBUTION.md``)."""


@dataclass(frozen=True)
class Reject:
    """A row that was not used, and why.

    Attributes:
        source: file the row came from.
        row: 0-based row (line) number in that file.
        id: the row's id if it had a readable one, else None.
        reason: why it was rejected (e.g. ``empty answer``, ``duplicate id``).
        raw: the row as text, cut to 2,000 characters.
    """

    source: str
    row: int
    id: str | None
    reason: str
    raw: str


@dataclass
class LoadResult:
    """Good problems and rejected rows, in file order."""

    problems: list[Problem] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def load_problems(spec: str, limit: int | None = None) -> LoadResult:
    """Load problems from a bundled set name, a ``.jsonl`` file, or a ``.parquet`` file/folder.

    Args:
        spec: ``gsm8k_train_sample`` (bundled) or a local path (``.jsonl``/``.json`` or ``.parquet``).
        limit: keep at most this many good problems (rejects are always all reported).

    Raises:
        ValueError: the file does not exist or its type is unknown.
    """
    result = LoadResult()
    for item in iter_problems(spec, limit):
        (result.rejects if isinstance(item, Reject) else result.problems).append(item)
    log.info("loaded %d problems (%d rejected) from %s", len(result.problems), len(result.rejects), spec)
    return result


def iter_problems(spec: str, limit: int | None = None) -> Iterator[Problem | Reject]:
    """Stream ``spec``'s rows as problems and rejects, in file order, reading the file lazily.

    Memory is O(distinct ids) (for duplicate detection), never O(file): JSONL is read in 1 MiB chunks and
    Parquet one record batch at a time. After ``limit`` good problems the rest of the file is still read,
    so that every reject is reported, but no further problem is yielded.

    Raises:
        ValueError: the file does not exist or its type is unknown (raised before the first item).
    """
    return _first_problems(_validate(_read_rows(spec), source=spec), limit)


def _first_problems(items: Iterator[Problem | Reject], limit: int | None) -> Iterator[Problem | Reject]:
    kept = 0
    for item in items:
        if isinstance(item, Problem):
            if limit is not None and kept >= limit:
                continue
            kept += 1
        yield item


def _read_rows(spec: str) -> Iterator[tuple[int, Any]]:
    if spec in BUNDLED:
        return _jsonl_rows(resources.files("sphere_ray.data").joinpath(BUNDLED[spec]).open("rb"))
    if "://" in spec:
        return _read_uri(spec)
    path = Path(spec)
    if not path.exists():
        raise ValueError(f"problems: {spec!r} is neither a bundled set ({sorted(BUNDLED)}) nor an existing path")
    if path.suffix in (".jsonl", ".json"):
        return _jsonl_rows(path.open("rb"))
    if path.suffix == ".parquet" or path.is_dir():
        return _parquet_rows(str(path), None)
    raise ValueError(f"problems: unknown file type {path.suffix!r} for {spec!r} (use .jsonl or .parquet)")


def _read_uri(uri: str) -> Iterator[tuple[int, Any]]:
    """Read from any pyarrow filesystem URI (``s3://``, ``gs://``, ``hdfs://``, ``file://``)."""
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        info = fs.get_file_info(path)
    except Exception as e:
        raise ValueError(f"problems: cannot open {uri!r}: {e}") from e
    if info.type == pafs.FileType.NotFound:
        raise ValueError(f"problems: {uri!r} does not exist")
    if path.endswith((".jsonl", ".json")):
        return _jsonl_rows(fs.open_input_stream(path))
    if path.endswith(".parquet") or info.type == pafs.FileType.Directory:
        return _parquet_rows(path, fs)
    raise ValueError(f"problems: unknown file type for {uri!r} (use .jsonl or .parquet)")


def _parquet_rows(path: str, fs: Any) -> Iterator[tuple[int, Any]]:
    """``(row_no, row)`` of a Parquet file or folder (hive partitions), one record batch at a time."""
    import pyarrow.dataset as pads

    dataset = pads.dataset(path, format="parquet", filesystem=fs, partitioning="hive")
    row_no = 0
    for batch in dataset.to_batches(batch_size=4096, use_threads=False):
        for row in batch.to_pylist():
            yield row_no, row
            row_no += 1


def _lines(stream: Any, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The ``\n``-separated lines of a binary stream, read ``chunk`` bytes at a time; closes the stream."""
    with stream:
        rest = b""
        while data := stream.read(chunk):
            *lines, rest = (rest + data).split(b"\n")
            yield from lines
        yield rest


def _jsonl_rows(stream: Any) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_no, row)``; a line that is not UTF-8 JSON yields ``(line_no, _Bad(reason, text))``."""
    for i, line in enumerate(_lines(stream)):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            yield i, _Bad(f"not valid UTF-8 ({e.reason} at byte {e.start})", line.decode("utf-8", "replace"))
            continue
        try:
            yield i, json.loads(text)
        except json.JSONDecodeError as e:
            yield i, _Bad(f"not valid JSON ({e.msg})", text)


@dataclass(frozen=True)
class _Bad:
    reason: str
    text: str


def validate_rows(rows: Iterable[tuple[int, Any]], source: str) -> LoadResult:
    """Split ``(row_no, row)`` pairs into problems and rejects (duplicate ids after the first)."""
    result = LoadResult()
    for item in _validate(rows, source):
        (result.rejects if isinstance(item, Reject) else result.problems).append(item)
    return result


def _validate(rows: Iterable[tuple[int, Any]], source: str) -> Iterator[Problem | Reject]:
    seen: set[str] = set()
    for row_no, row in rows:
        problem, reason = _to_problem(row, source)
        if problem is not None and problem.id in seen:
            problem, reason = None, f"duplicate id {problem.id!r}"
        if problem is None:
            yield Reject(source, row_no, _row_id(row), reason, _raw(row))
            continue
        seen.add(problem.id)
        yield problem


def _to_problem(row: Any, source: str) -> tuple[Problem | None, str]:
    if isinstance(row, _Bad):
        return None, row.reason
    if not isinstance(row, dict):
        return None, f"row is a {type(row).__name__}, not an object"
    for key, limit in (("problem", MAX_PROBLEM_CHARS), ("answer", MAX_ANSWER_CHARS)):
        value = row.get(key)
        if value is None:
            return None, f"missing {key}"
        if not isinstance(value, str):
            return None, f"{key} is a {type(value).__name__}, not a string"
        if not value.strip():
            return None, f"empty {key}"
        if len(value) > limit:
            return None, f"{key} too long ({len(value)} chars > {limit})"
    pid = row.get("id")
    if pid is not None and (not isinstance(pid, str | int) or isinstance(pid, bool) or not str(pid).strip()):
        return None, f"id is not a non-empty string ({pid!r})"
    pid = str(pid) if pid is not None else "sha-" + hashlib.sha256(row["problem"].encode()).hexdigest()[:16]
    level = row.get("level")
    return Problem(
        id=pid,
        problem=row["problem"].strip(),
        answer=row["answer"].strip(),
        source=str(row.get("source") or source),
        level=level if isinstance(level, int) and not isinstance(level, bool) else None,
        subject=row.get("subject") if isinstance(row.get("subject"), str) else None,
        solution=row["solution"].strip() if isinstance(row.get("solution"), str) and row["solution"].strip() else None,
    ), ""


def _row_id(row: Any) -> str | None:
    if isinstance(row, dict) and isinstance(row.get("id"), str | int):
        return str(row["id"])
    return None


def _raw(row: Any) -> str:
    text = row.text if isinstance(row, _Bad) else json.dumps(row, default=str, ensure_ascii=False)
    return text[:2_000]
