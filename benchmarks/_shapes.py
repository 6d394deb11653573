"""Rate-limit shapes in virtual time: the library's client against the fake, on trio's MockClock.

Each shape is a pure admission rule ``admit(now, inflight) -> bool`` given to the fake as its
``limit=`` (a refused request gets 429, with ``Retry-After`` or without); each also knows its
limit over time (``limit_at``), from which :func:`ideal_time` computes the ideal.
:func:`simulate` runs ``k`` separate :class:`tracker_links.TrackerClient` s (each
``n`` creates through ``bulk_create``) against one shaped fake and returns the virtual wall
time, the ideal time of the shape for the same work, and the 429s drawn. Hours of traffic take
seconds: trio's ``MockClock(autojump_threshold=0)`` jumps whenever every task sleeps.

Used by ``python -m benchmarks.shapes`` (the table of issue 16) and by the tests.
"""

from __future__ import annotations

import collections
import logging
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from tracker_links import TrackerClient
from tracker_links.testing import FakeTracker


class TokenBucket:
    """``rate`` requests/s, with a bucket of ``burst`` (full at the start)."""

    def __init__(self, rate: float, burst: float = 20.0) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, 0.0

    def admit(self, now: float, inflight: int) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def limit_at(self, now: float) -> float:
        return self.rate


class FixedWindow:
    """At most ``rate`` requests in each whole second ``[k, k + 1)``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.window, self.count = -1, 0

    def admit(self, now: float, inflight: int) -> bool:
        window = math.floor(now)
        if window != self.window:
            self.window, self.count = window, 0
        if self.count < self.rate:
            self.count += 1
            return True
        return False

    def limit_at(self, now: float) -> float:
        return self.rate


class SlidingWindow:
    """At most ``rate`` requests accepted in any 1-s interval."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.accepted: collections.deque[float] = collections.deque()

    def admit(self, now: float, inflight: int) -> bool:
        acc = self.accepted
        while acc and acc[0] <= now - 1.0:
            acc.popleft()
        if len(acc) < self.rate:
            acc.append(now)
            return True
        return False

    def limit_at(self, now: float) -> float:
        return self.rate


class InFlight:
    """At most ``cap`` requests in flight (the one arriving included)."""

    def __init__(self, cap: int, latency: float) -> None:
        self.cap, self.latency = cap, latency

    def admit(self, now: float, inflight: int) -> bool:
        return inflight <= self.cap

    def limit_at(self, now: float) -> float:
        return self.cap / self.latency


class Schedule:
    """A token bucket whose rate follows ``steps``: ``[(from_time, rate), ...]``."""

    def __init__(self, steps: Sequence[tuple[float, float]], burst: float = 20.0) -> None:
        self.steps = sorted(steps)
        self.bucket = TokenBucket(self.steps[0][1], burst)

    def limit_at(self, now: float) -> float:
        rate = self.steps[0][1]
        for start, r in self.steps:
            if now >= start:
                rate = r
        return rate

    def admit(self, now: float, inflight: int) -> bool:
        self.bucket.rate = self.limit_at(now)
        return self.bucket.admit(now, inflight)


class Stalling:
    """A token bucket behind a server that stalls now and then: for ``stall`` seconds, at
    random times ``every`` seconds apart on average, it serves nothing, then meets the
    backlog at once (only the admission waits: the answers keep the fake's latency). The
    bucket fills to its burst meanwhile and refuses the rest of the backlog: the 429s that
    real processes meet about once a minute at 188-196/s of a 200/s bucket (a busy host's or
    a network's jitter), which no pace under the limit avoids. The stalls start ``at`` the
    times given, or at times up to ``until`` drawn from ``seed``, or from the :mod:`random`
    module's generator (which :func:`simulate` seeds)."""

    def __init__(
        self,
        rate: float,
        burst: float = 20.0,
        *,
        every: float = 60.0,
        stall: float = 0.12,
        seed: int | None = None,
        until: float = 7200.0,
        at: Sequence[float] | None = None,
    ) -> None:
        self.bucket = TokenBucket(rate, burst)
        if at is None:
            draw = random.Random(random.getrandbits(64) if seed is None else seed)
            starts, t = [], 0.0
            while t < until:
                t += draw.expovariate(1.0 / every)
                starts.append(t)
            at = starts
        self.stalls = [(t, t + stall) for t in sorted(at)]
        self._next = 0

    def limit_at(self, now: float) -> float:
        return self.bucket.rate

    def admit(self, now: float, inflight: int) -> bool:
        stalls = self.stalls
        while self._next < len(stalls) and stalls[self._next][1] <= now:
            self._next += 1
        if self._next < len(stalls) and stalls[self._next][0] <= now:
            now = stalls[self._next][1]  # in a stall: served when it ends
        return self.bucket.admit(now, inflight)


