"""Training data: read the Parquet, drop unusable rows with counts, split by problem.

* DPO pairs, as the generation job writes them (:data:`sphere_ray.pairs.PAIR_SCHEMA`, TRL's
  preference format).
* SFT samples (:func:`load_sft_splits`), as the SFT data job writes them: TRL's conversational
  prompt/completion (``sft/``) or messages (``sft_multiturn/``); plain-text prompt/completion also reads.

No column mapping. Unusable rows are dropped and counted, never fatal; an empty result is a clear error.
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

__all__ = [
    "LENGTH_COLUMN", "TRL_COLUMNS", "TrainSplits", "clean_pairs", "load_pair_splits", "make_splits",
    "split_by_problem",
]  # fmt: skip

log = logging.getLogger(__name__)

TRL_COLUMNS = ["prompt", "chosen", "rejected"]
LENGTH_COLUMN = "length"
"""Tokens of prompt + the longer completion; HF's default ``length_column_name``."""


@dataclass
class TrainSplits:
    """Train and eval rows and what was dropped.

    Attributes:
        train: training rows: DPO ``TRL_COLUMNS`` + ``problem_id`` + ``length``; SFT its TRL columns.
        eval: held-out rows (whole problems), or ``None`` when eval is off.
        dropped: reason -> number of rows dropped.
        total: rows read.
        unit: what a row is (``pairs``, ``samples``), for the summary's keys.
        problems: problems in ``train``.
    """

    train: pa.Table
    eval: pa.Table | None
    dropped: dict[str, int] = field(default_factory=dict)
    total: int = 0
    unit: str = "pairs"
    problems: int = 0

    def summary(self) -> dict[str, Any]:
        """Counts for logs and the job summary: ``{unit}_read``, ``dropped``, ``train_{unit}``, ..."""
        eval_rows = self.eval.num_rows if self.eval is not None else 0
        return {f"{self.unit}_read": self.total, "dropped": self.dropped, f"train_{self.unit}": self.train.num_rows,
                "train_problems": self.problems, f"eval_{self.unit}": eval_rows}  # fmt: skip


def load_pair_splits(
    path: str, tokenizer: Any, max_length: int | None, eval_fraction: float, seed: int = 0
) -> TrainSplits:
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
    return make_splits(kept, dropped, table.num_rows, f"pairs: {path!r}", eval_fraction, seed)


def make_splits(
    kept: pa.Table, dropped: dict[str, int], total: int, source: str, eval_fraction: float, seed: int,
    unit: str = "pairs", columns: list[str] | None = None,
) -> TrainSplits:  # fmt: skip
    """Log what was dropped, split the kept rows by problem and keep ``columns`` (``None``: all).

    Raises:
        ValueError: no row kept (``source`` names the data), or too few problems for the eval split.
    """
    for reason, n in dropped.items():
        log.warning("%s: dropped %d of %d %s: %s", source, n, total, unit, reason)
    if kept.num_rows == 0:
        raise ValueError(f"{source}: none of the {total} {unit} is usable (dropped: {dropped})")
    train, held_out = split_by_problem(kept, eval_fraction, seed)
    problems = len(set(train.column("problem_id").to_pylist()))
    if columns is not None:
        train, held_out = train.select(columns), held_out.select(columns) if held_out is not None else None
    return TrainSplits(train=train, eval=held_out, dropped=dropped, total=total, unit=unit, problems=problems)


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
