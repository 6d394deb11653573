"""The client on every rate-limit shape of issue 16, in virtual time (trio's MockClock).

Each case runs the public client (``bulk_create`` of ``N`` creates, 50 ms latency,
``max_concurrency=16``) against the fake Tracker with one limit shape applied
(:mod:`benchmarks._shapes`: a token bucket, fixed and sliding 1-s windows with and without
``Retry-After``, a cap of 10 in flight, a limit that drops and rises, several clients on one
bucket) and asserts the wall time against the shape's ideal time and the share answered 429.

N is 2,000 here (the whole module takes seconds); the issue's targets are for N = 10,000
(the benchmark ``python -m benchmarks.shapes``), so each bound below is the target plus a
fixed start-up allowance: finding the limit costs the same few seconds and the same two or
three bursts of 429s (at most ``max_concurrency`` each) whatever N is. The fixed rate is
run on the strictest shapes only: a sliding window refuses whatever a fixed window of the
same size refuses, and a bucket of 20 whatever a bucket of 200 does (the benchmark has all
of them). trio only: see ``test_soak.py`` for why asyncio has no virtual clock here.
"""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("trio")

from benchmarks._shapes import (
    RATE,
    SHAPES,
    InFlight,
    Stalling,
    TokenBucket,
    simulate,
)

N = 2_000
N_FIXED = 2_000
STARTUP_429 = 32  # two bursts of max_concurrency while the limit is found
BUCKETS_AND_WINDOWS = [name for name in SHAPES if "flight" not in name and "/s," not in name]
#: Implied by a stricter shape for a fixed rate (see above).
IMPLIED = {"bucket, burst 200", "fixed 1-s window", "fixed window, no Retry-After"}


@pytest.mark.parametrize("name", [name for name in SHAPES if name not in IMPLIED])
def test_fixed_rate_on_every_shape(name: str) -> None:
    make, retry_after = SHAPES[name]
    result = simulate(make, n=N_FIXED, rate_limit=RATE, retry_after=retry_after)
    assert result.failed == 0
    assert result.wall >= 0.9 * result.ideal  # the shape did limit (no one beats the ideal)
    if "/s," in name:  # the limit is not R throughout: R is too much for 20 s of it
        assert result.ratio < 1.3
        return
    # Within 1.05x, plus the one cool-down that the first second's burst may cost. The cap
    # of 10 in flight is learned from that second's 429s and not probed again (a fixed rate
    # it carries has nothing to gain: measured +1.24 s, 9-11 answered 429, at this N; it was
    # +2.1 s and 25 with a probe at 10 s).
    assert result.wall <= 1.05 * result.ideal + 1.1, result.row()
    assert result.refused <= 16, result.row()  # no 429 beyond the first second's


@pytest.mark.parametrize("name", BUCKETS_AND_WINDOWS)
def test_adaptive_rate_on_buckets_and_windows(name: str) -> None:
    make, retry_after = SHAPES[name]
    result = simulate(make, n=N, retry_after=retry_after)
    assert result.failed == 0
    assert result.wall >= 0.9 * result.ideal  # the shape did limit: it drew 429s
    assert result.refused > 0
    # Measured: 4-5 s of start-up at this N (three events while the limit is found).
    assert result.wall <= 1.10 * result.ideal + 6.0, result.row()
    share = 0.005 if retry_after is not None else 0.015
    assert result.refused <= share * N + STARTUP_429, result.row()


@pytest.mark.parametrize("name", ["fixed 1-s window", "sliding 1-s window"])
def test_adaptive_rate_on_windows_at_the_issue_size(name: str) -> None:
    # At the issue's N = 10,000 the target itself: 1.10x. A window's first-second count is
    # its limit, so the plateau under it is held longer before the first probe (measured
    # 1.085-1.096x over seeds 0-2, up to 1.105x over seeds 0-7; with the 2-s hold and the
    # steep probe 1.11x, a third probe).
    make, retry_after = SHAPES[name]
    result = simulate(make, n=10_000, retry_after=retry_after)
    assert result.failed == 0
    assert result.ratio <= 1.10, result.row()
    assert result.refused_share < 0.005, result.row()


def test_adaptive_rate_under_an_in_flight_cap() -> None:
    result = simulate(lambda: InFlight(10, 0.05), n=N)
    assert result.failed == 0
    assert result.wall >= 0.9 * result.ideal
    assert result.refused > 0
    assert result.wall <= 1.25 * result.ideal + 4.5, result.row()  # measured: +5.3-6.0 s
    assert result.refused <= 0.005 * N + STARTUP_429, result.row()


def test_adaptive_rate_follows_a_limit_that_drops_and_rises() -> None:
    make, _ = SHAPES["200/s, 100/s for 20 s, 200/s"]
    result = simulate(make, n=6_000)  # the rise comes at 30 s, 10 s before the ideal end
    assert result.failed == 0
    assert result.wall >= 0.9 * result.ideal
    # The issue's 1.25x plus the start-up allowance; measured 1.32 (1.28-1.41 over seeds 0-2;
    # it was 1.41 before the plateau and the steeper probe: the climb back after the rise
    # took ~27 s).
    assert result.wall <= 1.25 * result.ideal + 3.5, result.row()
    assert result.refused_share < 0.01, result.row()