Shape = TokenBucket | FixedWindow | SlidingWindow | InFlight | Schedule | Stalling


def ideal_time(shape: Shape, total: int) -> float:
    """The time a perfect client needs for ``total`` requests under ``shape``'s limit."""
    done, t, step = 0.0, 0.0, 0.01
    while done < total:
        done += shape.limit_at(t) * step
        t += step
    return t


def shaped_fake(shape: Shape, *args: Any, **kwargs: Any) -> FakeTracker:
    """The fake Tracker with ``shape`` as its limit (``FakeTracker(limit=...)``: any object
    with ``admit(now, inflight)``; these also know their limit over time, for the ideal)."""
    return FakeTracker(*args, limit=shape, **kwargs)


@attrs.frozen
class Result:
    wall: float  # virtual seconds until the last client finished
    ideal: float
    requests: int  # answered, 429s included
    refused: int  # answered 429
    finished: tuple[float, ...]  # each client's finish time
    failed: int  # items whose outcome is not CREATED

    @property
    def ratio(self) -> float:
        return self.wall / self.ideal

    @property
    def refused_share(self) -> float:
        return self.refused / max(1, self.requests)

    @property
    def spread(self) -> float:
        return max(self.finished) - min(self.finished)

    def row(self) -> dict[str, float]:
        return {
            "wall": round(self.wall, 2),
            "ideal": round(self.ideal, 2),
            "ratio": round(self.ratio, 3),
            "429_share": round(self.refused_share, 4),
            "spread": round(self.spread, 2),
            "failed": self.failed,
        }


def simulate(
    make_shape: Callable[[], Shape],
    *,
    n: int,
    clients: int = 1,
    latency: float = 0.05,
    max_concurrency: int = 16,
    rate_limit: float | None = None,
    retry_after: float | None = 1.0,
    stagger: float = 0.0,
    seed: int = 1,
    quota: bool = False,
    quota_rtt: float = 0.0,
) -> Result:
    """``clients`` separate clients, ``n`` creates each, against one shaped fake (trio).

    ``quota=True``: the clients share one :class:`tracker_links.FileQuota` (a temporary file,
    on the virtual clock), as processes that coordinate do; ``rate_limit`` is then the total.
    ``quota_rtt``: each of its operations takes that long (half before, half after the
    locked step), as a :class:`tracker_links.RedisQuota`'s round trip does."""
    import tempfile

    import trio
    import trio.testing

    from tracker_links import FileQuota

    log = logging.getLogger("tracker_links")
    level = log.level
    log.setLevel(logging.ERROR)  # the retries' warnings; restored after the run
    random.seed(seed)  # the client's backoff jitter draws from the module's generator
    # trio reverses each scheduling batch at random (its own generator): seeded, a run is
    # the same every time, so the tests are not flaky and the seeds of the benchmark differ.
    scheduler = getattr(getattr(trio, "_core", None), "_run", None)
    if scheduler is not None and hasattr(scheduler, "_r"):
        scheduler._r.seed(seed)
    shape = make_shape()
    total = n * clients
    ties = random.Random(seed)

    async def main() -> Result:
        fake = shaped_fake(
            shape,
            {"TEST": total + 1},
            latency=latency,
            # A hair of seeded jitter: trio breaks ties between equal deadlines by object
            # address, so exact ties would make runs differ.
            jitter=latency * 0.01,
            seed=seed,
            retry_after=retry_after,
            clock=trio.current_time,
            sleep=trio.sleep,
        )
        finished: list[float] = []
        failed = 0

        async def one(index: int) -> None:
            nonlocal failed
            await trio.sleep(index * stagger)
            start = 1 + index * n
            specs = [(f"TEST-{i}", f"TEST-{i + 1}", "relates") for i in range(start, start + n)]
            extra: dict[str, Any] = {}
            if quota_path is not None:
                shared = FileQuota(quota_path, clock=trio.current_time)
                extra["quota"] = _RoundTrip(shared, quota_rtt, ties)
            client: TrackerClient = fake.client(
                max_concurrency=max_concurrency,
                rate_limit=rate_limit,
                clock=trio.current_time,
                sleep=trio.sleep,
                **extra,
            )
            async with client:
                report = await client.links.bulk_create(specs)
            failed += sum(1 for o in report.outcomes if o.status.value != "created")
            finished.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            for i in range(clients):
                nursery.start_soon(one, i)
        stats = fake.stats
        return Result(
            wall=max(finished),
            ideal=ideal_time(make_shape(), total),
            requests=stats.total,
            refused=stats.rate_limited,
            finished=tuple(sorted(finished)),
            failed=failed,
        )

    with tempfile.TemporaryDirectory() as tmp:
        quota_path = f"{tmp}/quota" if quota else None
        try:
            result: Result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        finally:
            log.setLevel(level)
    return result


