"""Log lines that outsiders can cause, at most one a minute per kind: anyone who reaches a node's port can send
junk, and a line for each let him fill the operator's disk (2,000 a second is ~20 GB a day). /metrics counts what
the log leaves out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Throttled:
    """``note(kind, message, *args)`` logs the first of a kind, then nothing of that kind for ``every`` seconds, and
    says with the next line how many it left out. Kinds are few and fixed (error codes): the memory is bounded."""

    def __init__(self, logger: logging.Logger, every: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 level: int = logging.INFO) -> None:
        self.logger = logger
        self.level = level
        self.every = every
        self.clock = clock
        self._kinds: dict[str, tuple[float, int]] = {}  # kind -> (when last logged, how many since without a line)

    def note(self, kind: str, message: str, *args: object) -> None:
        now = self.clock()
        logged, left_out = self._kinds.get(kind, (-self.every, 0))
        if now - logged < self.every:
            self._kinds[kind] = (logged, left_out + 1)
            return
        self._kinds[kind] = (now, 0)
        if left_out:
            self.logger.log(self.level, message + " (and %d more like it since the last line)", *args, left_out)
        else:
            self.logger.log(self.level, message, *args)


__all__ = ["Throttled"]
