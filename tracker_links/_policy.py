"""Retry and rate decisions as pure state machines: the clock and randomness are injected.

Nothing here sleeps or does I/O; :mod:`._transport` asks these objects *how long* to wait and
does the waiting itself.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Callable
from typing import Final

import attrs

__all__ = ["AdaptiveRate", "RateGate", "RetryPolicy"]


def _positive(name: str) -> Callable[[object, attrs.Attribute[float], float], None]:
    def check(_: object, attr: attrs.Attribute[float], value: float) -> None:
        if not value > 0:
            raise ValueError(f"RetryPolicy.{attr.name} must be > 0, got {value!r}")

    return check


@attrs.frozen
class RetryPolicy:
    """How a call retries: ``attempts`` counts the first try; times are in seconds.

    Retried: 429 (after its ``Retry-After``, or a backoff), 500/502/503/504 and transport
    errors. Backoff is exponential with full jitter, capped at ``backoff_cap``; ``deadline``
    bounds the retrying of one call (no retry is started that would end after it).

    >>> RetryPolicy(attempts=3, deadline=10.0)
    RetryPolicy(attempts=3, backoff_base=0.25, backoff_cap=30.0, deadline=10.0)

    ``RetryPolicy(attempts=1)`` disables retries.
    """

    attempts: int = 6
    backoff_base: float = attrs.field(default=0.25, validator=_positive("backoff_base"))
    backoff_cap: float = attrs.field(default=30.0, validator=_positive("backoff_cap"))
    deadline: float = attrs.field(default=120.0, validator=_positive("deadline"))

    def __attrs_post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts!r}")

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based): full jitter."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2.0 ** (attempt - 1)))
        return ceiling * rand()

    def next_delay(
        self,
        attempt: int,
        elapsed: float,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """The wait before try ``attempt + 1``, or ``None`` when no retry is allowed.

        ``elapsed`` is the time the call has spent so far; a service-given ``retry_after`` wins
        over the computed backoff.
        """
        if attempt >= self.attempts:
            return None
        delay = retry_after if retry_after is not None else self.backoff(attempt, rand)
        if elapsed + delay > self.deadline:
            return None
        return delay


class AdaptiveRate:
    """Find a service's unpublished rate limit from its 429s, and settle just under it.

    Until the first 429 there is no limit (only the concurrency cap). A 429 *event* is the
    first 429 for a request sent after the last cool-down ended; the later 429s of the same
    burst tell nothing new. On an event, the accepted rate is measured over the last
    ``window`` seconds since the previous cool-down; when that span is long enough the rate
    becomes ``backoff_factor`` times the measure, otherwise (the first burst: too short to
    measure) the client starts low and climbs fast ("slow start") until the next event gives a
    real measure. Between events the rate climbs slowly (``increase`` per second), so a long
    job sits just under the limit and meets a 429 rarely.
    """

    __slots__ = (
        "_accepted",
        "_burst_estimate",
        "_last_change",
        "_slow_start",
        "backoff_factor",
        "increase",
        "min_rate",
        "rate",
        "window",
    )

    def __init__(
        self,
        *,
        window: float = 2.0,
        backoff_factor: float = 0.97,
        increase: float = 0.004,
        min_rate: float = 1.0,
    ) -> None:
        self.rate: float | None = None
        self.window = window
        self.backoff_factor = backoff_factor
        self.increase = increase
        self.min_rate = min_rate
        self._accepted: collections.deque[float] = collections.deque()
        self._burst_estimate = 0.0
        self._slow_start = False
        self._last_change = 0.0

    def on_accepted(self, now: float) -> None:
        """A request was answered with anything but 429."""
        acc = self._accepted
        acc.append(now)
        horizon = now - self.window
        while acc[0] < horizon:
            acc.popleft()

    def current(self, now: float) -> float | None:
        """The rate to pace at now (requests/s), or ``None`` for no limit."""
        rate = self.rate
        if rate is None:
            return None
        since = now - self._last_change
        if since <= 0:
            return rate
        if self._slow_start:
            # Climb by half every quarter second until the next 429 measures the limit.
            grown = rate * math.pow(1.5, since / 0.25)
        else:
            grown = rate * (1.0 + self.increase * since)
        return grown

    def on_event(self, now: float, resumed_at: float, cooldown: float) -> None:
        """A 429 event at ``now``; sending had resumed at ``resumed_at`` after a cool-down."""
        start = max(resumed_at, now - self.window)
        span = now - start
        accepted = sum(1 for t in self._accepted if t >= start)
        current = self.current(now)
        if span >= 0.5 and accepted > 0:
            measured = max(0.0, accepted - self._burst_estimate) / span
            new = self.backoff_factor * measured
            if current is not None and not self._slow_start:
                new = min(new, current * self.backoff_factor)
            self._slow_start = False
        else:
            # Too short to measure: what got through was the service's burst allowance.
            self._burst_estimate = max(self._burst_estimate, float(accepted))
            base = accepted / max(cooldown, 1.0)
            new = base if current is None else min(current / 2.0, max(base, current / 4.0))
            self._slow_start = True
        self.rate = max(self.min_rate, new)
        self._last_change = now + cooldown


@attrs.define
class RateGate:
    """Admission for every request of one client: fixed or adaptive pacing plus a cool-down.

    :meth:`delay` answers "how long until this request may go?": 0 means go now (and the slot
    is taken). A 429 starts a cool-down that holds back *all* new requests until its
    ``Retry-After`` has passed. Pacing is GCRA (a token bucket without a timer): a burst of
    ``rate / 20`` requests (50 ms worth, at least 1) may go at once, the rest are spaced evenly.
    """

    rate: float | None = None
    adaptive: AdaptiveRate | None = None
    cooldown_until: float = 0.0
    resumed_at: float = 0.0
    _tat: float = 0.0

    def delay(self, now: float) -> float:
        """0.0 and a slot taken, or the seconds to wait before asking again."""
        if now < self.cooldown_until:
            return self.cooldown_until - now
        rate = self.rate
        if rate is None and self.adaptive is not None:
            rate = self.adaptive.current(now)
        if rate is None:
            return 0.0
        interval = 1.0 / rate
        tolerance = interval * max(0.0, rate / 20.0 - 1.0)
        tat = self._tat if self._tat > now else now
        if tat - tolerance > now:
            return tat - tolerance - now
        self._tat = tat + interval
        return 0.0

    def on_accepted(self, now: float) -> None:
        """A request got an answer other than 429."""
        if self.adaptive is not None:
            self.adaptive.on_accepted(now)

    def on_rate_limited(self, now: float, sent_at: float, cooldown: float) -> bool:
        """A 429 for a request sent at ``sent_at``: start (or extend) the shared cool-down.

        Returns whether this was a new event (the first 429 since sending resumed).
        """
        event = sent_at >= self.resumed_at
        until = now + cooldown
        if until > self.cooldown_until:
            self.cooldown_until = until
        if event:
            if self.adaptive is not None and self.rate is None:
                self.adaptive.on_event(now, self.resumed_at, cooldown)
            self.resumed_at = self.cooldown_until
            self._tat = 0.0
        return event


DEFAULT_RETRY: Final = RetryPolicy()
