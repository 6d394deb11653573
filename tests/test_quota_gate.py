"""A client's side of a shared quota (:class:`tracker_links._quota_gate.QuotaGate`).

The quota here is a stub whose report can be held "on its way" (a round trip to Redis), so that
what other requests of the same process do meanwhile is under the test's control.
"""

from __future__ import annotations

import itertools
import math

import anyio
import anyio.lowlevel
import pytest

from tracker_links._adaptive import AdaptiveRate, ConcurrencyWindow
from tracker_links._policy import RateGate
from tracker_links._quota import AHEAD, Admission, Shared, book
from tracker_links._quota_gate import _AHEAD_SLOTS, QuotaGate
from tracker_links.testing import FakeTracker


class HeldQuota:
    """A quota with one shared state; a report waits for :attr:`release` when ``hold``."""

    def __init__(self, *, news: bool, hold: bool = True) -> None:
        self.shared: list[float] | None = None
        self.epoch = 0
        self.now = 0.0
        self.news = news
        self.hold = hold
        self.reporting = anyio.Event()
        self.release = anyio.Event()
        self.reports: list[tuple[int, float, list[float] | None]] = []
        self.accepted = 0  # everyone's answers other than 429
        self.others = 0  # accepted answers of the other members per one of this client's

    async def admit(
        self, interval: float | None, member: str, growth: float = 0.0, accepted: int = 0
    ) -> Admission:
        self.accepted += accepted * (1 + self.others)
        return Admission(0.0, True, self.epoch, self.shared, 2, self.now, 0, self.accepted)

    async def rate_limited(self, epoch: int, cooldown: float, adaptive: list[float] | None) -> bool:
        self.reports.append((epoch, cooldown, adaptive))
        self.reporting.set()
        if self.hold:
            await self.release.wait()
        return self.news


def _slow_start() -> AdaptiveRate:
    """An adaptive rate in slow start since 2.0 (its first event at 1.0), 16 in flight."""
    rate = AdaptiveRate(concurrency=16)
    for i in range(40):
        rate.on_accepted(0.5 + i * 0.0125, 0.05)
    rate.on_event(1.0, 0.95, 0.0, 1.0)
    return rate


def _climbed(rate: AdaptiveRate) -> None:
    """Answers accepted along the climb, 2.0 to 4.0."""
    for i in range(200):
        rate.on_accepted(2.0 + i * 0.01, 0.05)


def _setup(quota: HeldQuota) -> tuple[QuotaGate, RateGate, list[float]]:
    now = [2.0]
    gate = RateGate(adaptive=AdaptiveRate(concurrency=16), window=ConcurrencyWindow(16))
    shared = QuotaGate(quota, gate, lambda: now[0])
    quota.shared, quota.epoch, quota.now = _slow_start().snapshot(), 1, 2.0
    return shared, gate, now


async def test_a_report_that_is_not_news_keeps_the_event_taken_meanwhile(
    anyio_backend: str,
) -> None:
    quota = HeldQuota(news=False)
    shared, gate, now = _setup(quota)
    await shared.admit()  # the slow start, from the quota
    adaptive = gate.adaptive
    assert adaptive is not None
    assert adaptive.snapshot() == quota.shared
    _climbed(adaptive)
    before = adaptive.snapshot()
    # Another process's 429 of the same burst; its report reaches the quota first.
    other = _slow_start()
    _climbed(other)
    other.on_event(4.0, 3.99, 2.0, 1.0)
    theirs = other.snapshot()
    now[0] = quota.now = 4.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(shared.rate_limited, 1, 4.0, 3.98, 1.0, 4)
        await quota.reporting.wait()
        mine = adaptive.snapshot()
        assert mine != before  # this process learned from its own 429 (the slow start ended)
        # While the report is on its way, another request of this process is admitted and
        # takes the event that came first from the quota.
        quota.shared, quota.epoch = theirs, 2
        await shared.admit()
        assert adaptive.snapshot() == theirs != mine
        quota.release.set()
    # The report was not news: the process keeps the quota's event, not its state of before
    # (which an undo of everything put back, for good: the quota's state was marked known).
    assert adaptive.snapshot() == theirs
    await shared.admit()
    assert adaptive.snapshot() == theirs


async def test_a_report_that_is_not_news_is_undone(anyio_backend: str) -> None:
    quota = HeldQuota(news=False, hold=False)
    shared, gate, now = _setup(quota)
    await shared.admit()
    adaptive = gate.adaptive
    assert adaptive is not None
    _climbed(adaptive)
    before = adaptive.snapshot()
    now[0] = 4.0
    await shared.rate_limited(1, 4.0, 3.98, 1.0, 4)
    assert quota.reports[0][2] != before  # it offered what it learned
    assert adaptive.snapshot() == before  # and, not news, took it back