class _RoundTrip:
    """A quota whose operations take ``rtt`` (virtual) seconds: half on the way there, half on
    the way back, as a Redis server's round trip (none: ``rtt=0``).

    A cool-down's wait gets a seeded hair of jitter: every waiting request of every client
    would wake at the cool-down's very end, and trio breaks ties between equal deadlines by
    object address, so which client's requests went first (and the run) changed every time."""

    def __init__(self, quota: Any, rtt: float, ties: random.Random) -> None:
        self.quota, self.half, self.ties = quota, rtt / 2, ties

    async def admit(
        self, interval: float | None, member: str, growth: float = 0.0, accepted: int = 0
    ) -> Any:
        import trio

        if self.half:
            await trio.sleep(self.half)
        answer = await self.quota.admit(interval, member, growth, accepted)
        if self.half:
            await trio.sleep(self.half)
        if not answer.booked:
            answer = attrs.evolve(answer, wait=answer.wait + 1e-6 * self.ties.random())
        return answer

    async def rate_limited(self, epoch: int, cooldown: float, adaptive: Any) -> bool:
        import trio

        if self.half:
            await trio.sleep(self.half)
        news: bool = await self.quota.rate_limited(epoch, cooldown, adaptive)
        if self.half:
            await trio.sleep(self.half)
        return news

    async def __aenter__(self) -> Any:
        await self.quota.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.quota.__aexit__(*exc)


LATENCY = 0.05
RATE = 200.0

#: name -> (shape factory, Retry-After), the shapes of issue 16.
SHAPES: dict[str, tuple[Callable[[], Shape], float | None]] = {
    "bucket, burst 20": (lambda: TokenBucket(RATE, 20), 1.0),
    "bucket, burst 200": (lambda: TokenBucket(RATE, 200), 1.0),
    "fixed 1-s window": (lambda: FixedWindow(RATE), 1.0),
    "sliding 1-s window": (lambda: SlidingWindow(RATE), 1.0),
    "fixed window, no Retry-After": (lambda: FixedWindow(RATE), None),
    "sliding window, no Retry-After": (lambda: SlidingWindow(RATE), None),
    "10 in flight (50 ms)": (lambda: InFlight(10, LATENCY), 1.0),
    "200/s, 100/s for 20 s, 200/s": (
        lambda: Schedule([(0.0, RATE), (10.0, RATE / 2), (30.0, RATE)]),
        1.0,
    ),
}
