"""Retry and rate decisions as pure state machines: the clock and randomness are injected.

Nothing here sleeps or does I/O; :mod:`._transport` asks these objects *how long* to wait and
does the waiting itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

import attrs

from ._adaptive import AdaptiveRate, ConcurrencyWindow
from ._exceptions import InvalidInputError

__all__ = ["AdaptiveRate", "ConcurrencyWindow", "RateGate", "RetryPolicy"]


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


_BURST: Final = 5.0
_SPACING: Final = 1.001
#: A 429 for a request sent this soon after a guessed cool-down ended: the guess was too short.
_EARLY: Final = 0.25
_MAX_GUESS: Final = 60.0
#: A fixed rate whose requests in flight (``rate x latency``) fit this share of the learned
#: concurrency window does not probe above the window: more in flight would not go faster.
_ENOUGH: Final = 0.97
#: The weight of each new latency in the fixed rate's running mean.
_LATENCY_WEIGHT: Final = 0.125


@attrs.define
class RateGate:
    """Admission for every request of one client: fixed or adaptive pacing plus a cool-down.

    :meth:`delay` answers "how long until this request may go?": 0 means go now (and the slot
    is taken). A 429 starts a cool-down that holds back *all* new requests until its
    ``Retry-After`` has passed. Without ``Retry-After`` the cool-down is a guess
    (``cooldown_guess``, 1 s at first) that doubles whenever it proves too short (the service
    still refuses the first request after it: a window that had not reset yet), instead of the
    rate being cut for it. Pacing is GCRA (a token bucket without a timer): under the adaptive
    rate a burst of ``rate / 20`` requests (50 ms worth, at least 1 and at most ``_BURST``) may
    go at once, the rest are spaced evenly; a fixed ``rate`` has no burst (it is a ceiling).
    The burst stays small because the service's own bucket is unknown, and there is none
    after a cool-down: the requests that waited go out paced, not at once.

    ``window`` (a :class:`ConcurrencyWindow`) learns a cap on requests in flight from 429s
    that come with more in flight than any recent accepted request had. Under a fixed
    ``rate`` the window grows (probes above a learned cap) only while it is what holds the
    client under that rate (``rate x latency`` does not fit in it): a cap that carries the
    rate already is not probed again, so it draws no 429 after it was learned.
    """

    rate: float | None = None
    adaptive: AdaptiveRate | None = None
    window: ConcurrencyWindow | None = None
    cooldown_until: float = 0.0
    resumed_at: float = 0.0
    epoch: int = 0
    cooldown_guess: float = 1.0
    _tat: float = 0.0
    _smooth: bool = False
    _guessed: bool = False
    _probe_cut: float = float("-inf")
    _latency: float = 0.0

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

    def current_rate(self, now: float) -> float | None:
        """The rate in force now (requests/s), or ``None`` for no limit."""
        if self.rate is not None:
            return self.rate
        return self.adaptive.current(now) if self.adaptive is not None else None

    def _slot(self, now: float, *, book: bool) -> float:
        if now < self.cooldown_until:
            return self.cooldown_until - now
        tat = self._tat
        if tat < now:
            tat = now
        rate = self.rate
        if rate is None and self.adaptive is not None:
            # The adaptive rate moves with time: book at the rate in force at the slot itself,
            # so slots booked during a climb follow the climb.
            rate = self.adaptive.current(tat)
        if rate is None:
            return 0.0
        # A hair under the rate: exactly ``rate`` a second would put ``rate + 1`` in some 1-s
        # windows by float rounding (a sliding window refuses that one).
        interval = _SPACING / rate
        if self._smooth and now - self._tat > interval:
            self._smooth = False  # idle again since the cool-down: the small burst is allowed
        if self._smooth or self.rate is not None:
            # A fixed rate is a ceiling: no burst above it (a sliding window of ``rate``
            # refuses the burst's requests one second later).
            tolerance = 0.0
        else:
            tolerance = interval * min(_BURST - 1.0, max(0.0, rate / 20.0 - 1.0))
        wait = tat - tolerance - now
        if wait > 0 and not book:
            return wait
        self._tat = tat + interval
        return max(0.0, wait)

    def on_accepted(self, now: float, inflight: int = 0, latency: float = 0.0) -> None:
        """A request sent with ``inflight`` in flight (itself included) got an answer other
        than 429 after ``latency`` seconds."""
        if self.adaptive is not None:
            self.adaptive.on_accepted(now, latency)
        window = self.window
        if window is not None:
            window.on_accepted(now, inflight)
            rate = self.rate
            if rate is not None and latency > 0.0:
                # The mean latency (from the first answer on) says how many requests in
                # flight the fixed rate needs; while the window holds them, it need not grow.
                # (No latency given: nothing is known, the window grows as it would.)
                mean = self._latency
                mean = latency if mean == 0.0 else mean + _LATENCY_WEIGHT * (latency - mean)
                self._latency = mean
                if window.current(now) >= _ENOUGH * rate * mean:
                    window.hold(now)

    def on_rate_limited(
        self, now: float, sent_at: float, cooldown: float | None, inflight: int = 0
    ) -> bool:
        """A 429 for a request sent at ``sent_at`` with ``inflight`` in flight: start (or
        extend) the shared cool-down of ``cooldown`` seconds (``None``: no ``Retry-After``).

        Returns whether this was a new event (the first 429 since sending resumed) that
        started a cool-down: a failed probe above a known concurrency cap starts none.
        """
        window = self.window
        if window is not None and sent_at < self._probe_cut and inflight > window.current(now):
            return False  # sent before the failed probe's window shrank: the same news
        event = sent_at >= self.resumed_at
        # Only a paced request's 429 can point at a concurrency cap: an unpaced burst is
        # refused by a rate limit's burst allowance just the same.
        concurrency = (
            event
            and window is not None
            and self.current_rate(sent_at) is not None
            and window.on_rate_limited(now, inflight)
        )
        if concurrency and window is not None and window.reprobe:
            # A probe above a cap on requests in flight that is known already: the window is
            # back under it, so the others need not wait (the refused one waits its own delay).
            self._probe_cut = now
            return False
        too_short = False
        guessed = cooldown is None
        if cooldown is None:
            if event and self._guessed and sent_at - self.resumed_at < _EARLY:
                self.cooldown_guess = min(_MAX_GUESS, 2.0 * self.cooldown_guess)
                too_short = True
            cooldown = self.cooldown_guess
        until = now + cooldown
        if until > self.cooldown_until:
            self.cooldown_until = until
            if self._smooth and self._tat < until:
                self._tat = until  # sending resumes paced from the cool-down's new end
        if event:
            self._guessed = guessed
            if (
                not too_short
                and not concurrency
                and self.adaptive is not None
                and self.rate is None
            ):
                self.adaptive.on_event(now, sent_at, self.resumed_at, cooldown)
            self.resumed_at = self.cooldown_until
            self._tat = self.cooldown_until
            self._smooth = True
            self.epoch += 1
        return event


DEFAULT_RETRY: Final = RetryPolicy()
