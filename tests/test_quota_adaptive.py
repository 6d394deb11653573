"""The adaptive rate over a shared quota, in virtual time (trio's MockClock).

``k`` clients share one :class:`tracker_links.FileQuota` (on the virtual clock) and one token
bucket of 200/s (burst 20), 50 ms latency, ``max_concurrency=16`` each, ``rate_limit=None``:
they must behave about like one client (which takes 1.12x alone: the cost is the adaptive
rate's own, a 1-s cool-down and a cut per 429 event). The issue's target is 1.05-1.10x of
``N / R`` with under 0.5% answered 429; the quota reaches 1.11x (k = 4) and 1.11x (k = 8;
median of seeds 0-7, N = 10,000; seed 1, run here: 1.10 and 1.10, 0.2% answered 429), so the
bounds here are that plus a margin. Before the slow start counted the quota's slots (each
member's own answers times its share instead), 1.13x and 1.18x. Before the first phase was
led by one member and a client held at most 4 slots ahead, 0.41% and 0.50% were answered 429
(1.1% and 1.3% in the first seconds of 8 real processes, whose windows opened together).
Before the fixes
of the quota path (a slow start's slots booked at its first rate, bookings a 429 had voided
still sent, the learned window cut for every 429 of a burst, the estimator measuring from this
process's last 429, its share of the accepted answers taken as 1 / members; then the share
taken from the slots booked, a member's own first-phase span, a 429 at the top of the climb
taken for a cap on requests in flight) the same runs took 1.97x (k = 4) and 1.4-1.76x
(k = 8), the finish times 50 s apart; then 1.18x and 1.28x. trio only, as
``test_rate_shapes.py``.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

pytest.importorskip("trio")

from benchmarks._shapes import RATE, Stalling, TokenBucket, simulate

N = 10_000


@pytest.mark.parametrize("k", [4, 8])
def test_adaptive_rate_over_a_shared_quota(k: int) -> None:
    result = simulate(lambda: TokenBucket(RATE, 20), n=N // k, clients=k, quota=True, seed=1)
    assert result.failed == 0
    assert result.ratio < 1.2, result.row()
    # 0.2% (0.40-0.50% before the first phase was led); the bound is 0.5%.
    assert result.refused_share < 0.003, result.row()
    # Sharing one timeline, the clients finish together (they were 50 s apart).
    assert result.spread < 5.0, result.row()


def test_adaptive_rate_over_a_shared_quota_behind_a_server_that_stalls() -> None:
    # The jitter of real runs: the bucket's server stalls for 0.12 s about once a minute and
    # refuses the backlog beyond its burst, whatever the pace under the limit. Each such 429
    # costs everyone its 1-s cool-down. Measured at this size over seeds 0-3: 1.11-1.15x
    # (seed 1: 1.15x, 0.22% answered 429; 1.10x without the stalls), the fixed rate
    # 1.00-1.06x. A guard of the whole path under stalls, not of the jitter rules: in 57 s
    # about one stall lands, and the code with them removed measured the same here (the
    # benchmark's rows of 10,000 each are where they show).
    k = 4
    result = simulate(lambda: Stalling(RATE, 20), n=N // k, clients=k, quota=True, seed=1)
    assert result.failed == 0
    assert result.refused > 0  # the stalls did refuse
    assert result.ratio < 1.25, result.row()
    assert result.refused_share < 0.005, result.row()
    assert result.spread < 5.0, result.row()


@pytest.mark.parametrize("k", [4, 8])
def test_adaptive_rate_over_a_quota_a_round_trip_away(k: int) -> None:
    # Each quota operation takes 1 ms, as a round trip to Redis: while a report is on its way,
    # the process's other requests are admitted and answered. Before the fixes (a report that
    # was not news undid the event the process took meanwhile, for good; slots booked at a
    # rate none of 8 processes knew the shared timeline for; a 429 of a burst learned again)
    # the same runs took 1.34x (k = 4) and 1.49x (k = 8), the finish times 33-36 s apart;
    # then 1.12x and 1.13x; then 1.10x and 1.12x; now 1.10x and 1.09x, 0.15-0.16% answered 429.
    result = simulate(
        lambda: TokenBucket(RATE, 20), n=N // k, clients=k, quota=True, seed=1, quota_rtt=0.001
    )
    assert result.failed == 0
    assert result.ratio < 1.2, result.row()
    assert result.refused_share < 0.003, result.row()  # 0.40-0.49% before
    assert result.spread < 5.0, result.row()


def test_the_slow_starts_count_is_everything_the_members_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The 429 that ends the slow start carries its slot's index in the epoch: everything the
    # members sent since the cool-down before it, which the bucket let through (the
    # estimate's count; each member's own times its share was 126-183/s of 200/s).
    from tracker_links._quota_gate import QuotaGate

    events: list[tuple[int, float, int]] = []
    report = QuotaGate.rate_limited

    async def recorded(self: QuotaGate, epoch: int, now: float, sent_at: float, *rest: Any) -> None:
        if epoch == self.epoch:
            events.append((epoch, sent_at, rest[-1]))
        await report(self, epoch, now, sent_at, *rest)

    monkeypatch.setattr(QuotaGate, "rate_limited", recorded)
    accepted: list[float] = []

    class Counted(TokenBucket):
        def admit(self, now: float, inflight: int) -> bool:
            ok = super().admit(now, inflight)
            if ok:
                accepted.append(now)
            return ok

    simulate(lambda: Counted(RATE, 20), n=300, clients=4, quota=True, seed=1)
    _, sent_at, slot = next(e for e in events if e[0] == 1)
    before = sorted(t for t in accepted if t < sent_at)
    # The first accepted after the cool-down of the first phase's 429 (the last gap of 1 s).
    resumed = next(b for a, b in reversed(list(itertools.pairwise(before))) if b - a > 0.5)
    through = sum(1 for t in before if t >= resumed)
    assert through > 100
    assert slot - 1 == pytest.approx(through, abs=2)
