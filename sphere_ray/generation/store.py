"""The generation job's output folder: atomic commits keyed by problem id, resume, lineage.

Layout (local path or any pyarrow filesystem URI, e.g. ``s3://bucket/run``)::

    pairs/part-<commit>.parquet     the pairs (sphere_ray.pairs.PAIR_SCHEMA)
    trees/part-<commit>.parquet     one row per finished problem: stage, outcome, tree JSON, counters
    rejects/part-<commit>.parquet   problems that failed after retries (reason = the error)
    rejects/input.parquet           input rows that were not problems (reason = why)
    queue/part-<n>.parquet          this run's problems still to search (QUEUE_SCHEMA), staged at start
    manifest.json                   config, models, seeds, package versions, git SHA
    summary.json                    written at the end of each run

Commit protocol: a commit writes its pairs and rejects parts first and its trees part last, each to a
temporary name renamed into place. A commit exists iff its trees part exists (possibly empty), so
part files without one are leftovers of a killed run and are deleted on the next start. A problem is
done iff its id is in a committed trees or rejects part; a rerun skips done problems, so no problem is
ever written twice.
"""

from __future__ import annotations

import json
import logging
import posixpath
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sphere_ray.pairs import PAIR_SCHEMA

__all__ = ["QUEUE_SCHEMA", "REJECT_SCHEMA", "TREE_SCHEMA", "OutputStore"]

log = logging.getLogger(__name__)

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


@dataclass
class Batch:
    """Finished work waiting for the next commit."""

    pairs: list[dict[str, Any]] = field(default_factory=list)
    trees: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.trees) + len(self.rejects)


class OutputStore:
    """Reads and writes one output folder following the commit protocol above."""

    def __init__(self, uri: str, metadata: Mapping[str, Any] | None = None) -> None:
        try:
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, ValueError):  # a relative local path
            self.fs, self.root = pafs.LocalFileSystem(), str(pafs.LocalFileSystem().normalize_path(_abs(uri)))
        self.metadata = {
            f"sphere_ray.{k}": json.dumps(v, sort_keys=True, default=str) for k, v in (metadata or {}).items()
        }
        for sub in ("pairs", "trees", "rejects"):
            self.fs.create_dir(self._path(sub), recursive=True)

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def _parts(self, sub: str) -> list[str]:
        selector = pafs.FileSelector(self._path(sub), allow_not_found=True)
        return sorted(i.path for i in self.fs.get_file_info(selector) if i.is_file and i.base_name.endswith(".parquet"))

    def recover(self) -> set[str]:
        """Delete leftovers of a killed run; return the ids of problems already done."""
        committed = {posixpath.basename(p) for p in self._parts("trees")}
        for sub in ("pairs", "rejects"):
            for path in self._parts(sub):
                name = posixpath.basename(path)
                if name != "input.parquet" and name not in committed:
                    log.info("removing uncommitted %s", path)
                    self.fs.delete_file(path)
        for sub in ("pairs", "trees", "rejects"):
            selector = pafs.FileSelector(self._path(sub), allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                if info.base_name.startswith("."):
                    self.fs.delete_file(info.path)
        return self._ids("trees") | self._ids("rejects", exclude="input.parquet")

    def _ids(self, sub: str, exclude: str = "") -> set[str]:
        ids: set[str] = set()
        for path in self._parts(sub):
            if posixpath.basename(path) != exclude:
                column = pq.read_table(path, columns=["problem_id"], filesystem=self.fs).column("problem_id")
                ids.update(x for x in column.to_pylist() if x is not None)
        return ids

    def commit(self, batch: Batch) -> str:
        """Write one commit (pairs, rejects, then trees as the commit marker); return its id."""
        name = f"part-{uuid.uuid4().hex[:16]}.parquet"
        if batch.pairs:
            self._write(pa.Table.from_pylist(batch.pairs, schema=PAIR_SCHEMA), "pairs", name)
        if batch.rejects:
            self._write(pa.Table.from_pylist(batch.rejects, schema=REJECT_SCHEMA), "rejects", name)
        self._write(pa.Table.from_pylist(batch.trees, schema=TREE_SCHEMA), "trees", name)
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
        pq.write_table(table, tmp, filesystem=self.fs)
        self.fs.move(tmp, final)

    def write_json(self, name: str, data: Any) -> None:
        """Write a JSON file at the top of the folder (atomically)."""
        tmp = self._path(f".{name}.tmp")
        with self.fs.open_output_stream(tmp) as f:
            f.write(json.dumps(data, indent=2, sort_keys=True, default=str).encode())
        self.fs.move(tmp, self._path(name))

    def read_queue(self) -> pa.Table:
        """The staged queue of this run (``QUEUE_SCHEMA``), in input order."""
        tables = [pq.read_table(p, filesystem=self.fs, schema=QUEUE_SCHEMA) for p in self._parts("queue")]
        return pa.concat_tables(tables) if tables else QUEUE_SCHEMA.empty_table()

    def read(self, sub: str) -> pa.Table:
        """All committed rows of ``pairs``, ``trees`` or ``rejects``."""
        schema = {"pairs": PAIR_SCHEMA, "trees": TREE_SCHEMA, "rejects": REJECT_SCHEMA}[sub]
        tables = [pq.read_table(p, filesystem=self.fs, schema=schema) for p in self._parts(sub)]
        return pa.concat_tables(tables) if tables else schema.empty_table()


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
