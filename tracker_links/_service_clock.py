"""What a client knows of the service's clock, learned from the links its own creates made.

After a create whose answer was lost, the link found by the read-back was made by that attempt
unless its ``createdAt`` (the service's clock) predates the attempt (the client's clock). Each
create that *was* answered bounds the offset between the two clocks: the service stamped the
link between the moment the request left and the moment its answer came back, so

    createdAt - received <= offset <= createdAt - sent.

The bounds of all answered creates intersect into a window about one round trip wide, and a
link stamped before ``since + lo`` surely existed before an attempt begun at ``since``. Until a
create has been answered, a fixed allowance for the clocks' skew stands in (and where the bounds
stop agreeing, as after a clock step, they start over from the newest create). Pure: the caller
reads the clocks.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["ServiceClock"]

# createdAt has millisecond resolution (truncated by the service): allow one tick.
_TICK: Final = 0.001


class ServiceClock:
    """The offset of the service's clock against this process's, as bounds ``lo <= hi``."""

    __slots__ = ("fallback", "hi", "lo")

    def __init__(self, fallback: float = 2.0) -> None:
        self.fallback = fallback
        """The skew allowed before any create has been answered (seconds)."""
        self.lo = -math.inf
        self.hi = math.inf

    def learn(self, sent: float, received: float, created_at: float) -> None:
        """An answered create: sent and answered at these Unix times, stamped ``created_at``."""
        lo, hi = created_at - received - _TICK, created_at - sent + _TICK
        new_lo, new_hi = max(self.lo, lo), min(self.hi, hi)
        if new_lo > new_hi:  # the clocks moved against each other: trust the newest
            new_lo, new_hi = lo, hi
        self.lo, self.hi = new_lo, new_hi

    def predates(self, created_at: float, since: float) -> bool:
        """Whether a link stamped ``created_at`` surely existed before Unix time ``since``."""
        if self.lo == -math.inf:
            return created_at < since - self.fallback
        return created_at < since + self.lo

    def __repr__(self) -> str:
        return f"ServiceClock(lo={self.lo!r}, hi={self.hi!r})"
