"""Pairs for DPO: read the pairs Parquet, drop unusable pairs with counts, split by problem.

The pairs are read as they are written by the generation job (:data:`sphere_ray.pairs.PAIR_SCHEMA`,
TRL's standard preference format): no column mapping. Unusable pairs are dropped and counted, never
fatal; an empty result is a clear error.
"""

from __future__ import annotations

import collections
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sphere_ray.pairs import read_pairs

__all__ = ["LENGTH_COLUMN", "TRL_COLUMNS", "PairSplits", "clean_pairs", "load_pair_splits", "split_by_problem"]

log = logging.getLogger(__name__)

TRL_COLUMNS = ["prompt", "chosen", "rejected"]
LENGTH_COLUMN = "length"
"""Tokens of prompt + the longer completion; HF's default ``length_column_name``."""


@dataclass
class PairSplits:
    """Train and eval pairs (``TRL_COLUMNS`` + ``problem_id`` + ``length``) and what was dropped.

    Attributes:
        train: training pairs.
        eval: held-out pairs (whole problems), or ``None`` when eval is off.
        dropped: reason -> number of pairs dropped.
        total: pairs read.
    """

    train: pa.Table
    eval: pa.Table | None
    dropped: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def summary(self) -> dict[str, Any]:
        """Counts for logs and the job summary."""
        problems = len(set(self.train.column("problem_id").to_pylist()))
        eval_rows = self.eval.num_rows if self.eval is not None else 0
        return {"pairs_read": self.total, "dropped": self.dropped, "train_pairs": self.train.num_rows,
                "train_problems": problems, "eval_pairs": eval_rows}  # fmt: skip


def load_pair_splits(
    path: str, tokenizer: Any, max_length: int | None, eval_fraction: float, seed: int = 0
) -> PairSplits:
    """Read, clean and split the pairs at ``path`` (file, folder or pyarrow URI).

    Raises:
        ValueError: unreadable or not a pairs file, no usable pairs, or too few problems for the eval split.
    """
    try:
        table = read_pairs(path)
    except (OSError, pa.ArrowException) as e:
        raise ValueError(f"pairs: cannot read {path!r}: {e}") from e
    if table.num_rows == 0:
        raise ValueError(f"pairs: {path!r} holds no pairs (did the generation job produce any?)")
    kept, dropped = clean_pairs(table.select([*TRL_COLUMNS, "problem_id"]), tokenizer, max_length)
    for reason, n in dropped.items():
        log.warning("dropped %d of %d pairs: %s", n, table.num_rows, reason)
    if kept.num_rows == 0:
        raise ValueError(f"pairs: none of the {table.num_rows} pairs in {path!r} is usable (dropped: {dropped})")
    train, held_out = split_by_problem(kept, eval_fraction, seed)
    return PairSplits(train=train, eval=held_out, dropped=dropped, total=table.num_rows)


def clean_pairs(table: pa.Table, tokenizer: Any, max_length: int | None) -> tuple[pa.Table, dict[str, int]]:
    """Drop pairs with an empty or identical chosen/rejected, or longer than ``max_length`` tokens.

    Returns:
        ``(kept rows, {reason: count})``; a pair counts once, under its first failing reason. With a
        ``tokenizer`` the kept rows gain ``length`` (tokens of prompt + the longer completion), which
        ``train_sampling_strategy: group_by_length`` batches by.
    """
    reasons = [_reason(r) for r in table.select(TRL_COLUMNS).to_pylist()]
    if tokenizer is not None:
        lengths = _pair_lengths(table, tokenizer)
        table = table.append_column(LENGTH_COLUMN, pa.array(lengths, pa.int32()))
        if max_length is not None:
            reasons = [r or (f"longer than max_length={max_length} tokens" if n > max_length else None)
                       for r, n in zip(reasons, lengths, strict=True)]  # fmt: skip
    keep = pa.array([r is None for r in reasons])
    return table.filter(keep), dict(collections.Counter(r for r in reasons if r))


def _reason(row: dict[str, str]) -> str | None:
    if not row["prompt"].strip():
        return "empty prompt"
    if not row["chosen"].strip() or not row["rejected"].strip():
        return "empty chosen or rejected"
    if row["chosen"].strip() == row["rejected"].strip():
        return "chosen identical to rejected"
    return None


def _pair_lengths(table: pa.Table, tokenizer: Any) -> list[int]:
    """Tokens of prompt + the longer completion (as TRL tokenizes them: separately, concatenated)."""

    def count(column: str) -> list[int]:
        texts = table.column(column).to_pylist()
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    prompt, chosen, rejected = count("prompt"), count("chosen"), count("rejected")
    return [p + max(c, r) for p, c, r in zip(prompt, chosen, rejected, strict=True)]


def split_by_problem(table: pa.Table, eval_fraction: float, seed: int = 0) -> tuple[pa.Table, pa.Table | None]:
    """Hold out about ``eval_fraction`` of the problems (all their pairs) by a seeded hash of the id.

    Raises:
        ValueError: eval is on but the pairs come from fewer than 2 problems.
    """
    if eval_fraction <= 0:
        return table, None
    problems = sorted(set(table.column("problem_id").to_pylist()))
    if len(problems) < 2:
        raise ValueError(f"eval_fraction={eval_fraction} needs pairs from >= 2 problems, got {len(problems)}")
    ranked = sorted(problems, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    n_eval = min(max(1, round(eval_fraction * len(problems))), len(problems) - 1)
    is_eval = pc.is_in(table.column("problem_id"), value_set=pa.array(ranked[:n_eval]))
    return table.filter(pc.invert(is_eval)), table.filter(is_eval)