async def test_a_429_of_a_burst_already_reported_is_not_learned_again(anyio_backend: str) -> None:
    quota = HeldQuota(news=True)
    shared, gate, now = _setup(quota)
    await shared.admit()
    adaptive = gate.adaptive
    assert adaptive is not None
    _climbed(adaptive)
    now[0] = 4.0
    quota.hold = False
    await shared.rate_limited(1, 4.0, 3.98, 1.0, 4)  # the event: epoch 1 is over
    learned = adaptive.snapshot()
    quota.hold, quota.news = True, False
    async with anyio.create_task_group() as tg:
        tg.start_soon(shared.rate_limited, 1, 4.01, 3.99, 1.0, 5)  # the same burst
        await quota.reporting.wait()
        assert adaptive.snapshot() == learned  # not touched, not even while it reports
        quota.release.set()
    assert quota.reports[-1] == (1, 1.0, None)  # the cool-down only
    assert adaptive.snapshot() == learned


async def test_a_429_at_the_top_of_a_climb_is_the_rates_not_a_cap(anyio_backend: str) -> None:
    # More in flight than any accepted answer had: alone, a cap on requests in flight; over
    # a quota the count is this process's own, and the slow start must end on it.
    quota = HeldQuota(news=True, hold=False)
    shared, gate, now = _setup(quota)
    await shared.admit()
    adaptive, window = gate.adaptive, gate.window
    assert adaptive is not None
    assert window is not None
    for i in range(200):
        gate.on_accepted(2.0 + i * 0.01, 2, 0.05)
    assert adaptive.slow_start
    now[0] = 4.0
    await shared.rate_limited(1, 4.0, 3.98, 1.0, 9)
    assert not adaptive.slow_start
    assert window.current(4.0) == 16


async def test_an_event_scales_by_the_share_of_the_answers_accepted(anyio_backend: str) -> None:
    # The others had 3 accepted answers for each of this client's since the cool-down (and
    # none before): its counts are a quarter of the quota's, whatever the members' number.
    quota = HeldQuota(news=True, hold=False)
    shared, gate, now = _setup(quota)
    adaptive = gate.adaptive
    assert adaptive is not None
    now[0] = 1.5
    await shared.admit()
    shared.accepted += 50  # before the cool-down ended: another span
    now[0] = 1.9
    await shared.admit()
    shared.resumed_at = 2.0
    quota.others = 3
    for i in range(40):
        now[0] = 2.0 + 0.05 * i
        shared.accepted += 1
        await shared.admit()
    now[0] = 4.0
    await shared.rate_limited(1, 4.0, 3.98, 1.0, 4)
    assert adaptive.scale == pytest.approx(4.0)


async def test_the_first_phases_span_is_shared_with_its_burst(anyio_backend: str) -> None:
    # The slow start's estimate takes the first phase's burst off over that phase's span: a
    # member that had no 429 then has no span of its own (it took all of the burst off).
    quota = HeldQuota(news=True, hold=False)
    shared, gate, now = _setup(quota)
    reporter = _slow_start()
    assert reporter._burst_span > 0.0
    adaptive = gate.adaptive
    assert adaptive is not None
    assert adaptive._burst_span == 0.0
    quota.shared = reporter.snapshot()  # the span is in it
    await shared.admit()
    assert adaptive._burst_span == reporter._burst_span
    assert adaptive.snapshot() == reporter.snapshot()
    # What this member reports carries its span too.
    _climbed(adaptive)
    now[0] = 4.0
    await shared.rate_limited(1, 4.0, 3.98, 1.0, 4)
    assert quota.reports[-1][2] is not None
    assert quota.reports[-1][2][13] == adaptive._burst_span


def test_book_sums_everyones_accepted_answers() -> None:
    state = Shared()
    assert book(state, 0.0, 0.01, "a", accepted=3).accepted == 3
    assert book(state, 0.0, 0.01, "b", accepted=2).accepted == 5
    assert book(state, 0.0, None, "a").accepted == 5


