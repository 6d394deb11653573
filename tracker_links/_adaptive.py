"""The adaptive rate and the learned concurrency window: pure state machines, ``now`` injected.

:class:`AdaptiveRate` finds a service's unpublished rate limit from its 429s;
:class:`ConcurrencyWindow` learns a cap on requests in flight. Neither sleeps nor does I/O:
:class:`._policy.RateGate` asks them for the rate (and window) in force and tells them about
answers; :mod:`._transport` applies the decisions.
"""

from __future__ import annotations

import collections
import math
from typing import Final

__all__ = ["AdaptiveRate", "ConcurrencyWindow"]

_MAX_GROW_EVERY: Final = 160.0
_SOON: Final = 2.0

#: The cubic climb is evaluated at most this long after a decrease (then it is flat at the
#: bound anyway): no power of a huge number is ever taken.
_CUBIC_SPAN: Final = 600.0

#: The least latency the capacity (``concurrency / latency``, the scale of the cubic climb)
#: is computed with: a shorter one says nothing about what the service lets through.
_LATENCY_FLOOR: Final = 0.04

#: The flat part of the curve at the plateau, before the probe above it: at first, and at most
#: (it doubles each time a probe fails just above the plateau: the limit is where it was).
_HOLD: Final = 2.0
_MAX_HOLD: Final = 40.0
#: The longest hold of a quota's members: the probe's 429 pauses all of them for its
#: cool-down (8 real processes lost about 1 s of everyone's sending at each of the 12
#: cool-downs of a 400-s run on a steady limit, most of them probes 13-55 s apart).
_MAX_HOLD_SHARED: Final = 60.0
#: A quota's member's hold grows this much (not twice) after a probe refused just above a
#: plateau that could not be refined any more (traced, 4 processes on a steady limit: the
#: probes after the second taught nothing, and each cost everyone a cool-down).
_GROW_SETTLED: Final = 4.0
#: A probe refused this close above the plateau (relative): the limit has not moved. What got
#: through a probe's last 2 s counts a bucket's burst too (20 over 2 s: 5% over a limit of
#: 200/s), and a member of a quota measures everyone's from its share: with 10%, probes of 8
#: processes on one quota read 215-217/s as a limit that rose (4 of 15 probes in a run of
#: 400 s), and the search started over.
_NARROW: Final = 0.15
#: After a probe above a plateau that held fails, the rate restarts this much under the next
#: plateau.
_PROBE_CUT: Final = 0.97
#: A plateau held this long before its probe was refused: the rate restarts just under the
#: next one (a shorter hold, as clients that share a limit see, cuts by ``beta``).
_LONG: Final = 8.0
#: A probe refused above this (relative to the plateau) proves that the plateau held.
_ABOVE: Final = 1.01
#: The plateau keeps this clear of the least rate refused (relative).
_CLEAR: Final = 0.99
#: A quota member's probe refused while no more than this (relative) over its plateau got
#: through tells nothing new of the limit the first time (see ``on_event``).
_FLAT: Final = 1.005
#: A probe refused far above the plateau (or the rate the slow start settled at): the next
#: plateau is this much under the rate accepted meanwhile (a bucket's burst inflates it).
_FAR: Final = 0.95
#: The slow start's estimate is replaced by the first second's count when that is this close
#: under it (a window's count, which the climb overestimates).
_PRIOR: Final = 0.8
#: The plateau is refined towards the least rate refused (by a probe just above it: what got
#: through then) only while that is this far above it (relative): a closer refinement gains
#: less than the cool-down a refusal costs (and a bucket's burst lifts what got through
#: before a refusal by a few percent: with 3%, the plateau rose over a bucket's limit and met
#: the full cut).
_FINE: Final = 0.95
#: The share of the first phase's window opening (in round trips) during which the service's
#: refills were lost, for a client counting its own answers (without a quota's count of
#: everyone's slots, see :func:`_envelope`). Calibrated on the benchmark's bucket of 20, not
#: derived: it also makes up for the few requests a client's slow start sends under its
#: schedule (with the burst read as a quota's member reads it, one client's estimates came
#: out 183-209/s of 200/s over 3 seeds, and the bucket's row 1.14x, not 1.09x).
_OPENING_OWN: Final = 0.5
#: The plateau after the slow start's rough estimate, relative to it.
_ROUGH: Final = 0.98
#: Refined this part of the way towards the least rate refused (a bucket's burst lets a
#: probe climb past the limit before it is refused: halfway overshoots).
_STEP_UP: Final = 0.25
#: The same refinement towards a rate refused exactly (a plateau refused at its own rate, not
#: a probe's count, which a burst lifts) goes on while that is this far above the plateau:
#: traced in real processes, a slow start's estimate came out 1.5% over the limit, its
#: plateau was refused there, and with :data:`_FINE` the plateau stayed 3.6% under the limit
#: for the last 130 s (every later probe was refused far above it and taught nothing).
_FINE_EXACT: Final = 0.98
#: After the slow start the climb to its rough estimate, and the probe above it, are this
#: much steeper (the cube of the speed-up) than around a plateau that held.
_SEARCH: Final = 8.0
#: After a limit dropped, the probe above the next plateau is this much steeper.
_AFTER_DROP: Final = 8.0


