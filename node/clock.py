"""How far this node's clock is from its peers': every signed message carries its sender's time (iat).

A node whose clock is off refuses good messages as expired or not yet valid,
and its own are refused; without this the operator saw only "peer-unreachable"
or "did not give a valid announcement". Each signed message from a peer is a
sample (peer's time minus ours, latency included). The estimate is the
median over the peers heard from lately, each by its latest sample: one
member whose clock is off, or that sends requests signed long before, may
send as many as it likes without making the node doubt its own clock. It is
logged when it passes ``warn_at`` seconds, shown in /health and /metrics, and
a single peer's offset is named in the errors that a clock difference causes.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class ClockWatch:
    def __init__(self, clock: Callable[[], float] = time.time, *, window: int = 64, warn_at: float = 10.0,
                 warn_every: float = 600.0) -> None:
        self.clock = clock
        self.warn_at = warn_at
        self.warn_every = warn_every
        self.window = window
        self._samples: dict[str, int] = {}  # peer -> its latest offset, the peer heard from longest ago first
        self._warned = -warn_every

    def saw(self, peer_time: int, peer: str) -> float:
        """``peer`` signed ``peer_time`` just now; returns its offset (positive: it is ahead of us)."""
        offset = peer_time - int(self.clock())  # both in whole seconds, as signed
        self._samples.pop(peer, None)
        self._samples[peer] = offset
        if len(self._samples) > self.window:
            del self._samples[next(iter(self._samples))]
        estimate = self.offset()
        now = time.monotonic()
        if estimate is not None and abs(estimate) >= self.warn_at and now - self._warned >= self.warn_every:
            self._warned = now
            log.warning("this node's clock is about %d s %s its peers' clocks: check its time source (NTP)",
                        abs(estimate), "behind" if estimate > 0 else "ahead of")
        return offset

    def offset(self) -> float | None:
        """The median offset of the peers heard from lately (positive: they are ahead of us), or None."""
        return float(statistics.median(self._samples.values())) if self._samples else None

    @staticmethod
    def hint(offset: float) -> str:
        """Words for an error that a clock difference may explain."""
        if abs(offset) < 5:
            return ""
        return f" (this node's clock is about {abs(offset):.0f} s {'behind' if offset > 0 else 'ahead of'} the peer's)"


__all__ = ["ClockWatch"]
