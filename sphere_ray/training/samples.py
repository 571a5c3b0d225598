"""SFT samples for the SFT job: read the Parquet, drop unusable samples with counts, split by problem.

Formats, as TRL's SFTTrainer reads them (no column mapping):

* ``prompt``/``completion``: conversational (lists of ``{"role", "content"}``, the SFT data job's
  ``sft/`` table: the merged long answer is the completion) or plain text;
* ``messages``: a whole conversation (the SFT data job's ``sft_multiturn/`` table).

A sample is dropped, under its first failing reason, when it is malformed, has an empty prompt or
completion (no assistant turn), or is longer than ``max_length`` tokens as TRL tokenizes it (the chat
template applied): such a sample would be cut, losing its final answer and end-of-turn token.
Without a ``problem_id`` column every row is its own problem.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sphere_ray.training.data import TrainSplits, make_splits

__all__ = ["FORMATS", "clean_samples", "load_sft_splits", "sample_format"]

log = logging.getLogger(__name__)

FORMATS = {"prompt-completion": ["prompt", "completion"], "messages": ["messages"]}
"""Format name -> the columns TRL's SFTTrainer trains on."""


def load_sft_splits(
    path: str, tokenizer: Any, max_length: int | None, eval_fraction: float, seed: int = 0
) -> TrainSplits:
    """Read, clean and split the SFT samples at ``path`` (file, folder or pyarrow URI).

    Returns:
        :class:`TrainSplits` whose tables hold the format's columns only (``FORMATS``).

    Raises:
        ValueError: unreadable, neither format, no usable sample, or too few problems for the eval split.
    """
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise ValueError(f"SFT data: cannot read {path!r}: {e}") from e
    columns = FORMATS[sample_format(table, path)]
    if table.num_rows == 0:
        raise ValueError(f"SFT data: {path!r} holds no samples (did the SFT data job keep any?)")
    if "problem_id" not in table.schema.names:
        log.warning("SFT data %s has no problem_id column: each sample is its own problem in the eval split", path)
        table = table.append_column("problem_id", pa.array([f"row-{i}" for i in range(table.num_rows)]))
    kept, dropped = clean_samples(table.select([*columns, "problem_id"]), tokenizer, max_length)
    return make_splits(kept, dropped, table.num_rows, f"SFT data {path!r}", eval_fraction, seed, "samples", columns)


def sample_format(table: pa.Table, path: str = "SFT data") -> str:
    """``prompt-completion`` or ``messages``, from the columns.

    Raises:
        ValueError: neither format's columns are there.
    """
    names = set(table.schema.names)
    for name, columns in FORMATS.items():
        if set(columns) <= names:
            return name
    raise ValueError(
        f"SFT data {path!r}: needs prompt + completion or messages columns (TRL's formats), got {sorted(names)}"
    )


def clean_samples(table: pa.Table, tokenizer: Any, max_length: int | None) -> tuple[pa.Table, dict[str, int]]:
    """Drop malformed, empty or over-long samples.

    Args:
        table: one format's columns (``FORMATS``) + ``problem_id``.
        tokenizer: counts tokens as TRL does (chat template for conversational samples); ``None``: no
            length check.
        max_length: the most tokens per sample (``None``: no limit).

    Returns:
        ``(kept rows, {reason: count})``.
    """
    fmt = "messages" if "messages" in table.schema.names else "prompt-completion"
    rows = table.select(FORMATS[fmt]).to_pylist()
    reasons = [_reason(row, fmt) for row in rows]
    if tokenizer is not None and max_length is not None:
        too_long = f"longer than max_length={max_length} tokens"
        reasons = [r or (too_long if _tokens(row, fmt, tokenizer) > max_length else None)
                   for r, row in zip(reasons, rows, strict=True)]  # fmt: skip
    keep = pa.array([r is None for r in reasons])
    return table.filter(keep), dict(collections.Counter(r for r in reasons if r))


def _reason(row: dict[str, Any], fmt: str) -> str | None:
    if fmt == "messages":
        messages = row["messages"]
        if not _is_conversation(messages):
            return "malformed messages"
        if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            return "no assistant turn"
        return None
    prompt, completion = row["prompt"], row["completion"]
    if isinstance(prompt, str) and isinstance(completion, str):
        texts = (prompt, completion)
    elif _is_conversation(prompt) and _is_conversation(completion):
        texts = (" ".join(m["content"] for m in prompt), " ".join(m["content"] for m in completion))
    else:
        return "malformed prompt or completion"
    if not texts[0].strip():
        return "empty prompt"
    if not texts[1].strip():
        return "empty completion"
    return None


def _is_conversation(value: Any) -> bool:
    return bool(value) and isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    )  # fmt: skip


def _tokens(row: dict[str, Any], fmt: str, tokenizer: Any) -> int:
    """Tokens of the whole sample, as TRL's SFTTrainer tokenizes it."""
    if fmt == "messages":
        text = row["messages"]
    elif isinstance(row["prompt"], str):
        return len(tokenizer(text=row["prompt"] + row["completion"])["input_ids"])
    else:
        text = row["prompt"] + row["completion"]
    return len(tokenizer.apply_chat_template(text, tokenize=True, return_dict=True)["input_ids"])
