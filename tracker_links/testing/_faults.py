"""Fault injection of the fake: latency and jitter, the rate limits, injected 5xx and drops.

:class:`Faults` decides, for each request, how long to wait, whether a limit answers 429,
and whether the request fails or its connection drops. The caller holds the shared lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ._context import Context
from ._knob import check_seconds, check_share
from ._limits import InFlightCap, Limit, TokenBucket, parse_limit
from ._payloads import DROP, MSG_429, Reply, error, too_many

__all__ = ["Faults", "LimitSetting", "check_inflight", "check_retry_after"]

LimitSetting = Limit | Sequence[Limit] | str | None
"""What ``limit=`` takes: one shape, several (each must admit a request), a text for
:func:`parse_limit` (``"sliding:200"``), or none."""

_MSG_INFLIGHT: Final = "Too many concurrent requests"


def check_inflight(name: str, value: Any) -> None:
    """``max_inflight``: an int >= 1, or None."""
    if value is not None and not value >= 1:
        raise ValueError(f"{name} must be >= 1 or None, got {value!r}")


def check_retry_after(name: str, value: Any) -> None:
    """``retry_after``: seconds >= 0, or None (no header)."""
    if value is not None and not value >= 0:
        raise ValueError(f"{name} must be >= 0 seconds or None, got {value!r}")


def _shapes(limit: LimitSetting) -> tuple[Limit, ...]:
    if limit is None:
        return ()
    if isinstance(limit, str):
        return (parse_limit(limit),)
    shapes = (limit,) if isinstance(limit, Limit) else tuple(limit)
    for shape in shapes:
        if not isinstance(shape, Limit):
            raise TypeError(f"limit must be a limit shape (TokenBucket, ...), got {shape!r}")
    return shapes


class Faults:
    """Latency, limits and injected failures, all drawing on the fake's one ``random``."""

    def __init__(
        self,
        ctx: Context,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        rate_limit: float | None = None,
        rate_burst: int = 20,
        retry_after: float | None = 1,
        max_inflight: int | None = None,
        limit: LimitSetting = None,
        fail_rate: float = 0.0,
        drop_rate: float = 0.0,
        drop_after_write: float = 0.5,
    ) -> None:
        check_seconds("latency", latency)
        check_seconds("jitter", jitter)
        check_share("fail_rate", fail_rate)
        check_share("drop_rate", drop_rate)
        check_share("drop_after_write", drop_after_write)
        if fail_rate + drop_rate > 1.0:
            raise ValueError("fail_rate + drop_rate must not exceed 1")
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be > 0 requests/s or None, got {rate_limit!r}")
        if rate_burst < 1:
            raise ValueError(f"rate_burst must be >= 1, got {rate_burst!r}")
        check_inflight("max_inflight", max_inflight)
        check_retry_after("retry_after", retry_after)
        self.ctx = ctx
        self.latency = latency
        self.jitter = jitter
        self.retry_after = retry_after
        self.max_inflight = max_inflight
        self.fail_rate = fail_rate
        self.drop_rate = drop_rate
        self.drop_after_write = drop_after_write
        self.inflight = 0
        self._burst = rate_burst
        self._bucket = None if rate_limit is None else TokenBucket(rate_limit, rate_burst)
        self._limit: LimitSetting = limit
        self._extra = _shapes(limit)
        self._checks: tuple[Limit, ...] = ()
        self._rebuild()

    def _rebuild(self) -> None:
        bucket = () if self._bucket is None else (self._bucket,)
        self._checks = bucket + self._extra

    # --- knobs that are more than a plain attribute --------------------------------------------

    @property
    def rate_limit(self) -> float | None:
        return None if self._bucket is None else self._bucket.rate

    @rate_limit.setter
    def rate_limit(self, value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError(f"rate_limit must be > 0 requests/s or None, got {value!r}")
        if value is None:
            self._bucket = None
        elif self._bucket is None:
            self._bucket = TokenBucket(value, self._burst)
        else:
            self._bucket.rate = value
        self._rebuild()

    @property
    def rate_burst(self) -> int:
        return self._burst

    @rate_burst.setter
    def rate_burst(self, value: int) -> None:
        if not value >= 1:
            raise ValueError(f"rate_burst must be >= 1, got {value!r}")
        self._burst = value
        if self._bucket is not None:
            self._bucket.burst = value

    @property
    def limit(self) -> LimitSetting:
        return self._limit

    @limit.setter
    def limit(self, value: LimitSetting) -> None:
        self._extra = _shapes(value)
        self._limit = value
        self._rebuild()

    # --- per request ---------------------------------------------------------------------------

    def admit(self) -> tuple[Reply | None, float]:
        """A request arrives: count it in flight, apply the limits; the 429 (or ``None``) to
        send and the delay to wait before answering. Pair with :meth:`release`."""
        self.inflight = inflight = self.inflight + 1
        stats = self.ctx.stats
        if inflight > stats.peak_inflight:
            stats.peak_inflight = inflight
        delay = self.latency
        if self.jitter:
            delay += self.ctx.random.uniform(0.0, self.jitter)
        if self.max_inflight is not None and inflight > self.max_inflight:
            stats.rate_limited += 1
            return too_many(_MSG_INFLIGHT, self.retry_after), delay
        checks = self._checks
        if checks:
            now = self.ctx.clock()
            for shape in checks:
                if not shape.admit(now, inflight):
                    stats.rate_limited += 1
                    message = _MSG_INFLIGHT if isinstance(shape, InFlightCap) else MSG_429
                    return too_many(message, self.retry_after), delay
        return None, delay

    def release(self) -> None:
        """The answer to an admitted request is out (or abandoned)."""
        self.inflight -= 1

    def fault(self, method: str) -> tuple[Reply | None, bool]:
        """An injected failure or drop to answer now (counted), and whether to drop the
        connection *after* the request took effect."""
        if self.fail_rate or self.drop_rate:
            stats = self.ctx.stats
            rng = self.ctx.random
            if self.fail_rate and rng.random() < self.fail_rate:
                status = rng.choice((500, 502, 503))
                stats.injected_failures += 1
                stats.requests[(method, status)] += 1
                return error(status, "Injected failure of the fake Tracker"), False
            if self.drop_rate and rng.random() < self.drop_rate:
                if rng.random() >= self.drop_after_write:
                    stats.dropped += 1
                    return DROP, False
                return None, True
        return None, False