class AdaptiveRate:
    """Find a service's unpublished rate limit from its 429s, and settle just under it.

    Until the first 429 there is no limit (only the concurrency cap). A 429 *event* is the
    first 429 for a request sent after the last cool-down ended (the later 429s of the same
    burst tell nothing new). Each event costs a whole cool-down, so the rate must be found
    with very few of them:

    1. The first event ends the unlimited start. What got through was mostly the service's
       burst allowance, so the rate restarts low and climbs fast ("slow start": x1.5 every
       quarter second, a schedule known exactly).
    2. The second event ends slow start. The accepted count over the climb, minus the burst
       (what the first phase got through beyond the limit while the client's window was
       open; with a quota's count, the most it got through beyond the limit over any span
       ending at its 429), equals the integral of ``min(send rate, limit)``: solved for the
       limit, it gives an estimate; the rate goes to ``settle`` times that and climbs to a
       plateau 2% under it, held 4 s. When the first second's count is close under the
       estimate, that count is the plateau instead (a window's, which the climb
       overestimates). The climb's estimate is rough, so the climb to it and the probe above
       it are steeper than later; a 429 before anything held above it comes down to just
       under what got through, without the cut of step 3.
    3. After that the rate follows a cubic curve (as TCP CUBIC does): from ``beta`` times the
       rate that met the 429 it climbs back to that rate in ``recover`` seconds, flattens out
       just under it, then probes above it, ever faster, so that a limit that rose is found
       within tens of seconds. An event cuts the rate to ``beta`` times the rate in force (or
       what was measured, if lower), never below ``floor`` times the rate the service had
       just accepted; the curve then flattens at ``plateau`` times that rate (just under the
       one that met the 429, so that the next 429 comes late: each costs a cool-down), and
       probes above it ``probe`` times as steeply as it climbed back.
    4. The plateau is held ``hold`` seconds before the probe. A probe refused above the
       plateau proves the plateau held: the limit lies between the two. While they are near
       (the limit stayed put) the next plateau is a quarter of the way from the rate that held
       to the least rate that got through when a probe was refused (until within 5%; within
       2% of a plateau that was itself refused, a rate no burst lifted), the
       rate restarts just under it (by ``beta`` if the plateau was held less than 8 s, as
       clients that share a limit see), and the hold doubles (up to 40 s, and half the time
       the limit has stayed put; a quota's members, whose every probe pauses all of them,
       up to 60 s and the whole time, and four times over once the plateau was as close as
       it gets and a probe still found nothing new): on a steady limit the cool-downs become
       rare. A plateau above the one that held that is refused is cut by ``beta`` and the
       next one goes back towards the one that held. A 429 on the climb back or on a plateau
       that had held means the limit dropped (or other clients took more of it): the cut of
       step 3, and the search starts over with no hold. (Unless the plateau had held long
       and as much as ever got through: it was a hair over the limit, which a bucket's burst
       hides for long. For a quota's members, whose rate is everyone's, a refusal at a
       plateau refined up to the least rate refused is such a hair however short it held,
       and a probe refused barely above the plateau takes the small cut, not ``beta``.)
    5. One 429 at a rate the service had just let through (under the plateau that held, or on
       the slow start's plateau after its hold) is taken for jitter, the sends bunched on
       their way: the cool-down, and the climb back to the same plateau, nothing learned. Only
       a second one in a row is read as above. For a quota's members (whose count of what got
       through is their share's times the members: too rough to tell a hair from a drop) so is
       one on the plateau that held, and one of a probe before anything above the plateau got
       through.

    Every state is bounded: the rate stays within ``[min_rate, max_rate]``, and an event after
    the rate climbed to ``max_rate`` (or after a slow start longer than the memory of accepted
    answers) starts over as at the first event, so a 429 after hours is handled like the first.
    """

    __slots__ = (
        "_accepted",
        "_burst",
        "_burst_span",
        "_c",
        "_c_probe",
        "_envelope",
        "_exact",
        "_hi",
        "_hold",
        "_k",
        "_latency",
        "_lo",
        "_noise",
        "_peak",
        "_searching",
        "_since",
        "_slow_start",
        "_stable",
        "_w_max",
        "beta",
        "concurrency",
        "coordinated",
        "everyone",
        "floor",
        "max_rate",
        "min_rate",
        "opening",
        "plateau",
        "probe",
        "rate",
        "recover",
        "scale",
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
        beta: float = 0.9,
        recover: float = 12.0,
        floor: float = 0.5,
        min_rate: float = 1.0,
        max_rate: float = 100_000.0,
        concurrency: int = 16,
        plateau: float = 0.97,
        probe: float = 8.0,
    ) -> None:
        self.rate: float | None = None
        """The rate at the start of the current phase (``None``: no limit yet)."""
        self.window = window
        self.settle = settle
        self.beta = beta
        self.recover = recover
        self.floor = floor
        self.min_rate = min_rate
        self.max_rate = max_rate
        self.plateau = plateau
        self.probe = probe
        self._accepted: collections.deque[float] = collections.deque()
        self._burst = 0.0
        self._burst_span = 0.0
        # What the first phase got through, as (count, span) pairs ending at its 429: the
        # burst of a limit R is the most any of them got through beyond R over its span.
        self._envelope: list[tuple[float, float]] = []
        self._slow_start = False
        self._searching = False
        self._since = 0.0
        self._w_max = 0.0
        self._k = 0.0
        self._c = 0.0
        self._c_probe = 0.0
        self._peak = 0.0
        self._latency = 0.0
        self._hold = _HOLD
        self._lo = 0.0
        self._hi = math.inf
        # Whether ``_hi`` is a plateau's own rate that was refused (exact), not what got
        # through a probe (which a bucket's burst lifts by about 5%).
        self._exact = False
        self._stable = 0.0
        self._noise = False
        self.concurrency = concurrency
        self.opening = 0.0
        """Round trips the client's window took to open at the start (it starts small)."""
        self.scale = 1.0
        """What this client's accepted answers are multiplied by to estimate everyone's (the
        number of processes sharing a quota; 1 alone)."""
        self.everyone: float | None = None
        """At an event, everyone's requests sent since sending resumed before the refused
        one, when a shared quota knows it (its slots booked): the slow start's count."""
        self.coordinated = False
        """Whether the rate is everyone's (the members of a shared quota pace together): there
        is no share to give up to clients it does not know of."""

    def on_accepted(self, now: float, latency: float = 0.0) -> None:
        """A request was answered with anything but 429, ``latency`` seconds after it was sent."""
        if latency > 0.0:
            self._latency += 0.05 * (latency - self._latency)
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
            steps = min(since / self._STEP, self._steps_to_max(rate))
            return min(self.max_rate, rate * math.pow(self._GROWTH, steps))
        # Through ``rate`` at 0 and ``w_max`` at ``k`` seconds, flat there for ``hold``
        # seconds, then faster.
        t = since - self._k
        if t < 0.0:
            value = self._w_max + self._c * (t * t * t)
        else:
            t = min(max(0.0, t - self._hold), _CUBIC_SPAN)
            value = self._w_max + self._c_probe * (t * t * t)
        return min(self.max_rate, max(self.min_rate, value))

    @property
    def slow_start(self) -> bool:
        """Whether the rate is still climbing fast to find the limit."""
        return self._slow_start

    def _steps_to_max(self, rate: float) -> float:
        return math.log(max(self.max_rate / rate, 1.0)) / math.log(self._GROWTH)

    def _horizon(self) -> float:
        return max(self.window, 8.0)

    def _count_since(self, start: float) -> tuple[float, float]:
        """Answers accepted since ``start`` (times ``scale``), and the time of the first."""
        recent = [t for t in self._accepted if t >= start]
        return len(recent) * self.scale, (recent[0] if recent else start)

    def snapshot(self) -> list[float]:
        """The state that decides :meth:`current`, to share with other processes."""
        rate = -1.0 if self.rate is None else self.rate
        hi = -1.0 if math.isinf(self._hi) else self._hi  # JSON has no infinity
        return [rate, self._since, float(self._slow_start), self._w_max, self._k, self._c,
                self._burst, self._peak, self._hold, self._lo, hi, self._stable,
                float(self._searching), self._burst_span, float(self._noise),
                *(x for pair in self._envelope for x in pair), float(self._exact)]  # fmt: skip

    def restore(self, state: list[float]) -> None:
        """Take over a :meth:`snapshot` (of this or another process)."""
        rate, since, slow, w_max, k, c, burst, peak = (float(x) for x in state[:8])
        self.rate = None if rate < 0 else rate
        self._since, self._slow_start, self._w_max = since, bool(slow), w_max
        self._k, self._c, self._burst, self._peak = k, c, burst, peak
        self._c_probe = self._probe_scale(w_max, c)
        if len(state) >= 12:
            self._hold, self._lo, hi, self._stable = (float(x) for x in state[8:12])
            self._hi = math.inf if hi < 0 else hi
        if len(state) >= 13:
            self._searching = bool(state[12])
        if len(state) >= 14:
            # The span the burst was counted over (the slow start takes the burst off over
            # it): a process that had no 429 of the first phase has none of its own (without
            # it, the members of a quota settled at 135/s of a 200/s limit).
            self._burst_span = float(state[13])
        if len(state) >= 15:
            self._noise = bool(state[14])
        extra = [float(x) for x in state[15:]]
        # After the envelope's pairs, whether the least rate refused is exact (an odd tail;
        # a snapshot without it has an even one).
        self._exact = bool(extra.pop()) if len(extra) % 2 else False
        self._envelope = list(zip(extra[0::2], extra[1::2], strict=False))

    def measured(self, now: float, since: float) -> float | None:
        """The accepted rate over the last ``window`` seconds (not before ``since``), or
        ``None`` when that span is too short to tell."""
        accepted, first = self._count_since(max(since, now - self.window))
        span = now - first
        return accepted / span if span >= 0.5 and accepted > 1 else None

    def on_event(self, now: float, sent_at: float, resumed_at: float, cooldown: float) -> None:
        """A 429 event at ``now`` for a request sent at ``sent_at``; sending had resumed at
        ``resumed_at`` after the previous cool-down; the new cool-down lasts ``cooldown``."""
        rate = self.rate
        if rate is not None and sent_at < self._since:
            return  # sent before the current phase began (another process's news): nothing new
        sending = self.current(sent_at)
        recent, _ = self._count_since(now - 1.0)
        self._peak = max(self._peak, recent)
        climbed = self._slow_start and sent_at - max(self._since, resumed_at) > self._horizon()
        if rate is None or sending is None or sending >= self.max_rate or climbed:
            # The first event, or one after the rate grew unbounded by the service (the
            # client's own concurrency kept it under the limit, or the 429 was a one-off):
            # start again as at the first. What got through in the last cool-down's length
            # before it was mostly the service's burst allowance.
            span = max(cooldown, 1.0)
            accepted, first = self._count_since(max(resumed_at, now - span))
            self._burst = accepted
            self._burst_span = now - first
            self._envelope = _envelope([t for t in self._accepted if t >= first], now, self.scale)
            self._lo, self._hi, self._exact = 0.0, math.inf, False
            self._hold, self._noise = _HOLD, False
            self.rate = self._bounded(accepted / span)
            self._slow_start = True
            self._since = now + cooldown
            return
        if self._slow_start:
            start = max(self._since, resumed_at)
            accepted, _ = self._count_since(start)
            if self.everyone is not None:
                accepted = self.everyone
            span = max(sent_at - start, 1e-3)  # the climb ended when the refused one was sent
            # The climb from the rate it had reached at ``start``: later than the phase's start
            # when the cool-down was extended meanwhile (by another process of a quota).
            limit = self._through_climb(accepted, self.current(start) or rate, span)
            counted = _PRIOR * limit <= rate < limit
            if counted:
                # The first second before the first 429 let nearly as many through: a window's
                # count, which the climb overestimates (a fixed window's boundary lets the
                # rest of the last second's through too).
                limit = _CLEAR * rate
            self._slow_start = False
            self._searching = True
            self._stable = now
            # The climb's estimate is rough (a burst it cannot tell from the limit): its plateau
            # is a little under it (one over the limit cost a 429 before anything held), and
            # the climb to it and the probe above it are steeper than around a plateau that
            # held. A window's count is not rough: its plateau is the count, and its probe is
            # not steeper. Either is held 4 s (twice ``_HOLD``) before its probe (with 2 s,
            # buckets and windows met a third probe in 50 s: 1.11-1.12x).
            plateau = 1.0 if counted else _ROUGH
            new = self._decrease(now, min(limit, sending), self.settle, cooldown, plateau)
            self._hold = 2.0 * _HOLD
            self._c *= _SEARCH
            if not counted:
                self._c_probe *= _SEARCH
            self._k = math.pow(max(0.0, self._w_max - new) / self._c, 1 / 3)
            return
        measured = self.measured(now, resumed_at)
        w = sending if measured is None else min(sending, measured)
        plateau = self.plateau
        # How long the rate had been at (or over) the plateau when the refused one was sent.
        held = sent_at - self._since - self._k
        lo = self._lo
        probed = held > self._hold and sending > self._w_max * _ABOVE
        searching, self._searching = self._searching, False
        noise, self._noise = self._noise, False
        under = lo > 0.0 and sending < _CLEAR * lo
        above = sending > lo * 1.001
        # A quota's member: a refusal on the plateau that held, or of a probe before anything
        # above the plateau got through, is jitter once too. Its count of what got through is
        # its share's times the members (4 processes read 191-200/s of the same 200/s), too
        # rough to tell a hair over the limit from a limit that dropped (traced: a plateau of
        # 196.7/s, 15 s held, refused at its own rate, read by two of the three that met it as
        # a drop); a probe refused at 199.9/s of 200/s while 196.8/s had got through set the
        # least rate refused a hair over the plateau, which then stayed 1.7% under the limit
        # for the last 150 s of the run.
        flat = (
            self.coordinated
            and lo > 0.0
            and (
                (measured is not None and measured <= _FLAT * self._w_max) if probed else not above
            )
        )
        if not noise and ((not probed and (under or (searching and held > self._hold))) or flat):
            # Refused at a rate the service had just let through: under the plateau that
            # held, or on one held through its hold. Most likely the sends bunched on their
            # way (a network's or a busy server's jitter: real processes met this every minute
            # or so, 1-6 answers refused at 188-196/s of a 200/s bucket), not a limit that
            # moved. Once in a row: learn nothing, cool down and climb back to the same
            # plateau (the lesson of a limit that dropped, the cut of ``beta`` twice, cost
            # them 20 s at 80-90% and the hold learned so far). A second one in a row is
            # taken at its word (below).
            self._noise = True
            self._searching = searching
            self._decrease(now, self._w_max, _PROBE_CUT, cooldown)  # the hold stays
            return
        if searching and not probed and sent_at - resumed_at >= _SOON:
            # The estimate of the slow start was too high (nothing has held since): come down
            # to just under what got through, without the cut of a limit that dropped. Once:
            # another 429 soon after is one of a limit that dropped.
            self._refused(sending, exact=True)
            self._decrease(now, _FAR * w, _PROBE_CUT, cooldown)
            return
        if probed:
            # A probe above the plateau failed: the plateau held, the limit lies between it
            # and the rate the probe reached. (Refused barely above it, the plateau may have
            # been too high all along, only a bucket's burst letting it through for a while.)
            lo = self._lo = self._w_max
            if w <= lo * (1.0 + _NARROW):
                # Just above it: the limit is where it was. Refine between the two, and
                # probe less often (each probe costs a cool-down). Judged by what got through,
                # not by the rate sent: a bucket's burst lets a probe climb 10% past the limit
                # before it is refused, which looked like a limit that rose (and the hold
                # started over at 2 s).
                # A quota's member whose plateau was already as close to the least rate
                # refused as it gets (this probe could not refine it) probes much less often.
                settled = self.coordinated and self._between() == lo
                self._refused(w, exact=False)
                self._hold = self._longer_hold(now, _GROW_SETTLED if settled else 2.0)
                target = self._between()
            else:  # far above it: the limit rose; start the search over from what got through
                self._hi, self._exact = sending, False
                self._hold = _HOLD
                target = max(lo, _FAR * w)
            cut = _PROBE_CUT if held >= _LONG or searching else self.beta
            self._decrease(now, target, cut, cooldown)
            return
        # A plateau that had held long, refused at its own rate while as much as ever got
        # through: it was a hair over the limit, not under a limit that dropped (a bucket's
        # burst carries a small excess for long: a plateau of 201/s held 21 s on a bucket of
        # 200/s and 20, then the cut and the search started over).
        # For a quota's members, a refusal at a plateau refined up to the least rate refused
        # is a hair over the limit however short it held: the plateau came from what got
        # through (traced: a plateau of 200.3/s set by a probe, refused on its climb back at
        # 200.0 with 200/s getting through, was taken for a limit that dropped, and the
        # plateau stayed at 195/s for the last 100 s).
        edge = self.coordinated and sending >= _CLEAR * lo and self._hi * _FINE <= lo
        kept = measured is not None and measured >= _CLEAR * sending
        hair = not above and kept and ((held >= _LONG and sending > _CLEAR * self._hi) or edge)
        if lo > 0.0 and (above or hair):
            # A plateau above the one that held failed (or one a hair over the limit): the
            # limit lies between the two (and one that held just under the one refused was
            # lucky: keep clear of it). Above it, the cut is the whole ``beta``: clients that
            # share one limit without knowing of each other meet this too, and only a
            # multiplicative cut makes their shares converge (with the small one, 8 such
            # clients finished up to 58 s apart, not 50). A hair over it, the small cut.
            self._refused(sending, exact=True)
            self._lo = min(lo, _CLEAR * sending)
            probe = above and held > self._hold  # a probe refused just above the plateau
            if probe:
                self._hold = self._longer_hold(now)  # probe less often
            # A quota's probe refused barely above its plateau has no share to give up: the
            # small cut (with ``beta``, real processes lost 10% for ``recover`` seconds).
            small = not above or (probe and self.coordinated)
            self._decrease(now, self._between(), _PROBE_CUT if small else self.beta, cooldown)
            return
        # On the climb back, or on a plateau that had held: the limit dropped (or other
        # clients take more of it). What had held proves nothing any more, and a limit that
        # moved may move back: probe again soon.
        self._lo, self._hi, self._exact = 0.0, math.inf, False
        self._hold, self._stable = 0.0, now
        # Another 429 soon after resuming: the limit is well under the rate (it dropped).
        beta = self.beta if sent_at - resumed_at >= _SOON else self.beta * self.beta
        new = self._decrease(now, w, beta, cooldown, plateau)
        if measured is not None and new < self.floor * measured:
            # Never below half of what the service has just accepted, for one 429.
            self._decrease(now, w, self.floor * measured / w, cooldown, plateau)
        self._c_probe *= _AFTER_DROP  # a limit that moved may move back: find it soon

    def _through_climb(self, accepted: float, rate: float, span: float) -> float:
        """The limit that let ``accepted`` through a slow start of ``span`` seconds from
        ``rate``, less the service's burst (what the first phase got through above it)."""
        if self.everyone is not None and self._envelope:
            # A quota's count of everyone's slots: the burst of a limit R is the most the
            # first phase got through any span ending at its 429 beyond R over it (see
            # :func:`_envelope`). With the whole phase less a share of the window's opening
            # (as below), real processes read the burst as 35-40 of 20 (two traced runs),
            # and the limit as 116-134/s of 200/s.
            envelope = self._envelope
        else:
            # The window opened at the start (doubling each round trip): for about half of
            # that time the client sent under the limit, and the service's refills were lost.
            full = self._burst_span - _OPENING_OWN * self.opening * max(
                self._latency, _LATENCY_FLOOR
            )
            envelope = [(self._burst, max(0.0, full))]
        cap = accepted / 4.0
        limit = 0.0  # at first the whole first phase counts as burst
        for _ in range(5):
            burst = min(max(0.0, max(c - limit * d for c, d in envelope)), cap)
            limit = _solve_limit(accepted - burst, rate, self._GROWTH, self._STEP, span)
        return limit

    def _longer_hold(self, now: float, grow: float = 2.0) -> float:
        """``grow`` times the hold, but not longer than half the time the limit has stayed
        put (one that just moved may move back). A quota's member: up to the whole time, and
        :data:`_MAX_HOLD_SHARED` (each probe's cool-down pauses every member)."""
        cap, part = (_MAX_HOLD_SHARED, 1.0) if self.coordinated else (_MAX_HOLD, 0.5)
        longest = max(_HOLD, min(cap, part * (now - self._stable)))
        return min(longest, max(_HOLD, grow * self._hold))

    def _between(self) -> float:
        """The next plateau, between the rate that held and the least one refused: a quarter
        of the way while they are far apart, the one that held once they are within
        ``1 - _FINE`` (``1 - _FINE_EXACT`` of a plateau's own rate refused)."""
        lo, hi = self._lo, self._hi
        fine = _FINE_EXACT if self._exact else _FINE
        return lo + _STEP_UP * (hi - lo) if hi * fine > lo else lo

    def _refused(self, rate: float, *, exact: bool) -> None:
        """A refusal at ``rate``: the least rate refused, if under it. ``exact``: a plateau's
        own rate, not a probe's count of what got through (which a bucket's burst lifts)."""
        if rate < self._hi:
            self._hi, self._exact = rate, exact

    def _decrease(
        self, now: float, w: float, factor: float, cooldown: float, plateau: float = 1.0
    ) -> float:
        """Go to ``factor * w`` and climb back to ``plateau * w`` on the cubic curve."""
        w = self._bounded(w)
        new = self._bounded(factor * w)
        self._w_max = max(new, plateau * w)
        self.rate = new
        # The curve's scale: a cut of ``beta`` is made up in ``recover`` seconds; a smaller
        # cut sooner (the time goes with the cube root of the cut).
        # In absolute units, scaled by what this client could send at most (its concurrency
        # over the latency) or saw accepted in a second: clients that share one limit without
        # knowing of each other then climb alike, and a small share grows back as fast as a
        # large one (as in TCP CUBIC, this makes them converge).
        # Under ``_LATENCY_FLOOR`` the latency measures the loopback or this client's own CPU,
        # not the service: the capacity would be thousands of requests/s, the climb back near
        # instant and the probe above the plateau steep, so that a client with no latency and
        # 64 in flight met a 429 (and its cool-down) every 4 s against a 200/s bucket.
        latency = max(self._latency, _LATENCY_FLOOR)
        capacity = self.concurrency / latency if self._latency > 0.0 else 0.0
        c = max(w, self._peak, min(capacity, self.max_rate)) * (1.0 - self.beta) / self.recover**3
        self._c = c
        self._c_probe = self._probe_scale(self._w_max, c)
        self._k = math.pow(max(0.0, self._w_max - new) / c, 1 / 3)
        self._since = now + cooldown
        return new

    def _probe_scale(self, w_max: float, c: float) -> float:
        # Above the plateau, steeper by ``probe`` on this client's own scale (not the absolute
        # one of the climb back): a client alone finds a limit that rose soon, while the small
        # shares of clients that split one limit do not probe each other into 429s.
        return max(c, self.probe * w_max * (1.0 - self.beta) / self.recover**3)

    def _bounded(self, rate: float) -> float:
        return min(self.max_rate, max(self.min_rate, rate))


