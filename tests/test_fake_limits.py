"""The fake's limit shapes: each a pure object driven by plain clock readings, then in the fake."""

from __future__ import annotations

import math

import anyio
import httpx
import pytest

from tracker_links.testing import (
    FakeTracker,
    FixedWindow,
    InFlightCap,
    Limit,
    Schedule,
    SlidingWindow,
    TokenBucket,
    parse_limit,
)

from .helpers import FakeTime

HEADERS = {"Authorization": "OAuth t", "X-Org-ID": "1"}


def admits(shape: Limit, *times: float, inflight: int = 1) -> list[bool]:
    return [shape.admit(t, inflight) for t in times]


# --- each shape, pure ----------------------------------------------------------------------


def test_token_bucket_starts_full_and_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert admits(bucket, 0, 0, 0, 0) == [True, True, True, False]
    assert admits(bucket, 0.25) == [False]  # half a token
    assert admits(bucket, 0.5) == [True]
    assert admits(bucket, 100, 100, 100, 100) == [True, True, True, False]  # capped at burst
    bucket.rate, bucket.burst = 10, 1  # knobs change between requests
    assert admits(bucket, 100.2, 100.2) == [True, False]


def test_fixed_window_counts_per_aligned_window() -> None:
    window = FixedWindow(3, window=1.0)
    assert admits(window, 10.0, 10.1, 10.2, 10.9) == [True, True, True, False]
    assert admits(window, 11.0, 11.5, 11.6, 11.7) == [True, True, True, False]
    # the boundary lets a burst of 2 x limit through within a moment: the fixed-window shape
    assert admits(window, 12.99, 12.99, 12.99, 13.0, 13.0, 13.0) == [True] * 6


def test_sliding_window_never_admits_more_than_limit_in_any_window() -> None:
    window = SlidingWindow(2, window=1.0)
    assert admits(window, 0.0, 0.5, 0.9) == [True, True, False]
    assert admits(window, 1.0) == [True]  # 0.0 has left (t - window, t]
    assert admits(window, 1.2) == [False]  # 0.5 and 1.0 still in
    assert admits(window, 1.5, 1.6) == [True, False]
    # a refused request is not counted: it does not push the window on
    assert admits(window, 2.0, 2.5) == [True, True]


def test_in_flight_cap_counts_the_requests_in_flight() -> None:
    cap = InFlightCap(2)
    assert [cap.admit(0.0, n) for n in (1, 2, 3, 10)] == [True, True, False, False]