@pytest.mark.parametrize("rate_limit", [None, RATE / 4])
def test_uncoordinated_clients_share_one_bucket(rate_limit: float | None) -> None:
    k = 4
    result = simulate(
        lambda: TokenBucket(RATE, 20), n=N_FIXED // k, clients=k, rate_limit=rate_limit
    )
    assert result.failed == 0
    assert result.wall >= 0.9 * result.ideal
    if rate_limit is not None:  # R / k each: the ideal, without a 429
        assert result.wall <= 1.05 * result.ideal + 1.0, result.row()
        assert result.refused == 0
        return
    # At this N the start-up (each client's slow start, the first bursts of 429s) weighs a
    # lot: measured 1.54-2.29 over seeds 0-5, 1.6-3.3% answered 429 (1.69 and 2.2% at this
    # seed); it was 9-10x before: no client starves any more. The issue's size is below.
    assert result.ratio < 2.6, result.row()
    assert result.refused_share < 0.04, result.row()


def test_uncoordinated_clients_at_the_issue_size() -> None:
    # Item 4 of issue 16 at its own size: 4 clients of 2,500 creates each on one 200/s
    # bucket, the ideal k x N / R = 50 s. Measured at bda8bce over seeds 0-11: the slowest
    # 1.22-1.47x of it (the issue's target is 1.5x), finish times 8-33 s apart, 0.53-0.88%
    # answered 429; at this seed 1.46x, 31 s, 0.7%. The bound has a margin over the target:
    # which client lags is chaotic (a change that moves one 429 moves the slowest by
    # +-0.1 at a seed without changing the spread over seeds).
    k = 4
    result = simulate(lambda: TokenBucket(RATE, 20), n=10_000 // k, clients=k)
    assert result.failed == 0
    assert result.ratio < 1.6, result.row()
    assert result.spread < result.ideal, result.row()
    assert result.refused_share < 0.01, result.row()


def test_adaptive_rate_on_a_bucket_with_no_latency_and_64_in_flight() -> None:
    # Benchmark scenario 3 (loopback, max_concurrency=64) in virtual time: with ~0 latency
    # the capacity (concurrency / latency) is thousands of requests/s; taken as the scale of
    # the cubic climb it made the climb back and the probe near instant, and a 429 (with its
    # 1-s cool-down) came every 4 s. Measured 1.47 (58 x 429) before the latency floor of the
    # scale, 1.26 (51) after, at this N; most of the rest is the start-up.
    result = simulate(lambda: TokenBucket(RATE, 20), n=6_000, latency=0.0005, max_concurrency=64)
    assert result.failed == 0
    assert result.wall >= 0.9 * result.ideal
    assert result.refused > 0
    assert result.ratio <= 1.35, result.row()
    assert result.refused_share < 0.02, result.row()


def test_clients_starting_together_do_not_each_send_a_whole_window() -> None:
    # 8 clients of 16 in flight start at once on a bucket of 20: with every window open from
    # the start, 108 of the first second's 128 requests were answered 429 (1.1% of all, half
    # of the run's 429s); each window now opens from 1, one more per answer (measured: 26-42
    # with it, depending on the tests run before; 114 without).
    refused_at: list[float] = []

    class Bucket(TokenBucket):
        def admit(self, now: float, inflight: int) -> bool:
            ok = super().admit(now, inflight)
            if not ok:
                refused_at.append(now)
            return ok

    k = 8
    result = simulate(lambda: Bucket(RATE, 20), n=5_000 // k, clients=k)
    assert result.failed == 0
    assert sum(1 for t in refused_at if t < 1.0) <= 60, sorted(refused_at)[:70]


def test_a_stalling_server_refuses_the_backlog_beyond_its_burst() -> None:
    # 190/s, under the bucket's 200/s: all of it gets through, but for a stall of 0.12 s
    # at 1 s, whose 23 arrivals meet the bucket at once when it ends (full: 20 tokens), and
    # the first one after it (the bucket is empty then).
    times = [i / 190 for i in range(380)]
    calm = Stalling(RATE, 20, at=[])
    assert all(calm.admit(t, 1) for t in times)
    shape = Stalling(RATE, 20, at=[1.0], stall=0.12)
    refused = [t for t in times if not shape.admit(t, 1)]
    assert len(refused) == 4, refused
    assert all(1.0 <= t < 1.13 for t in refused), refused
    # Drawn: the same for one seed, about ``every`` apart.
    a, b = Stalling(RATE, seed=3, until=6000.0), Stalling(RATE, seed=3, until=6000.0)
    assert a.stalls == b.stalls
    gaps = [y[0] - x[0] for x, y in itertools.pairwise(a.stalls)]
    assert 45.0 < sum(gaps) / len(gaps) < 75.0
