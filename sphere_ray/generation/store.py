"""A job's output folder: atomic commits keyed by problem id, resume, lineage.

One store for every job that works problem by problem; a :class:`Layout` names its tables. The
generation job's (``GENERATION``; local path or any pyarrow filesystem URI, e.g. ``s3://bucket/run``)::

    pairs/part-<commit>.parquet     the pairs (sphere_ray.pairs.PAIR_SCHEMA)
    trees/part-<commit>.parquet     one row per finished problem: stage, outcome, tree JSON, counters
    rejects/part-<commit>.parquet   problems that failed after retries (reason = the error)
    rejects/input.parquet           input rows that were not problems (reason = why)
    queue/part-<n>.parquet          this run's problems still to search (QUEUE_SCHEMA), staged at start
    manifest.json                   config, models, seeds, package versions, git SHA
    summary.json                    written at the end of each run

Commit protocol: a commit writes its data parts (pairs) and rejects part first and its marker part
(trees: one row per finished problem) last, each to a temporary name renamed into place. A commit
exists iff its marker part exists (possibly empty), so part files without one are leftovers of a
killed run: readers skip them and the next start deletes them. A problem is done iff its id is in a
committed marker or rejects part; a rerun skips done problems, so no problem is ever written twice.

Storage faults: a commit that cannot be written (a read-only or full disk) removes what it wrote and raises
an ``OSError`` naming the path, so nothing half-committed is ever read. On resume every committed part is
read back; a commit with a damaged part (truncated, corrupted, unreadable) is moved whole to
``quarantine/<table>/`` with its reason in ``quarantine/reasons.jsonl``, and its problems are done again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import posixpath
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sphere_ray.pairs import PAIR_SCHEMA

__all__ = ["GENERATION", "QUEUE_SCHEMA", "REJECT_SCHEMA", "TREE_SCHEMA", "Batch", "Layout", "OutputStore"]

log = logging.getLogger(__name__)

_WRITE_ERRORS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                 errno.EACCES: "permission denied", errno.EDQUOT: "the disk quota is used up"}  # fmt: skip

TREE_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("stage", pa.int8(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("num_pairs", pa.int32(), nullable=False),
        pa.field("generated_tokens", pa.int64(), nullable=False),
        pa.field("step_generations", pa.int64(), nullable=False),
        pa.field("prm_calls", pa.int64(), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("policy_seconds", pa.float64(), nullable=False),
        pa.field("prm_seconds", pa.float64(), nullable=False),
        pa.field("attempts", pa.int32(), nullable=False),
        pa.field("trees_json", pa.string(), nullable=False),
        # added later: older parts lack it (read as null; not a damaged part, see _damage)
        pa.field("call_retries", pa.int32(), metadata={"optional": "true"}),
    ]
)
"""One row per finished problem; ``trees_json`` holds every explored tree (see ``SearchTree.to_dict``)."""

REJECT_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("row", pa.int64()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
    ]
)
"""Input rows that were not problems (``problem_id`` may be null), and problems that failed."""

QUEUE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("problem", pa.string(), nullable=False),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("level", pa.int64()),
        pa.field("subject", pa.string()),
        pa.field("solution", pa.string()),
    ]
)
"""A validated problem waiting to be searched (the fields of ``sphere_ray.search.types.Problem``)."""


@dataclass(frozen=True)
class Layout:
    """The tables of one job's output folder.

    Attributes:
        marker: the table with one row per finished problem (``problem_id`` column); its part marks a commit.
        tables: every committed table's schema, the marker's and ``rejects`` included.
    """

    marker: str
    tables: Mapping[str, pa.Schema]

    @property
    def data(self) -> list[str]:
        """The tables written before the marker (``rejects`` among them)."""
        return [t for t in self.tables if t != self.marker]


GENERATION = Layout("trees", {"pairs": PAIR_SCHEMA, "rejects": REJECT_SCHEMA, "trees": TREE_SCHEMA})
"""The generation job's folder: ``pairs``, ``rejects`` and the marker ``trees``."""


class Batch(dict):
    """Finished work waiting for the next commit: ``batch[table]`` is that table's list of row dicts."""

    def __missing__(self, table: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        self[table] = rows
        return rows

    def problems(self, layout: Layout) -> int:
        """Problems the batch finishes: marker rows plus problem rejects."""
        return len(self.get(layout.marker, [])) + len(self.get("rejects", []))


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """``(pyarrow filesystem, root path in it)`` of a folder: a local path or a filesystem URI."""
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, ValueError):  # a relative local path
        return pafs.LocalFileSystem(), str(pafs.LocalFileSystem().normalize_path(_abs(uri)))


def read_queue_part(uri: str, path: str) -> pa.Table:
    """One staged queue part (``QUEUE_SCHEMA``) of the run folder ``uri``, from any process.

    Args:
        uri: the run's output folder (local path or filesystem URI).
        path: the part's path in that filesystem, as :meth:`OutputStore.write_queue_part` returned it.
    """
    return pq.read_table(path, filesystem=filesystem(uri)[0], schema=QUEUE_SCHEMA)


