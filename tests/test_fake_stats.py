"""GET /_fake/stats: the fake's counters while it runs, in process and over loopback."""

from __future__ import annotations

import json

import httpx
import pytest

from tracker_links.testing import FakeStats, FakeTracker, FixedWindow

HEADERS = {"Authorization": "OAuth t", "X-Org-ID": "1"}


def post_link(http: httpx.Client, src: str, dst: str) -> int:
    r = http.post(f"/v2/issues/{src}/links", json={"relationship": "relates", "issue": dst})
    return r.status_code


def test_stats_endpoint_over_loopback_counts_duplicates_and_429s() -> None:
    fake = FakeTracker(
        queues={"TEST": 5}, duplicate_status=None, limit=FixedWindow(4, window=3600.0)
    )
    with fake.serve() as base_url, httpx.Client(base_url=base_url, headers=HEADERS) as http:
        assert post_link(http, "TEST-1", "TEST-2") == 201
        assert post_link(http, "TEST-2", "TEST-1") == 201  # the same link, other spelling
        assert post_link(http, "TEST-1", "TEST-2") == 201
        assert post_link(http, "TEST-3", "TEST-4") == 201
        assert post_link(http, "TEST-4", "TEST-5") == 429
        r = httpx.get(f"{base_url}/_fake/stats")  # no credentials needed
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        data = r.json()
        assert httpx.post(f"{base_url}/_fake/stats").status_code == 405
        assert httpx.get(f"{base_url}/_fake/nothing").status_code == 404
    assert data["duplicates"] == 2
    assert data["duplicates_created"] == 2
    assert data["answered_429"] == data["rate_limited"] == 1
    assert data["links"] == 4
    assert data["issues"] == 5
    assert data["requests"] == {"POST 201": 4, "POST 429": 1}
    assert data["total"] == 5  # the stats requests themselves are not counted
    assert data["inflight"] == 0
    assert fake.stats.total == 5


def test_snapshot_in_process_and_its_json() -> None:
    fake = FakeTracker(queues={"TEST": 3}, duplicate_status=None)
    fake.add_link("TEST-1", "TEST-2", "depends on")
    fake.add_link("TEST-2", "TEST-1", "is dependent by")
    reply = fake.handle("GET", "/_fake/stats", "", {}, b"")
    assert reply.status == 200
    data = json.loads(reply.body)
    assert data == fake.snapshot()
    assert data["duplicates"] == 1
    assert data["total"] == 0


class Lock:
    """The fake's lock, recording whether it is held (and refusing to be taken twice)."""

    def __init__(self) -> None:
        self.held = False

    def __enter__(self) -> None:
        assert not self.held, "the lock is not reentrant: this would deadlock"
        self.held = True

    def __exit__(self, *exc: object) -> None:
        self.held = False


class Probe(FakeStats):
    """Counters that note whether the lock was held while they were read."""

    def __init__(self, lock: Lock) -> None:
        super().__init__()
        self.lock = lock
        self.read_unlocked = 0

    def as_dict(self) -> dict[str, object]:
        self.read_unlocked += not self.lock.held
        return super().as_dict()


def test_snapshot_reads_the_counters_under_the_fakes_lock() -> None:
    # A server thread writes the counters while a test (or /_fake/stats) reads them: a
    # Counter iterated as another thread adds a key raises "changed size during iteration".
    fake = FakeTracker(queues={"TEST": 3}, duplicate_status=None)
    fake.add_link("TEST-1", "TEST-2", "relates")
    fake.add_link("TEST-2", "TEST-1", "relates")
    lock = fake._ctx.lock = Lock()  # type: ignore[assignment]
    probe = fake.stats = Probe(lock)
    data = fake.snapshot()
    assert probe.read_unlocked == 0
    assert not lock.held
    assert data["duplicates"] == 1
    reply = fake.handle("GET", "/_fake/stats", "", {}, b"")
    assert json.loads(reply.body)["duplicates"] == 1
    assert probe.read_unlocked == 0


@pytest.mark.anyio
async def test_stats_endpoint_through_the_async_transport() -> None:
    fake = FakeTracker(queues={"TEST": 2}, latency=5.0, fail_rate=1.0)
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://x") as http:
        r = await http.get("/_fake/stats")  # neither the latency nor the faults apply
    assert r.status_code == 200
    assert r.json()["injected_failures"] == 0


def test_every_knob_from_plain_values() -> None:
    """What a command line can give: numbers, strings, lists and dicts; no objects."""
    fake = FakeTracker(
        queues={"TEST": 3, "SECRET": 1},
        latency=0.01,
        jitter=0.01,
        rate_limit=100.0,
        rate_burst=10,
        retry_after=None,
        max_inflight=8,
        limit="schedule:0=sliding:200;60=fixed:100,1",
        fail_rate=0.1,
        drop_rate=0.05,
        drop_after_write=0.5,
        list_lag=0.2,
        duplicate_status=None,
        token="secret-token",
        users={"tok-a": "alice"},
        forbidden_queues=["SECRET"],
        import_forbidden=True,
        clone_on_create=True,
        malformed_search=0.01,
        redirect_status=308,
        seed=7,
        started_at="2026-01-01T00:00:00+00:00",
    )
    assert fake.forbidden_queues == frozenset({"SECRET"})
    assert fake.redirect_status == 308
    assert "secret-token" not in repr(fake)
    with pytest.raises(ValueError, match="redirect_status"):
        FakeTracker(redirect_status=303)
