"""Rate-limit shapes of the fake: token bucket, fixed and sliding windows, in-flight cap, schedule.

Tracker documents no limit, so the fake offers the shapes a real service may have. Each is a
small pure object: :meth:`admit` is given the fake's clock reading and the number of requests
in flight (this one included) and says whether this request gets through; nothing here reads a
clock or sleeps, so each is tested with plain numbers::

    bucket = TokenBucket(rate=2, burst=1)
    assert bucket.admit(now=0.0, inflight=1)
    assert not bucket.admit(now=0.1, inflight=1)     # 0.2 token so far
    assert bucket.admit(now=0.5, inflight=1)         # a whole token again

One object held by one :class:`FakeTracker` is one limit, whatever number of clients share it.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

__all__ = [
    "FixedWindow",
    "InFlightCap",
    "Limit",
    "Schedule",
    "SlidingWindow",
    "TokenBucket",
    "parse_limit",
]


@runtime_checkable
class Limit(Protocol):
    """What a limit shape does: admit a request at ``now`` with ``inflight`` in flight, or not."""

    def admit(self, now: float, inflight: int) -> bool:
        """Whether the request arriving at ``now`` gets through (and is counted)."""
        ...


def _positive(name: str, value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


class TokenBucket:
    """``rate`` tokens a second into a bucket of ``burst``; a request takes one or gets 429.

    The bucket starts full at the first request. ``rate`` and ``burst`` may be changed between
    requests (the tokens saved so far are kept, up to the new ``burst``).
    """

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int = 20) -> None:
        _positive("rate", rate)
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at: float | None = None

    def admit(self, now: float, inflight: int = 1) -> bool:
        burst = float(self.burst)
        if self._at is None:
            tokens = burst
        else:
            tokens = min(burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate!r}, burst={self.burst!r})"


class FixedWindow:
    """At most ``limit`` requests in each window of ``window`` seconds, aligned on the clock
    (``[k*window, (k+1)*window)``); the count starts again at each boundary."""

    __slots__ = ("_count", "_index", "limit", "window")

    def __init__(self, limit: int, window: float = 1.0) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        _positive("window", window)
        self.limit = limit
        self.window = window
        self._index: int | None = None
        self._count = 0

    def admit(self, now: float, inflight: int = 1) -> bool:
        index = math.floor(now / self.window)
        if index != self._index:
            self._index = index
            self._count = 0
        if self._count < self.limit:
            self._count += 1
            return True
        return False

    def __repr__(self) -> str:
        return f"FixedWindow(limit={self.limit!r}, window={self.window!r})"


class SlidingWindow:
    """At most ``limit`` requests admitted in any ``window`` seconds (a sliding log): a
    request at ``t`` gets through if fewer than ``limit`` were admitted in ``(t - window, t]``."""

    __slots__ = ("_log", "limit", "window")

    def __init__(self, limit: int, window: float = 1.0) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        _positive("window", window)
        self.limit = limit
        self.window = window
        self._log: deque[float] = deque()

    def admit(self, now: float, inflight: int = 1) -> bool:
        log = self._log
        horizon = now - self.window
        while log and log[0] <= horizon:
            log.popleft()
        if len(log) < self.limit:
            log.append(now)
            return True
        return False

    def __repr__(self) -> str:
        return f"SlidingWindow(limit={self.limit!r}, window={self.window!r})"


class InFlightCap:
    """At most ``n`` requests in flight at once (this one included); the rest get 429."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        self.n = n

    def admit(self, now: float, inflight: int) -> bool:
        return inflight <= self.n

    def __repr__(self) -> str:
        return f"InFlightCap({self.n!r})"


class Schedule:
    """A limit that changes over time: ``[(t0, shape0), (t1, shape1), ...]``.

    Each ``t`` is in seconds of the fake's clock from ``start`` (by default, the first request
    the schedule sees); ``shape`` applies from its ``t`` to the next one, the last one for
    ever. ``None`` as a shape (or before the first ``t``) means no limit::

        Schedule([(0, FixedWindow(200)), (60, FixedWindow(100)), (80, FixedWindow(200))])
    """

    __slots__ = ("_times", "shapes", "start")

    def __init__(
        self, steps: Iterable[tuple[float, Limit | None]], *, start: float | None = None
    ) -> None:
        ordered = list(steps)
        if not ordered:
            raise ValueError("a Schedule needs at least one (time, shape) step")
        times = [float(t) for t, _ in ordered]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError(f"the times of a Schedule must increase, got {times!r}")
        for _, shape in ordered:
            if shape is not None and not isinstance(shape, Limit):
                raise TypeError(f"not a limit shape: {shape!r}")
        self._times = times
        self.shapes: Sequence[Limit | None] = [shape for _, shape in ordered]
        self.start = start

    def current(self, now: float) -> Limit | None:
        """The shape in force at ``now`` (``None``: no limit)."""
        if self.start is None:
            self.start = now
        i = bisect.bisect_right(self._times, now - self.start) - 1
        return self.shapes[i] if i >= 0 else None

    def admit(self, now: float, inflight: int) -> bool:
        shape = self.current(now)
        return True if shape is None else shape.admit(now, inflight)

    def __repr__(self) -> str:
        steps = list(zip(self._times, self.shapes, strict=True))
        return f"Schedule({steps!r}, start={self.start!r})"


def _one(text: str) -> Limit:
    kind, _, args = text.strip().partition(":")
    values = [a.strip() for a in args.split(",")] if args.strip() else []
    try:
        if kind == "bucket" and len(values) in (1, 2):
            return TokenBucket(float(values[0]), int(values[1]) if len(values) > 1 else 20)
        if kind in ("fixed", "sliding") and len(values) in (1, 2):
            cls = FixedWindow if kind == "fixed" else SlidingWindow
            return cls(int(values[0]), float(values[1]) if len(values) > 1 else 1.0)
        if kind == "inflight" and len(values) == 1:
            return InFlightCap(int(values[0]))
    except ValueError as exc:
        raise ValueError(f"bad limit {text!r}: {exc}") from None
    raise ValueError(
        f"bad limit {text!r}; expected bucket:RATE[,BURST], fixed:N[,WINDOW], "
        "sliding:N[,WINDOW], inflight:N or schedule:T=SHAPE;T=SHAPE..."
    )


def parse_limit(text: str) -> Limit:
    """A limit shape from text (for command lines and config files).

    ``bucket:200,20`` (rate, burst), ``fixed:200,1`` and ``sliding:200,1`` (limit, window in
    seconds), ``inflight:10``, and ``schedule:0=bucket:200;20=bucket:100;40=none`` (a
    :class:`Schedule`; ``none`` for no limit).

    >>> parse_limit("sliding:200")
    SlidingWindow(limit=200, window=1.0)
    """
    text = text.strip()
    if text.startswith("schedule:"):
        steps: list[tuple[float, Limit | None]] = []
        for part in text[len("schedule:") :].split(";"):
            at, sep, shape = part.partition("=")
            try:
                t = float(at)
            except ValueError:
                sep = ""
            if not sep:
                raise ValueError(f"bad schedule step {part!r}; expected T=SHAPE")
            steps.append((t, None if shape.strip() == "none" else _one(shape)))
        return Schedule(steps)
    return _one(text)