class OutputStore:
    """Reads and writes one output folder following the commit protocol above.

    Args:
        uri: the folder (local path or pyarrow filesystem URI).
        metadata: written into every Parquet part's schema metadata (``sphere_ray.<key>``: JSON).
        layout: the folder's tables (default: the generation job's).
    """

    def __init__(self, uri: str, metadata: Mapping[str, Any] | None = None, layout: Layout = GENERATION) -> None:
        if "rejects" not in layout.tables or "problem_id" not in layout.tables[layout.marker].names:
            raise ValueError(f"layout needs a rejects table and a problem_id in {layout.marker}: {layout}")
        self.layout = layout
        self.fs, self.root = filesystem(uri)
        self.metadata = {
            f"sphere_ray.{k}": json.dumps(v, sort_keys=True, default=str) for k, v in (metadata or {}).items()
        }
        for sub in layout.tables:
            with self._writing(self._path(sub)):
                self.fs.create_dir(self._path(sub), recursive=True)

    @contextlib.contextmanager
    def _writing(self, path: str) -> Iterator[None]:
        """Re-raise a failed write as an ``OSError`` that names the path and the likely cause."""
        try:
            yield
        except OSError as e:
            why = _WRITE_ERRORS.get(e.errno) or str(e)
            raise OSError(e.errno, f"output folder {self.root}: cannot write {path} ({why})") from e

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def _parts(self, sub: str) -> list[str]:
        selector = pafs.FileSelector(self._path(sub), allow_not_found=True)
        return sorted(i.path for i in self.fs.get_file_info(selector) if i.is_file and i.base_name.endswith(".parquet"))

    def recover(self) -> set[str]:
        """Move damaged commits aside, delete leftovers of a killed run; return the ids of problems already done."""
        marker = self.layout.marker
        self._quarantine_damaged()
        committed = {posixpath.basename(p) for p in self._parts(marker)}
        for sub in self.layout.data:
            for path in self._parts(sub):
                name = posixpath.basename(path)
                if name != "input.parquet" and name not in committed:
                    log.info("removing uncommitted %s", path)
                    self.fs.delete_file(path)
        for sub in self.layout.tables:
            selector = pafs.FileSelector(self._path(sub), allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                if info.base_name.startswith("."):
                    self.fs.delete_file(info.path)
        return self._ids(marker) | self._ids("rejects", exclude="input.parquet")

    def _quarantine_damaged(self) -> None:
        """Read every part back; move each commit with an unreadable part to ``quarantine/``, with the reason."""
        damaged: dict[str, str] = {}
        for sub in self.layout.tables:
            for path in self._parts(sub):
                name = posixpath.basename(path)
                if name not in damaged and (why := self._damage(path, sub)):
                    damaged[name] = f"{sub}/{name}: {why}"
        for name, reason in damaged.items():
            log.warning("damaged commit %s moved to quarantine/, its problems will be done again: %s", name, reason)
            for sub in self.layout.tables:
                if self.fs.get_file_info(self._path(sub, name)).is_file:
                    self.fs.create_dir(self._path("quarantine", sub), recursive=True)
                    self.fs.move(self._path(sub, name), self._path("quarantine", sub, name))
            self._append_reason({"part": name, "reason": reason, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def _damage(self, path: str, sub: str) -> str | None:
        """Why the part at ``path`` cannot be read as table ``sub`` (None: it reads back whole)."""
        try:
            table = pq.read_table(path, filesystem=self.fs)
        except (OSError, pa.ArrowException) as e:
            return f"{type(e).__name__}: {e}"[:500]
        schema = self.layout.tables[sub]
        required = {f.name for f in schema if (f.metadata or {}).get(b"optional") != b"true"}
        missing = required - set(table.schema.names)
        return f"columns {sorted(missing)} missing" if missing else None

    def _append_reason(self, row: dict[str, Any]) -> None:
        path = self._path("quarantine", "reasons.jsonl")
        old = b""
        if self.fs.get_file_info(path).is_file:
            with self.fs.open_input_stream(path) as f:
                old = f.read()
        self.write_bytes("quarantine/reasons.jsonl", old + (json.dumps(row) + "\n").encode())

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write ``data`` to ``name`` under the folder (atomically)."""
        tmp = self._path(posixpath.dirname(name), f".{posixpath.basename(name)}.tmp")
        with self._writing(self._path(name)):
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
            self.fs.move(tmp, self._path(name))

    def _ids(self, sub: str, exclude: str = "") -> set[str]:
        ids: set[str] = set()
        for path in self._parts(sub):
            if posixpath.basename(path) != exclude:
                column = pq.read_table(path, columns=["problem_id"], filesystem=self.fs).column("problem_id")
                ids.update(x for x in column.to_pylist() if x is not None)
        return ids

    def commit(self, batch: Batch) -> str:
        """Write one commit (the data tables and rejects, then the marker); return its id.

        Raises:
            ValueError: the batch holds a table the layout does not have.
        """
        if unknown := sorted(set(batch) - set(self.layout.tables)):
            raise ValueError(f"commit: tables {unknown} are not in the layout {sorted(self.layout.tables)}")
        name = f"part-{uuid.uuid4().hex[:16]}.parquet"
        tables = {sub: pa.Table.from_pylist(batch[sub], schema=self.layout.tables[sub])
                  for sub in self.layout.data if batch.get(sub)}  # fmt: skip
        marker = self.layout.marker
        tables[marker] = pa.Table.from_pylist(batch.get(marker, []), schema=self.layout.tables[marker])
        written = []
        try:
            for sub, table in tables.items():  # the marker last: it makes the commit
                self._write(table, sub, name)
                written.append(self._path(sub, name))
        except OSError:
            for path in written:  # nothing half-committed stays behind
                with contextlib.suppress(OSError):
                    self.fs.delete_file(path)
            raise
        return name

    def write_input_rejects(self, rows: Iterable[dict[str, Any]], chunk: int = 1024) -> int:
        """(Re)write the input rejects of this run's problem file from a stream of rows; return their number.

        Rows are written ``chunk`` at a time to a temporary file renamed into place at the end, so a
        file with millions of bad rows never sits in memory.
        """
        tmp, final = self._path("rejects", ".input.parquet.tmp"), self._path("rejects", "input.parquet")
        schema = REJECT_SCHEMA.with_metadata({**(REJECT_SCHEMA.metadata or {}), **self.metadata})
        count = 0
        with pq.ParquetWriter(tmp, schema, filesystem=self.fs) as writer:
            for rows_chunk in _chunks(rows, chunk):
                writer.write_table(pa.Table.from_pylist(rows_chunk, schema=schema))
                count += len(rows_chunk)
        self.fs.move(tmp, final)
        return count

    def reset_queue(self) -> None:
        """Delete the previous run's staged queue."""
        self.fs.create_dir(self._path("queue"), recursive=True)
        self.fs.delete_dir_contents(self._path("queue"), missing_dir_ok=True)

    def write_queue_part(self, index: int, rows: Sequence[dict[str, Any]]) -> str:
        """Stage ``rows`` (``QUEUE_SCHEMA``: one problem each) as queue part ``index``; return its path."""
        name = f"part-{index:06d}.parquet"
        self._write(pa.Table.from_pylist(list(rows), schema=QUEUE_SCHEMA), "queue", name)
        return self._path("queue", name)

    def _write(self, table: pa.Table, sub: str, name: str) -> None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **self.metadata})
        tmp, final = self._path(sub, f".{name}.tmp"), self._path(sub, name)
        with self._writing(final):
            try:
                pq.write_table(table, tmp, filesystem=self.fs)
                self.fs.move(tmp, final)
            except OSError:
                with contextlib.suppress(OSError):
                    self.fs.delete_file(tmp)
                raise

    def write_derived(self, sub: str, rows: Sequence[dict[str, Any]]) -> str:
        """(Re)write table ``sub`` as one part computed from the committed ones (``derived.parquet``, atomically).

        The part is named in no commit, so a rerun's :meth:`recover` removes it until the run writes it again.
        """
        self._write(pa.Table.from_pylist(list(rows), schema=self.layout.tables[sub]), sub, "derived.parquet")
        return self._path(sub, "derived.parquet")

    def write_json(self, name: str, data: Any) -> None:
        """Write a JSON file at the top of the folder (atomically)."""
        self.write_bytes(name, json.dumps(data, indent=2, sort_keys=True, default=str).encode())

    def read_queue(self) -> pa.Table:
        """The staged queue of this run (``QUEUE_SCHEMA``), in input order."""
        tables = [pq.read_table(p, filesystem=self.fs, schema=QUEUE_SCHEMA) for p in self._parts("queue")]
        return pa.concat_tables(tables) if tables else QUEUE_SCHEMA.empty_table()

    def read(self, sub: str, columns: Sequence[str] | None = None) -> pa.Table:
        """All committed rows of one of the layout's tables (``pairs``, ``trees`` or ``rejects``).

        Args:
            sub: the table.
            columns: read only these (Parquet reads no other column: a summary of 100k trees never loads
                their ``trees_json``); None reads all.
        """
        if sub not in self.layout.tables:
            raise ValueError(f"read: {sub!r} is not one of {sorted(self.layout.tables)}")
        schema = self.layout.tables[sub]
        committed = {posixpath.basename(p) for p in self._parts(self.layout.marker)} | {
            "input.parquet",
            "derived.parquet",
        }
        parts = [p for p in self._parts(sub) if posixpath.basename(p) in committed]  # never a half-written commit
        cols = list(columns) if columns is not None else None
        tables = [pq.read_table(p, filesystem=self.fs, schema=schema, columns=cols) for p in parts]
        if tables:
            return pa.concat_tables(tables)
        empty = schema.empty_table()
        return empty.select(cols) if cols is not None else empty


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _abs(path: str) -> str:
    import os

    return os.path.abspath(path)