def _envelope(times: list[float], end: float, scale: float) -> list[tuple[float, float]]:
    """The answers accepted at ``times`` (ascending) before a 429 at ``end``, as the pairs
    (count, span) of the spans from each to ``end`` that can be the most beyond some limit R
    (the upper hull: a token bucket of burst B left empty at ``end`` had
    ``B = max(count - R * span)``, the most that got through any span beyond its refill)."""
    points = [((len(times) - i) * scale, end - t) for i, t in enumerate(times)]
    points.append((0.0, 0.0))
    points.sort(key=lambda p: p[1])
    hull: list[tuple[float, float]] = []
    for c, d in points:
        # Keep the hull concave (count over span): a point under the chord of its neighbours
        # is the most for no R.
        while len(hull) >= 2:
            (c1, d1), (c2, d2) = hull[-2], hull[-1]
            if (c2 - c1) * (d - d1) <= (c - c1) * (d2 - d1):
                hull.pop()
            else:
                break
        hull.append((c, d))
    return [p for p in hull if p[0] > 0.0]


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


class ConcurrencyWindow:
    """A learned cap on requests in flight, for services that limit concurrency, not rate.

    A 429 for a request sent with more requests in flight than any accepted one of the last
    seconds points at a concurrency cap: the window goes just under that level (an AIMD
    decrease). It grows back by one every ``grow_every`` seconds without such a 429, up to
    ``total`` (the client's ``max_concurrency``); each time a probe above the window fails
    again, the probes come four times less often (a cap that is real costs few 429s).
    :meth:`hold` stops the growth while the window does not limit the client (a fixed rate
    that the window carries already has nothing to gain from a probe).
    """

    __slots__ = (
        "_cut_at",
        "_grow_every",
        "_limit",
        "_ok",
        "_ok_at",
        "_ok_prev",
        "_starting",
        "reprobe",
        "total",
    )

    def __init__(self, total: int, *, grow_every: float = 10.0, initial: int | None = None) -> None:
        self.total = total
        self._grow_every = grow_every
        self._limit = total if initial is None else max(1, min(total, initial))
        self._starting = self._limit < total
        self._cut_at = 0.0
        # The most requests in flight seen with an accepted answer, per 2-s bucket.
        self._ok = 0
        self._ok_prev = 0
        self._ok_at = 0.0
        self.reprobe = False
        """Whether the last 429 taken for the cap was a probe above a cap already known (the
        window is back under it: nothing else to wait for)."""

    def on_accepted(self, now: float, inflight: int) -> None:
        if now - self._ok_at >= 2.0:
            self._ok_prev = self._ok if now - self._ok_at < 4.0 else 0
            self._ok, self._ok_at = 0, now
        if inflight > self._ok:
            self._ok = inflight
        self.grow()

    @property
    def opening(self) -> bool:
        """Whether the window is still opening, as at the start (see :meth:`grow`)."""
        return self._starting

    def grow(self) -> None:
        """At the start, one more in flight per answer that was not a 429 (twice as many each
        round trip), up to ``total``: clients starting together on one limit do not each
        send a whole window into it. A cut for a cap ends the start."""
        if self._starting:
            self._limit += 1
            self._starting = self._limit < self.total

    def recent_ok(self) -> int:
        """The most requests in flight that an accepted answer had, over the last seconds."""
        return max(self._ok, self._ok_prev)

    def on_rate_limited(self, now: float, inflight: int) -> bool:
        """A 429 event for a request sent with ``inflight`` in flight (itself included).

        Returns whether it was taken for a concurrency cap (and the window was cut).
        """
        self.reprobe = False
        if inflight <= 1 or inflight <= self.recent_ok():
            return False
        limit = max(1, min(self.current(now), inflight - 1))
        self._starting = False
        self.reprobe = limit >= self._limit
        if self.reprobe:
            # The probe above the window failed again: probe less often.
            self._grow_every = min(_MAX_GROW_EVERY, 4.0 * self._grow_every)
        self._limit = limit
        self._cut_at = now
        return True

    def hold(self, now: float) -> None:
        """The window is not what limits the client now: its growth (the next probe above a
        learned cap) waits for ``grow_every`` seconds from now; what it grew so far stays."""
        if self._limit < self.total:
            self._limit = self.current(now)
            self._cut_at = now

    def current(self, now: float) -> int:
        """The requests that may be in flight now."""
        limit = self._limit
        if limit >= self.total:
            return self.total
        grown = int((now - self._cut_at) / self._grow_every)
        if grown <= 0:
            return limit
        return min(self.total, limit + grown)
