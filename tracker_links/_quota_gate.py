"""A client's side of a shared quota: its pacing, cool-down and learned rate through the quota.

:class:`QuotaGate` sits between the transport and a :class:`._quota.Quota`: each admission is
one round trip to the quota (a slot booked at the adaptive rate, the shared cool-down, the
learned rate taken over); each 429 is reported to it, and the first report of an epoch is the
quota's event: what this process learned from it becomes everyone's. The client's own
:class:`._policy.RateGate` keeps learning (the adaptive rate, the concurrency window).
"""

from __future__ import annotations

import collections
import math
import os
import secrets
from collections.abc import Callable
from typing import Any, Final

from ._quota import Admission, Quota

__all__ = ["QuotaGate", "new_member"]


def new_member() -> str:
    """A lease id for one client: unique across processes and machines."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


#: How this client's share of the quota is measured: samples this far apart, kept this long;
#: at a 429 event over the span the estimator counts (since the cool-down, this long at
#: most), from at least this many of its own slots.
_SAMPLE: Final = 0.01
_SHARE_SPAN: Final = 8.0
_EVENT_SPAN: Final = 2.0
_SHARE_MIN: Final = 5

#: The growth of the rate booked at is measured over this span (seconds).
_GROWTH_SPAN: Final = 1.0

#: At most this many of a client's requests hold a booked slot they wait for (or ask for one),
#: or as many as twice the quota's round trip takes at the rate (a Redis far away must not
#: cap the rate). A slot booked ahead goes out unless this process has heard of a 429 since
#: (at its next admission): with every worker of 8 processes holding one, the slots went out
#: up to 0.4 s after a 429 had ended the slow start, 50 of them answered 429.
_AHEAD_SLOTS: Final = 4

#: The entries of :meth:`AdaptiveRate.snapshot` that are times (the phase start, the time the
#: limit last moved): shared in the quota's clock, used in each process's own.
_TIMES: Final = (1, 11)


class QuotaGate:
    """A client's side of a shared quota: its local :class:`._policy.RateGate` keeps learning
    (adaptive rate, concurrency window); pacing and the cool-down go through ``quota``."""

    def __init__(self, quota: Quota, gate: Any, clock: Callable[[], float]) -> None:
        self.quota = quota
        self.gate = gate
        self.clock = clock
        self.member = new_member()
        self.offset = 0.0  # the quota's clock minus the local one
        self.version: list[float] | None = None
        self.resumed_at = 0.0  # when sending resumed after the shared cool-down (local clock)
        self.accepted = 0
        """This client's answers other than 429 (the transport counts them)."""
        self.reported = 0  # those of them sent to the quota
        self.everyone = 0  # everyone's, at the latest admission answered
        self.told = 0  # this client's included in ``everyone``
        self.members = 1  # live members, at the last admission
        self.samples: collections.deque[tuple[float, int, int]] = collections.deque()
        self.epoch = 0
        """The latest epoch this process knows of: a booking of an older one is void."""
        self.rate: float | None = None  # the rate booked at by the latest admission
        self.rtt = 0.0  # the quota's round trip (an average)
        if gate.adaptive is not None:
            gate.adaptive.coordinated = True  # the rate is everyone's: no share to give up

    def _interval(self, now: float) -> tuple[float | None, float]:
        """The spacing at ``now`` and how fast the rate grows (d ln rate / dt, per second).

        The adaptive rate moves with time: the quota books each slot at the rate in force at
        the slot itself. Booked at the rate of now, the slots of a slow start kept its first
        rate: 64 workers of 4 clients booked 16 s ahead at 4/s, and the climb went on,
        unbounded, with nothing sent. (At the rate of this process's own last slot, 128
        workers of 8 processes behind a round trip to Redis still booked 5 s ahead at 24/s:
        none of them knew where the others' bookings had left the timeline.)"""
        gate = self.gate
        rate = gate.current_rate(now)
        if rate is None:
            return None, 0.0
        growth = 0.0
        if gate.rate is None:
            later = gate.current_rate(now + _GROWTH_SPAN)
            if later is not None and later > rate:
                growth = math.log(later / rate) / _GROWTH_SPAN  # the secant over the span
        return 1.001 / rate, growth

    async def admit(self) -> Admission:
        """One round trip: a booked slot (sleep ``wait``, then go) or a cool-down to wait out."""
        gate = self.gate
        now = self.clock()
        interval, growth = self._interval(now)
        before = self.reported
        reported = self.reported = self.accepted  # before the round trip: others go on
        answer = await self.quota.admit(interval, self.member, growth, reported - before)
        back = self.clock()
        self.rtt += 0.1 * (back - now - self.rtt)
        self.rate = None if interval is None else 1.0 / interval
        if answer.accepted > self.everyone:
            self.everyone, self.told = answer.accepted, reported
        self._sample(now)
        self.offset = answer.now - back
        if answer.epoch > self.epoch:
            self.epoch = answer.epoch
        self.members = answer.members
        if not answer.booked and now + answer.wait > self.resumed_at:
            self.resumed_at = now + answer.wait  # the shared cool-down's end (or a lead's poll)
        adaptive = gate.adaptive
        if adaptive is not None and answer.adaptive is not None and answer.adaptive != self.version:
            shared = list(answer.adaptive)
            for at in _TIMES:  # its phase start (and the like), in this process's clock
                if at < len(shared):
                    shared[at] -= self.offset
            adaptive.restore(shared)  # the first phase's span with its burst included
            self.version = answer.adaptive
        return answer

    def ahead(self) -> int:
        """How many of this client's requests may hold a booked slot (or ask for one) at once:
        :data:`_AHEAD_SLOTS`, or what twice the quota's round trip takes at the rate."""
        if self.rate is None:
            return _AHEAD_SLOTS
        return max(_AHEAD_SLOTS, math.ceil(2.0 * self.rate * self.rtt))

    def _sample(self, now: float) -> None:
        samples = self.samples
        if not samples or now - samples[-1][0] >= _SAMPLE:
            samples.append((now, self.everyone, self.told))
            while now - samples[0][0] > _SHARE_SPAN:
                samples.popleft()

    def _share(self, since: float) -> float:
        """Everyone's accepted answers over this client's since ``since`` (as told at the
        admissions): what this client's over that span are multiplied by to estimate the
        quota's. The number of members says the same on average, but the shares of a shared
        timeline are not equal over a second or two: with it, 4 clients saw 212/s accepted
        from a limit of 200/s, and the first phase of 4 clients starting together (0.15 s)
        was counted as 36 of the 52 the service let through. (The shares of the slots booked
        were no better there: a 429's slot counts too.)"""
        for at, theirs, mine in self.samples:
            if at >= since:
                theirs, mine = self.everyone - theirs, self.told - mine
                if mine >= _SHARE_MIN:
                    return max(1.0, theirs / mine)
                break
        return float(max(1, self.members))

    async def rate_limited(
        self,
        epoch: int,
        now: float,
        sent_at: float,
        cooldown: float | None,
        inflight: int,
        slot: int = 0,
    ) -> None:
        """A 429 for a request admitted in ``epoch``, on the epoch's ``slot``-th slot (0: not
        known): the first report of an epoch is the quota's event; only then does what this
        process learns from it become everyone's."""
        gate = self.gate
        if epoch < self.epoch:
            # Of a burst this process knows of already (it reported it, or took the event from
            # the quota): nothing to learn. Judged again, each such 429 restarted the estimate
            # from the phase just begun (sending had "resumed" at the refused one's send).
            guess = gate.cooldown_guess if cooldown is None else cooldown
            await self.quota.rate_limited(epoch, guess, None)
            return
        adaptive = gate.adaptive
        before = adaptive.snapshot() if adaptive is not None else None
        # The quota decides what is news, but the estimator measures from when sending
        # resumed after the shared cool-down, not after this process's last 429: with that,
        # the climb of a slow start looked 1 ms long and the limit 4/s.
        gate.resumed_at = min(self.resumed_at, sent_at)
        if adaptive is not None:
            adaptive.scale = self._share(max(self.resumed_at, now - _EVENT_SPAN))
            # Everyone's requests sent since the cool-down before this one: the slots of the
            # epoch booked before its own, exact where this process's count times its share
            # was not (20 answers of 8 members' ~170: slow starts settled at 126-183/s of a
            # 200/s limit).
            adaptive.everyone = slot - 1 if slot > 0 else None
        # No count in flight: this process's own says nothing of a cap on everyone's, and at
        # the top of a slow start's climb it is the most ever, which looked like a cap: the
        # event went to the window, the rate that met it was shared as the rate to climb on.
        gate.on_rate_limited(now, sent_at, cooldown, 0)
        if adaptive is not None:
            adaptive.everyone = None
        wait = max(0.0, gate.cooldown_until - now)
        mine = after = None
        if adaptive is not None:
            mine = adaptive.snapshot()
            after = list(mine)
            for at in _TIMES:
                after[at] += self.offset
        self.epoch = epoch + 1  # the booked slots of this epoch are void now
        if await self.quota.rate_limited(epoch, wait, after):
            self.version = after
            return
        # Another process's report of the same burst came first: this 429 is not news. Undo
        # what this report changed, unless something changed it since: while the report was
        # on its way (a round trip to Redis), another request of this process may have taken
        # the event that came first from the quota, which an undo threw away (for good: that
        # state was marked as known, and the process paced at a rate from before the event).
        if adaptive is not None and before is not None and adaptive.snapshot() == mine:
            adaptive.restore(before)
        self.version = None  # the event that came first is in the quota: the next admit takes it
