"""Capturing a logger's messages in tests whose session may have reconfigured logging (Ray, vLLM): a handler
on the logger itself, not pytest's caplog on the root logger."""

import contextlib
import logging
from collections.abc import Iterator


class Lines(logging.Handler):
    """Records the messages it handles, in order."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def captured(name: str, lines: Lines | None = None) -> Iterator[Lines]:
    """The INFO-and-above messages of logger ``name`` while the block runs (into ``lines`` if given)."""
    lines = lines if lines is not None else Lines()
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(lines)
    try:
        yield lines
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
