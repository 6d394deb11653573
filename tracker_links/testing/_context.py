"""What every part of the fake shares: the lock, the clock, the one random source, the stats."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from ._stats import FakeStats

__all__ = ["Clock", "Context"]

Clock = Callable[[], float]


class Context:
    """The shared state of a fake's parts (each holds the same one).

    ``clock`` is the fake's clock (seconds, any origin; ``time.monotonic`` by default, a virtual
    clock in tests). Wall times the fake writes (a link's ``createdAt``) are ``started_at`` plus
    the clock's advance since the fake was made, so they follow virtual time too.
    """

    __slots__ = ("_clock0", "clock", "lock", "random", "started_at", "stats")

    def __init__(self, clock: Clock, seed: int | None, started_at: datetime | None) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.random = random.Random(seed)
        self.stats = FakeStats()
        if started_at is None:
            started_at = datetime.now(timezone.utc)
        elif started_at.tzinfo is None:
            raise ValueError("started_at must be an aware datetime (with a time zone)")
        self.started_at = started_at.astimezone(timezone.utc)
        self._clock0: float | None = None
        try:
            self._clock0 = clock()
        except Exception:  # e.g. trio.current_time outside a run: start at the first use
            self._clock0 = None

    def wall_now(self) -> datetime:
        """The fake's wall-clock time now, in UTC."""
        return self.wall_at(self.clock())

    def wall_at(self, now: float) -> datetime:
        """The wall-clock time (UTC) at the reading ``now`` of the fake's clock."""
        if self._clock0 is None:
            self._clock0 = now
        return self.started_at + timedelta(seconds=now - self._clock0)

    def set_clock(self, clock: Clock) -> None:
        """Use another clock from now on; wall times go on from where they are."""
        if self._clock0 is not None:
            self.started_at = self.wall_now()
        self._clock0 = None
        self.clock = clock
        try:
            self._clock0 = clock()
        except Exception:
            self._clock0 = None
