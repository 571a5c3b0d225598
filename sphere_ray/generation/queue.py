"""Staging the generation job's input: one lazy pass from the problem file to a Parquet queue.

The driver reads the problem file row by row (:func:`sphere_ray.problems.iter_problems`), writes input
rejects as they come, drops problems already done in the output folder (resume), and writes the rest to
``queue/part-<n>.parquet`` in parts of ``part_rows``. Ray Data then streams the queue to the search actors,
so the driver holds one part, the done ids and the distinct input ids, never the dataset.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sphere_ray.generation.store import OutputStore
from sphere_ray.problems import Reject, iter_problems

__all__ = ["Queue", "stage_problems"]

log = logging.getLogger(__name__)


@dataclass
class Queue:
    """What staging found.

    Attributes:
        problems: good problems in the input (after ``limit``).
        done: of those, how many were already done in the output folder.
        rejects: input rows set aside (written to ``rejects/input.parquet``).
        parts: paths (in the store's filesystem) of the queue parts, in input order.
        todo: problems in the queue.
    """

    problems: int = 0
    done: int = 0
    rejects: int = 0
    parts: list[str] = field(default_factory=list)
    todo: int = 0


def stage_problems(spec: str, limit: int | None, done: set[str], store: OutputStore, part_rows: int) -> Queue:
    """Stage ``spec``'s problems not in ``done`` as the store's queue; write its input rejects.

    Raises:
        ValueError: ``spec`` cannot be read (see :func:`~sphere_ray.problems.iter_problems`).
    """
    store.reset_queue()
    queue, pending = Queue(), []
    items = iter_problems(spec, limit)
    queue.rejects = store.write_input_rejects(_stage(items, done, queue, pending, store, part_rows))
    if pending:
        queue.parts.append(store.write_queue_part(len(queue.parts), pending))
    log.info(
        "%d problems: %d already done, %d to search in %d queue parts; %d input rows rejected",
        queue.problems, queue.done, queue.todo, len(queue.parts), queue.rejects,
    )  # fmt: skip
    return queue


def _stage(
    items: Iterator[Any], done: set[str], queue: Queue, pending: list, store: OutputStore, part_rows: int
) -> Iterator[dict[str, Any]]:
    """Yield the rejects of ``items`` as store rows; stage its problems into ``pending``/queue parts on the way."""
    for item in items:
        if isinstance(item, Reject):
            yield {"problem_id": item.id, "source": item.source, "row": item.row, "reason": item.reason,
                   "raw": item.raw}  # fmt: skip
            continue
        queue.problems += 1
        if item.id in done:
            queue.done += 1
            continue
        pending.append(dataclasses.asdict(item))
        queue.todo += 1
        if len(pending) >= part_rows:
            queue.parts.append(store.write_queue_part(len(queue.parts), pending))
            pending.clear()
