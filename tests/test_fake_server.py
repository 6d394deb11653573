"""The fake Tracker over real loopback HTTP (uvicorn in a thread), and its pytest fixtures."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from tracker_links import TrackerClient
from tracker_links.testing import FakeTracker

HEADERS = {"Authorization": "OAuth t", "X-Org-ID": "1"}


def fake_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fake-tracker")]


@pytest.mark.anyio
async def test_roundtrip_over_loopback() -> None:
    fake = FakeTracker(queues={"TEST": 12}, seed=0)
    with fake.serve() as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert len(fake_threads()) == 1
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
            r = await http.post(
                "/v2/issues/TEST-1/links", json={"relationship": "depends on", "issue": "TEST-2"}
            )
            assert r.status_code == 201
            assert r.headers["content-type"].startswith("application/json")
            link_id = r.json()["id"]
            (seen,) = (await http.get("/v2/issues/TEST-2/links/")).json()
            assert (seen["id"], seen["direction"]) == (link_id, "inward")
            assert (await http.delete(f"/v2/issues/TEST-2/links/{link_id}")).status_code == 204
            assert (await http.get("/v2/issues/TEST-1/links")).json() == []

            # The Link header names this very server, so a client can follow it.
            keys: list[str] = []
            url: str | None = "/v2/issues/_search?perPage=5"
            while url is not None:
                page = await http.post(url, json={"filter": {"queue": "TEST"}})
                keys += [i["key"] for i in page.json()]
                url = page.links.get("next", {}).get("url")
                assert url is None or url.startswith(base_url)
            assert keys == [f"TEST-{n}" for n in range(1, 13)]

            r = await http.get("/v2/issues/TEST-1", headers={"Authorization": "nope"})
            assert r.status_code == 401
            assert r.json()["statusCode"] == 401
    assert fake.stats.count("POST", 201) == 1
    assert fake_threads() == []


@pytest.mark.anyio
@pytest.mark.parametrize("after_write", [False, True], ids=["before-write", "after-write"])
async def test_drop_really_closes_the_connection(
    after_write: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fake = FakeTracker(
        queues={"TEST": 5}, drop_rate=1.0, drop_after_write=1.0 if after_write else 0.0
    )
    with fake.serve() as base_url:
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
            with pytest.raises(httpx.TransportError) as info:
                await http.post(
                    "/v2/issues/TEST-1/links", json={"relationship": "relates", "issue": "TEST-2"}
                )
            assert isinstance(info.value, httpx.RemoteProtocolError)
            assert fake.has_link("TEST-1", "TEST-2", "relates") is after_write
            fake.drop_rate = 0.0
            r = await http.post(
                "/v2/issues/TEST-1/links", json={"relationship": "relates", "issue": "TEST-2"}
            )
            assert r.status_code == (422 if after_write else 201)
    assert fake.stats.dropped == 1
    assert not [r for r in caplog.records if r.name.startswith("uvicorn")]


@pytest.mark.anyio
async def test_knobs_apply_over_loopback() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    fake = FakeTracker(
        queues={"TEST": 3}, latency=0.5, rate_limit=1, rate_burst=2, sleep=sleep, clock=lambda: 0.0
    )
    with fake.serve() as base_url:
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
            statuses = [(await http.get("/v2/linktypes")).status_code for _ in range(3)]
            last = await http.get("/v2/linktypes")
    assert statuses == [200, 200, 429]
    assert last.headers["Retry-After"] == "1"
    assert slept == [0.5] * 4


@pytest.mark.anyio
async def test_many_concurrent_requests_over_loopback() -> None:
    import anyio

    fake = FakeTracker(queues={"TEST": 100})
    statuses: list[int] = []
    with fake.serve() as base_url:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS, limits=limits) as http:

            async def link(n: int) -> None:
                r = await http.post(
                    f"/v2/issues/TEST-{n}/links",
                    json={"relationship": "is subtask for", "issue": "TEST-100"},
                )
                statuses.append(r.status_code)

            async with anyio.create_task_group() as tg:
                for n in range(1, 100):
                    tg.start_soon(link, n)
    assert statuses == [201] * 99
    assert len(fake.links_of("TEST-100")) == 99


@pytest.mark.anyio
async def test_library_client_over_loopback() -> None:
    fake = FakeTracker(queues={"TEST": 5})
    with fake.serve() as base_url:
        async with TrackerClient(token="t", org_id="1", base_url=base_url) as client:
            link = await client.links.create("TEST-1", "TEST-2", "relates")
            (seen,) = await client.links.get("TEST-2")
    assert seen.id == link.id
    assert seen.target.key == "TEST-1"


def test_two_servers_and_clean_stop() -> None:
    before = set(threading.enumerate())
    a, b = FakeTracker(queues={"A": 1}), FakeTracker(queues={"B": 1})
    with a.serve() as url_a, b.serve() as url_b:
        assert len(set(threading.enumerate()) - before) == 2
        assert url_a != url_b
        assert httpx.get(f"{url_a}/v2/issues/A-1", headers=HEADERS).status_code == 200
        assert httpx.get(f"{url_b}/v2/issues/A-1", headers=HEADERS).status_code == 404
    assert set(threading.enumerate()) == before
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url_a}/v2/linktypes", headers=HEADERS)


def test_serve_names_the_extra_when_uvicorn_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    monkeypatch.delitem(sys.modules, "tracker_links.testing._server", raising=False)
    with pytest.raises(ImportError, match=r"tracker-links\[fake\]"), FakeTracker().serve():
        pass


# --- serve_forever: a real process, stopped by a signal ---------------------------------------

_SERVE_FOREVER = """
from tracker_links.testing import FakeTracker
FakeTracker(queues={"TEST": 2}).serve_forever(port=0, on_ready=lambda url: print(url, flush=True))
print("stopped", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_forever_returns_on_signal(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE_FOREVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        r = httpx.get(f"{url}/v2/issues/TEST-2", headers=HEADERS)
        assert r.status_code == 200
        assert r.json()["key"] == "TEST-2"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.strip() == "stopped"
    assert "Traceback" not in err


# --- the pytest plugin -------------------------------------------------------------------------


def test_fake_tracker_fixture(fake_tracker: FakeTracker) -> None:
    assert list(fake_tracker.issues) == [f"TEST-{n}" for n in range(1, 51)]
    assert fake_tracker.seed == 0
    assert len(fake_tracker.links) == 0
    assert fake_threads() == []  # no server unless fake_tracker_url is asked for


@pytest.mark.fake_tracker(queues={"PROJ": 3}, fail_rate=1.0)
def test_fake_tracker_marker(fake_tracker: FakeTracker) -> None:
    assert list(fake_tracker.issues) == ["PROJ-1", "PROJ-2", "PROJ-3"]
    assert fake_tracker.fail_rate == 1.0
    assert fake_tracker.seed == 0


@pytest.mark.anyio
async def test_fake_tracker_url_fixture(fake_tracker: FakeTracker, fake_tracker_url: str) -> None:
    async with httpx.AsyncClient(base_url=fake_tracker_url, headers=HEADERS) as http:
        r = await http.post(
            "/v2/issues/TEST-1/links", json={"relationship": "relates", "issue": "TEST-50"}
        )
    assert r.status_code == 201
    assert fake_tracker.has_link("TEST-50", "TEST-1", "relates")