def test_schedule_switches_shape_over_the_clock_from_its_start() -> None:
    schedule = Schedule([(0, FixedWindow(1)), (10, None), (20, FixedWindow(2))])
    assert admits(schedule, 100.0, 100.5) == [True, False]  # starts at the first request
    assert schedule.start == 100.0
    assert admits(schedule, 110.0, 110.0, 110.0) == [True, True, True]  # no limit
    assert admits(schedule, 125.0, 125.0, 125.0) == [True, True, False]
    late = Schedule([(5, InFlightCap(1))], start=0.0)
    assert [late.admit(1.0, 3), late.admit(6.0, 1), late.admit(6.0, 2)] == [True, True, False]
    assert late.current(6.0) is late.shapes[0]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TokenBucket(0), "rate"),
        (lambda: TokenBucket(1, burst=0), "burst"),
        (lambda: FixedWindow(0), "limit"),
        (lambda: SlidingWindow(1, window=0), "window"),
        (lambda: FixedWindow(1, window=math.inf), "window"),
        (lambda: InFlightCap(0), "n"),
        (lambda: Schedule([]), "at least one"),
        (lambda: Schedule([(0, None), (0, None)]), "increase"),
    ],
)
def test_shapes_refuse_bad_settings(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_schedule_refuses_what_is_not_a_shape() -> None:
    with pytest.raises(TypeError, match="not a limit shape"):
        Schedule([(0, 200)])  # type: ignore[list-item]


def test_parse_limit() -> None:
    bucket = parse_limit("bucket:200,5")
    assert isinstance(bucket, TokenBucket)
    assert (bucket.rate, bucket.burst) == (200, 5)
    assert repr(parse_limit("bucket:50")) == "TokenBucket(rate=50.0, burst=20)"
    assert repr(parse_limit("fixed:100,2")) == "FixedWindow(limit=100, window=2.0)"
    assert repr(parse_limit(" sliding:200 ")) == "SlidingWindow(limit=200, window=1.0)"
    assert repr(parse_limit("inflight:10")) == "InFlightCap(10)"
    schedule = parse_limit("schedule:0=fixed:200;20=fixed:100;40=none")
    assert isinstance(schedule, Schedule)
    assert [repr(s) for s in schedule.shapes] == [
        "FixedWindow(limit=200, window=1.0)",
        "FixedWindow(limit=100, window=1.0)",
        "None",
    ]
    for bad in ("bucket", "bucket:x", "window:3", "inflight:1,2", "schedule:x=fixed:1", "fixed:0"):
        with pytest.raises(ValueError, match="bad"):
            parse_limit(bad)


# --- in the fake -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def get(fake: FakeTracker, token: str = "t") -> httpx.Response:
    reply = fake.handle(
        "GET", "/v2/issues/TEST-1", "", {"authorization": f"OAuth {token}", "x-org-id": "1"}, b""
    )
    return httpx.Response(reply.status, headers=reply.headers, content=reply.body)


def test_limit_knob_in_the_fake_with_and_without_retry_after() -> None:
    clock = Clock()
    fake = FakeTracker(queues={"TEST": 1}, limit=SlidingWindow(2), clock=clock)
    statuses = [get(fake).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = get(fake)
    assert refused.headers["Retry-After"] == "1"
    assert "limit" in refused.json()["errorMessages"][0]
    fake.retry_after = None  # 429 without Retry-After: the undocumented case
    assert "Retry-After" not in get(fake).headers
    clock.now = 1.0
    assert get(fake).status_code == 200
    assert fake.stats.rate_limited == fake.stats.count(status=429) == 3


def test_limit_combines_with_rate_limit_and_takes_text_and_lists() -> None:
    clock = Clock()
    fake = FakeTracker(
        queues={"TEST": 1}, rate_limit=100, rate_burst=100, limit="fixed:2", clock=clock
    )
    assert isinstance(fake.limit, str)
    assert [get(fake).status_code for _ in range(3)] == [200, 200, 429]
    fake.limit = [FixedWindow(10), InFlightCap(5)]
    assert get(fake).status_code == 200
    fake.rate_limit = None
    fake.limit = None
    assert all(get(fake).status_code == 200 for _ in range(50))
    with pytest.raises(TypeError, match="limit shape"):
        fake.limit = [42]  # type: ignore[list-item]


def test_in_flight_cap_shape_answers_too_many_concurrent() -> None:
    fake = FakeTracker(queues={"TEST": 1}, limit=InFlightCap(1))
    early, _ = fake.admit()  # one request held in flight
    try:
        assert early is None
        r = get(fake)
        assert r.status_code == 429
        assert "concurrent" in r.json()["errorMessages"][0]
    finally:
        fake.release()
    assert get(fake).status_code == 200


def test_schedule_in_the_fake_follows_its_clock() -> None:
    clock = Clock()
    fake = FakeTracker(
        queues={"TEST": 1},
        limit=Schedule([(0, FixedWindow(2)), (10, FixedWindow(1))]),
        clock=clock,
    )
    assert [get(fake).status_code for _ in range(3)] == [200, 200, 429]
    clock.now = 10.0
    assert [get(fake).status_code for _ in range(2)] == [200, 429]


class Recorder:
    """A limit shape that records the times it admitted, to check a limit across clients."""

    def __init__(self, inner: Limit) -> None:
        self.inner = inner
        self.admitted: list[float] = []
        self.refused = 0

    def admit(self, now: float, inflight: int) -> bool:
        if self.inner.admit(now, inflight):
            self.admitted.append(now)
            return True
        self.refused += 1
        return False


@pytest.mark.anyio
async def test_two_clients_on_one_fake_share_one_limit() -> None:
    ft = FakeTime()
    shape = Recorder(FixedWindow(10))
    fake = FakeTracker(
        queues={"TEST": 80},
        limit=shape,
        latency=0.05,
        users={"token-a": "alice", "token-b": "bob"},
        clock=ft.clock,
        sleep=ft.sleep,
    )
    reports = {}

    async def run(token: str, first: int) -> None:
        specs = [(f"TEST-{i}", f"TEST-{i + 1}", "relates") for i in range(first, first + 30)]
        async with fake.client(token=token, clock=ft.clock, sleep=ft.sleep) as client:
            reports[token] = await client.links.bulk_create(specs)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "token-a", 1)
        tg.start_soon(run, "token-b", 40)
    assert all(r.ok for r in reports.values())
    assert len(fake.links) == 60
    # One limit for both: never more than 10 admitted in a window, whoever sent them.
    per_window: dict[int, int] = {}
    for t in shape.admitted:
        per_window[math.floor(t)] = per_window.get(math.floor(t), 0) + 1
    assert max(per_window.values()) <= 10
    assert fake.stats.rate_limited == shape.refused > 0  # the limit did bite
    assert {link.created_by for link in fake.links.values()} == {"alice", "bob"}
