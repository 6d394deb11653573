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

from ._exceptions import InvalidInputError

__all__ = ["AdaptiveRate", "RateGate", "RetryPolicy"]


def _positive(name: str) -> Callable[[object, attrs.Attribute[float], float], None]:
    def check(_: object, attr: attrs.Attribute[float], value: float) -> None:
        if not value > 0:
            raise InvalidInputError(f"RetryPolicy.{attr.name} must be > 0, got {value!r}")

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
            raise InvalidInputError(f"RetryPolicy.attempts must be >= 1, got {self.attempts!r}")

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
    first 429 for a request sent after the last cool-down ended (the later 429s of the same
    burst tell nothing new). Each event costs a whole shared cool-down, so the rate must be
    found with very few of them:

    1. The first event ends the unlimited start. What got through was mostly the service's
       burst allowance, so the rate restarts low and climbs fast ("slow start": x1.5 every
       quarter second, a schedule known exactly).
    2. The second event ends slow start. The accepted count over the climb, minus the burst,
       equals the integral of ``min(send rate, limit)``: solved for the limit, it gives a good
       estimate; the rate goes to ``settle`` times that.
    3. After that the rate creeps up by ``increase`` (a fraction per second). An event then
       means the rate in force when the rejected request was sent was just over the limit:
       the rate goes back to ``backoff`` times it (and never above what was measured).

    Every state is bounded: the rate never exceeds ``max_rate``, and an event after the rate
    climbed there (or after a slow start longer than the memory of accepted answers) starts
    over as at the first event, so a 429 after hours is handled like the first.
    """

    __slots__ = (
        "_accepted",
        "_burst",
        "_since",
        "_slow_start",
        "backoff",
        "increase",
        "max_rate",
        "min_rate",
        "rate",
        "settle",
        "window",
    )

    #: Slow start: the rate grows by this factor every ``_STEP`` seconds.
    _GROWTH: Final = 1.5
    _STEP: Final = 0.25

    def __init__(
        self,
        *,
        window: float = 2.0,
        settle: float = 0.95,
        backoff: float = 0.95,
        increase: float = 0.002,
        min_rate: float = 1.0,
        max_rate: float = 100_000.0,
    ) -> None:
        self.rate: float | None = None
        self.window = window
        self.settle = settle
        self.backoff = backoff
        self.increase = increase
        self.min_rate = min_rate
        self.max_rate = max_rate
        self._accepted: collections.deque[float] = collections.deque()
        self._burst = 0.0
        self._slow_start = False
        self._since = 0.0

    def on_accepted(self, now: float) -> None:
        """A request was answered with anything but 429."""
        acc = self._accepted
        acc.append(now)
        horizon = now - self._horizon()
        while acc[0] < horizon:
            acc.popleft()

    def current(self, now: float) -> float | None:
        """The rate to pace at now (requests/s), or ``None`` for no limit."""
        rate = self.rate
        if rate is None:
            return None
        since = now - self._since
        if since <= 0:
            return rate
        if self._slow_start:
            # Bounded in every state: the climb stops at ``max_rate`` (an exponent of hours
            # would overflow a float).
            steps = min(since / self._STEP, self._steps_to_max(rate))
            return min(self.max_rate, rate * math.pow(self._GROWTH, steps))
        return min(self.max_rate, rate * (1.0 + self.increase * since))

    def _steps_to_max(self, rate: float) -> float:
        return math.log(max(self.max_rate / rate, 1.0)) / math.log(self._GROWTH)

    def _horizon(self) -> float:
        return max(self.window, 8.0)

    def _count_since(self, start: float) -> tuple[int, float]:
        """Answers accepted since ``start``, and the time of the first of them."""
        recent = [t for t in self._accepted if t >= start]
        return len(recent), (recent[0] if recent else start)

    def on_event(self, now: float, sent_at: float, resumed_at: float, cooldown: float) -> None:
        """A 429 event at ``now`` for a request sent at ``sent_at``; sending had resumed at
        ``resumed_at`` after the previous cool-down; the new cool-down lasts ``cooldown``."""
        rate = self.rate
        sending = self.current(sent_at)
        climbed = self._slow_start and sent_at - max(self._since, resumed_at) > self._horizon()
        if rate is None or sending is None or sending >= self.max_rate or climbed:
            # The first event, or one after the rate grew unbounded by the service (the
            # client's own concurrency kept it under the limit, or the 429 was a one-off):
            # start again as at the first. What got through in the last cool-down's length
            # before it was mostly the service's burst allowance.
            span = max(cooldown, 1.0)
            accepted, _ = self._count_since(max(resumed_at, now - span))
            self._burst = float(accepted)
            new = accepted / span
            self._slow_start = True
        elif self._slow_start:
            start = max(self._since, resumed_at)
            accepted, _ = self._count_since(start)
            span = max(sent_at - start, 1e-3)  # the climb ended when the refused one was sent
            burst = min(self._burst, accepted / 4.0)
            limit = _solve_limit(accepted - burst, rate, self._GROWTH, self._STEP, span)
            new = self.settle * limit
            self._slow_start = False
        else:
            accepted, first = self._count_since(max(resumed_at, now - self.window))
            span = now - first
            measured = accepted / span if span >= 0.5 and accepted > 1 else sending
            # A 429 soon after resuming means the rate is well over the limit: back off more.
            factor = self.backoff if now - resumed_at >= 2.0 else self.backoff**3
            new = factor * min(sending, measured)
        self.rate = min(self.max_rate, max(self.min_rate, new))
        self._since = now + cooldown


def _solve_limit(accepted: float, r0: float, growth: float, step: float, span: float) -> float:
    """The limit R for which ``integral over [0, span] of min(r0 * growth**(t/step), R)``
    equals ``accepted``: what a service limited to R would have let through a slow start."""
    k = math.log(growth) / step

    def through(limit: float) -> float:
        if limit <= r0:
            return limit * span
        t_star = min(span, math.log(limit / r0) / k)
        return (r0 * math.exp(k * t_star) - r0) / k + limit * (span - t_star)

    if accepted <= r0 * span:
        return accepted / span
    lo, hi = r0, r0 * math.exp(k * span)
    if through(hi) <= accepted:
        return hi
    for _ in range(50):
        mid = (lo + hi) / 2
        if through(mid) < accepted:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


_BURST: Final = 5.0


@attrs.define
class RateGate:
    """Admission for every request of one client: fixed or adaptive pacing plus a cool-down.

    :meth:`delay` answers "how long until this request may go?": 0 means go now (and the slot
    is taken). A 429 starts a cool-down that holds back *all* new requests until its
    ``Retry-After`` has passed. Pacing is GCRA (a token bucket without a timer): a burst of
    ``rate / 20`` requests (50 ms worth, at least 1 and at most ``_BURST``) may go at once, the
    rest are spaced evenly. The burst stays small because the service's own bucket is unknown:
    a burst larger than it is answered 429 even at an average rate under its limit.
    """

    rate: float | None = None
    adaptive: AdaptiveRate | None = None
    cooldown_until: float = 0.0
    resumed_at: float = 0.0
    epoch: int = 0
    _tat: float = 0.0

    def delay(self, now: float) -> float:
        """0.0 and a slot taken, or the seconds to wait before asking again (nothing taken)."""
        return self._slot(now, book=False)

    def reserve(self, now: float) -> float:
        """Book the next slot and return the wait until it (0.0: go now).

        Unlike :meth:`delay`, a positive answer is a booking: sleep that long, then go, unless
        :attr:`epoch` changed meanwhile (a 429 started a cool-down and voided every booking).
        One sleep per request, instead of every waiting request waking for every slot. During
        a cool-down nothing is booked: the answer is the time left, and the caller asks again.
        """
        return self._slot(now, book=True)

    def _slot(self, now: float, *, book: bool) -> float:
        if now < self.cooldown_until:
            return self.cooldown_until - now
        tat = self._tat if self._tat > now else now
        rate = self.rate
        if rate is None and self.adaptive is not None:
            # The adaptive rate moves with time: book at the rate in force at the slot itself,
            # so slots booked during a climb follow the climb.
            rate = self.adaptive.current(tat)
        if rate is None:
            return 0.0
        interval = 1.0 / rate
        tolerance = interval * min(_BURST - 1.0, max(0.0, rate / 20.0 - 1.0))
        wait = tat - tolerance - now
        if wait > 0 and not book:
            return wait
        self._tat = tat + interval
        return max(0.0, wait)

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
                self.adaptive.on_event(now, sent_at, self.resumed_at, cooldown)
            self.resumed_at = self.cooldown_until
            self._tat = 0.0
            self.epoch += 1
        return event


DEFAULT_RETRY: Final = RetryPolicy()