def test_book_at_the_rate_of_the_slot() -> None:
    # 8/s now, doubling every second: the slots are spaced at the rate in force at each.
    state = Shared()
    growth = math.log(2.0)
    slots = [book(state, 0.0, 0.125, "a", growth).wait for _ in range(30)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    for at, gap in zip(slots, gaps, strict=False):
        assert gap == pytest.approx(0.125 / 2.0 ** min(at, AHEAD))
    # Without growth, one spacing.
    flat = Shared()
    assert [book(flat, 0.0, 0.125, "a").wait for _ in range(3)] == [0.0, 0.125, 0.25]


class BookingQuota:
    """A quota that books every slot a second ahead, and counts the admissions."""

    def __init__(self) -> None:
        self.admits = 0

    async def admit(
        self, interval: float | None, member: str, growth: float = 0.0, accepted: int = 0
    ) -> Admission:
        self.admits += 1
        return Admission(1.0, True, 0, None, 1, 0.0, self.admits, 0)

    async def rate_limited(self, epoch: int, cooldown: float, adaptive: list[float] | None) -> bool:
        return True

    async def __aenter__(self) -> BookingQuota:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_a_client_holds_few_slots_booked_ahead(anyio_backend: str) -> None:
    # A slot booked ahead goes out unless the process has heard of a 429 since, at its next
    # admission: with all 16 workers holding one, 8 processes sent up to 0.4 s of them after
    # a 429 (50 answered 429 in the simulation). The others wait their turn in the process.
    quota, go = BookingQuota(), anyio.Event()

    async def sleep(seconds: float) -> None:
        if quota.admits > 20:  # the window has opened: every booked slot's wait holds now
            await go.wait()

    fake = FakeTracker({"TEST": 60})
    specs = [(f"TEST-{i}", f"TEST-{i + 1}", "relates") for i in range(1, 51)]
    client = fake.client(max_concurrency=16, rate_limit=100.0, quota=quota, sleep=sleep)
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(client.links.bulk_create, specs)
        for _ in range(200):  # checkpoints, not time: every worker gets to ask
            await anyio.lowlevel.checkpoint()
        assert client._transport.limiter.total == 16  # all 16 could go, 4 hold a slot
        assert quota.admits == 20 + _AHEAD_SLOTS == 24  # not 20 + 16
        go.set()
    assert quota.admits == 50
    assert fake.stats.total == 50


def test_a_quota_far_away_lets_more_slots_be_held_ahead() -> None:
    # 4 held slots would cap a client at 4 per round trip: 400/s through a Redis 10 ms away.
    gate = QuotaGate(BookingQuota(), RateGate(adaptive=AdaptiveRate()), clock=lambda: 0.0)
    assert gate.ahead() == _AHEAD_SLOTS  # nothing booked at a rate yet
    gate.rate, gate.rtt = 200.0, 0.0003  # a Redis next door: 4 cover it
    assert gate.ahead() == _AHEAD_SLOTS
    gate.rate, gate.rtt = 1_000.0, 0.01
    assert gate.ahead() == 20  # twice the round trip at the rate


class CoolingQuota(BookingQuota):
    """Books at once for the first 20 admissions; then answers with a cool-down of a second
    until :attr:`cooling` is turned off."""

    def __init__(self) -> None:
        super().__init__()
        self.cooling = True

    async def admit(
        self, interval: float | None, member: str, growth: float = 0.0, accepted: int = 0
    ) -> Admission:
        self.admits += 1
        cool = self.cooling and self.admits > 20
        return Admission(1.0 if cool else 0.0, not cool, 0, None, 1, 0.0, 0, 0)


async def test_a_window_that_shrank_during_a_cool_down_does_not_lock_the_client(
    anyio_backend: str,
) -> None:
    # The 4 requests that wait out the cool-down holding a slot of the quota's queue then find
    # the limiter over its (shrunk) total and queue for it again; the 12 that hold the limiter
    # wait for those slots. Queued for the limiter while holding one, nothing moved again.
    quota, go = CoolingQuota(), anyio.Event()

    async def sleep(seconds: float) -> None:
        if quota.cooling and quota.admits > 20:  # the window has opened: the cool-down holds
            await go.wait()

    fake = FakeTracker({"TEST": 60})
    specs = [(f"TEST-{i}", f"TEST-{i + 1}", "relates") for i in range(1, 51)]
    client = fake.client(max_concurrency=16, rate_limit=100.0, quota=quota, sleep=sleep)
    with anyio.fail_after(30):  # a guard: the run takes milliseconds
        async with client, anyio.create_task_group() as tg:
            tg.start_soon(client.links.bulk_create, specs)
            for _ in range(200):  # checkpoints, not time: every worker gets to ask
                await anyio.lowlevel.checkpoint()
            limiter = client._transport.limiter
            assert quota.admits == 20 + _AHEAD_SLOTS
            assert limiter.busy == 16  # 4 waiting out the cool-down, 12 for their turn
            limiter.resize(2)  # the learned window shrank meanwhile
            quota.cooling = False
            go.set()
    assert fake.stats.total == 50
