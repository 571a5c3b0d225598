"""The one Parquet schema for preference pairs, and its reader and writer.

Format: TRL's *standard* (plain text) preference format — ``prompt``, ``chosen``, ``rejected`` are
strings, and ``prompt`` is already rendered with the policy's chat template (step-level pairs
continue a partial assistant answer, which TRL's conversational format cannot express). TRL's
``DPOTrainer`` reads these columns with no mapping; the other columns are provenance it ignores.

Columns:

============== ========== ===================================================================
column          type       meaning
============== ========== ===================================================================
prompt          string     rendered prompt (+ prefix steps for step-level pairs)
chosen          string     preferred continuation
rejected        string     dispreferred continuation
pair_id         string     stable hash of problem, stage, level, prompt, chosen, rejected
problem_id      string     id of the problem
stage           int8       SPHERE stage 1/2/3
level           string     ``step`` or ``trajectory``
prompt_kind     string     ``solve`` or ``correct`` (self-correction prompt)
depth           int32      step index (step level); null for trajectories
chosen_score    float64    reward of chosen (step) / mean step reward (trajectory)
rejected_score  float64    same for rejected
chosen_correct  bool       known correctness of chosen (never false)
rejected_correct bool      known correctness of rejected (null: unknown)
chosen_model    string     model that generated chosen
rejected_model  string     model that generated rejected
config_hash     string     hash of the job config that produced the pair
============== ========== ===================================================================
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sphere_ray.search.sphere import PreferencePair

__all__ = ["PAIR_SCHEMA", "correct_samples", "pairs_to_table", "read_pairs", "swap_sides", "write_pairs"]

PAIR_SCHEMA = pa.schema(
    [
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("chosen", pa.string(), nullable=False),
        pa.field("rejected", pa.string(), nullable=False),
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("stage", pa.int8(), nullable=False),
        pa.field("level", pa.string(), nullable=False),
        pa.field("prompt_kind", pa.string(), nullable=False),
        pa.field("depth", pa.int32()),
        pa.field("chosen_score", pa.float64(), nullable=False),
        pa.field("rejected_score", pa.float64(), nullable=False),
        pa.field("chosen_correct", pa.bool_()),
        pa.field("rejected_correct", pa.bool_()),
        pa.field("chosen_model", pa.string(), nullable=False),
        pa.field("rejected_model", pa.string(), nullable=False),
        pa.field("config_hash", pa.string(), nullable=False),
    ],
    metadata={"sphere_ray.format": "pairs/v1", "trl.format": "standard-preference"},
)


def pairs_to_table(
    pairs: Sequence[PreferencePair], config_hash: str, metadata: Mapping[str, object] | None = None
) -> pa.Table:
    """Build a :data:`PAIR_SCHEMA` table; ``metadata`` is stored JSON-encoded as key-value metadata."""
    rows = [{**asdict(p), "pair_id": p.pair_id, "config_hash": config_hash} for p in pairs]
    columns = {f.name: [r[f.name] for r in rows] for f in PAIR_SCHEMA}
    table = pa.Table.from_pydict(columns, schema=PAIR_SCHEMA)
    if metadata:
        extra = {f"sphere_ray.{k}": json.dumps(v, sort_keys=True, default=str) for k, v in metadata.items()}
        table = table.replace_schema_metadata(
            {**(PAIR_SCHEMA.metadata or {}), **{k.encode(): v.encode() for k, v in extra.items()}}
        )
    return table


def write_pairs(table: pa.Table, path: str | Path) -> Path:
    """Write ``table`` to ``path`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    if not table.schema.equals(PAIR_SCHEMA, check_metadata=False):
        raise ValueError(f"table does not have the pairs schema: {table.schema}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def read_pairs(path: str | Path) -> pa.Table:
    """Read a pairs file or folder of files, checking it against :data:`PAIR_SCHEMA`."""
    table = pq.read_table(path)
    missing = [f.name for f in PAIR_SCHEMA if f.name not in table.schema.names]
    if missing:
        raise ValueError(f"{path}: not a pairs file, columns missing: {missing}")
    return table.select(PAIR_SCHEMA.names).cast(PAIR_SCHEMA)


_SIDES = ("", "_score", "_correct", "_model")


def swap_sides(table: pa.Table, fraction: float = 0.5, seed: int = 0) -> pa.Table:
    """A control for DPO: swap chosen and rejected (text, score, correctness, model) in a random subset of rows.

    Args:
        table: :data:`PAIR_SCHEMA` rows.
        fraction: the probability that a row is swapped.
        seed: RNG seed; the same seed swaps the same rows.

    Returns:
        The same rows and schema, the swapped ones with their sides exchanged.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    rng = random.Random(seed)
    mask = pa.array([rng.random() < fraction for _ in range(table.num_rows)], pa.bool_())
    out = table
    for suffix in _SIDES:
        chosen, rejected = table[f"chosen{suffix}"], table[f"rejected{suffix}"]
        out = out.set_column(out.schema.get_field_index(f"chosen{suffix}"), out.schema.field(f"chosen{suffix}"),
                             pc.if_else(mask, rejected, chosen))  # fmt: skip
        out = out.set_column(out.schema.get_field_index(f"rejected{suffix}"),
                             out.schema.field(f"rejected{suffix}"), pc.if_else(mask, chosen, rejected))  # fmt: skip
    return out


def correct_samples(table: pa.Table) -> pa.Table:
    """Rejection-sampling fine-tuning data from pairs: each distinct model-written solution known to be right.

    Only trajectory-level sides (whole solutions) count, and only those a model wrote (a reference solution
    is not a sample).

    Args:
        table: :data:`PAIR_SCHEMA` rows.

    Returns:
        TRL prompt-completion rows: ``prompt`` (rendered), ``completion``, ``problem_id``, ``model``; one per
        distinct (prompt, completion).
    """
    seen: set[tuple[str, str]] = set()
    rows: dict[str, list[str]] = {"prompt": [], "completion": [], "problem_id": [], "model": []}
    for r in table.to_pylist():
        if r["level"] != "trajectory":
            continue
        for side in ("chosen", "rejected"):
            key = (r["prompt"], r[side])
            if r[f"{side}_correct"] and r[f"{side}_model"] != "reference" and key not in seen:
                seen.add(key)
                for name, value in zip(rows, (r["prompt"], r[side], r["problem_id"], r[f"{side}_model"]), strict=True):
                    rows[name].append(value)
    return pa.table(rows, schema=pa.schema([(name, pa.string()) for name in rows]))
