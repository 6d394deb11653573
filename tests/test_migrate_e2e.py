"""Migrations end to end: the library against the fake Tracker over a real loopback socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tracker_links import (
    ConflictError,
    LinkSpec,
    OutcomeStatus,
    Relationship,
    RetryPolicy,
    TrackerClient,
)
from tracker_links.testing import FakeTracker

pytestmark = pytest.mark.anyio

TOKEN = "e2e-migrate-secret-token"
QUICK = RetryPolicy(attempts=10, backoff_base=0.002, backoff_cap=0.02)
EPOCH = datetime(2015, 6, 1, 9, 0, tzinfo=timezone(timedelta(hours=3)))


@pytest.fixture
def fake() -> FakeTracker:
    return FakeTracker(queues={"TEST": 2100}, seed=15, started_at="2026-12-01T00:00:00+00:00")


@pytest.fixture
def url(fake: FakeTracker) -> Iterator[str]:
    with fake.serve() as base_url:
        yield base_url


def connect(url: str, **kwargs: Any) -> TrackerClient:
    kwargs.setdefault("retry", QUICK)
    return TrackerClient(TOKEN, org_id="42", base_url=url, **kwargs)


def history_specs(n: int) -> list[LinkSpec]:
    """``n`` distinct links, each with its own author and date (and every third an update)."""
    rels = [Relationship.DEPENDS_ON, Relationship.RELATES, Relationship.CLONE]
    out = []
    for i in range(n):
        created = EPOCH + timedelta(minutes=7 * i, milliseconds=i % 1000)
        extra: dict[str, Any] = {}
        if i % 3 == 0:
            extra = {"updated_at": created + timedelta(days=1), "updated_by": f"editor{i % 5}"}
        out.append(
            LinkSpec(
                f"TEST-{i + 1}",
                f"TEST-{2001 + i % 100}",
                rels[i % 3],
                created_at=created,
                created_by=f"author{i % 11}" if i % 4 else 1120000000000000 + i,
                **extra,
            )
        )
    return out


async def test_2000_links_imported_with_history_under_faults(fake: FakeTracker, url: str) -> None:
    fake.fail_rate, fake.drop_rate = 0.10, 0.05
    fake.duplicate_status = None  # a duplicate would be stored: the test would see it
    specs = history_specs(2000)
    assert len({s.digest for s in specs}) == 2000
    async with connect(url, max_concurrency=32) as client:
        report = await client.links.bulk_create(specs)
    assert report.counts()["created"] == 2000, report.summary()
    assert fake.stats.injected_failures > 0
    assert fake.stats.dropped > 0
    assert fake.stats.duplicates_created == 0
    assert fake.stats.by_route[("POST", "links.create")] == 0  # every one through the import
    for spec in specs:
        (stored,) = fake.find_links(spec.source, spec.target, spec.relationship)
        assert stored.created_at == spec.created_at
        assert stored.created_by == str(spec.created_by)
        assert stored.updated_at == spec.updated_at
        assert stored.updated_by == spec.updated_by
    assert len(fake.links) == 2000


async def test_import_single_calls_and_their_errors(fake: FakeTracker, url: str) -> None:
    async with connect(url) as client:
        link = await client.links.import_link(
            "TEST-1", "TEST-2", "original", created_at=EPOCH, created_by="ivanov"
        )
        assert link.relationship is Relationship.ORIGINAL
        assert link.created_at == EPOCH
        with pytest.raises(ConflictError) as caught:
            await client.links.import_link(
                "TEST-2", "TEST-1", "clone", created_at=EPOCH, created_by="ivanov"
            )
        assert caught.value.link is not None
        assert caught.value.link.id == link.id
        # Plain create refuses clone links here: the error says where to go.
        with pytest.raises(ConflictError, match="import_link"):
            await client.links.create("TEST-3", "TEST-4", "clone")
        fake.import_forbidden = True
        with pytest.raises(Exception, match="administrator") as forbidden:
            await client.links.import_link(
                "TEST-5", "TEST-6", "relates", created_at=EPOCH, created_by="ivanov"
            )
        assert forbidden.value.status_code == 403  # type: ignore[attr-defined]
    assert len(fake.links) == 1


class Recorder:
    """Every request path the library sends (an httpx event hook on the caller's client)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.paths.append(request.url.path)


@pytest.fixture
def small() -> FakeTracker:
    return FakeTracker(queues={"TEST": 30}, seed=16)


async def test_every_link_call_on_api_v3(small: FakeTracker, tmp_path: Any) -> None:
    fake = small
    seen = Recorder()
    with fake.serve() as url:
        await _all_calls_on_v3(url, seen, tmp_path)
    assert seen.paths
    assert all(path.startswith("/v3/") for path in seen.paths), [
        p for p in seen.paths if not p.startswith("/v3/")
    ]
    routes = {route for _, route in fake.stats.by_route}
    assert routes >= {"links.list", "links.create", "links.import", "links.delete"}
    assert routes >= {"linktypes", "search"}


async def _all_calls_on_v3(url: str, seen: Recorder, tmp_path: Any) -> None:
    async with (
        httpx.AsyncClient(event_hooks={"request": [seen]}) as http,
        connect(url, api_version="v3", http_client=http) as client,
    ):
        link = await client.links.create("TEST-1", "TEST-2", "depends on")
        assert link.url is not None
        assert "/v3/" in link.url
        (listed,) = await client.links.get("TEST-2")
        assert listed.relationship is Relationship.IS_DEPENDENT_BY
        assert {t.id for t in await client.links.types()} >= {"depends", "clone"}
        imported = await client.links.import_link(
            "TEST-3", "TEST-4", "relates", created_at=EPOCH, created_by="ivanov"
        )
        report = await client.links.bulk_create(
            [
                ("TEST-5", "TEST-6", "relates"),
                LinkSpec("TEST-7", "TEST-8", "clone", created_at=EPOCH, created_by="x"),
                ("TEST-1", "TEST-2", "depends on"),
            ],
            journal=tmp_path / "v3.jsonl",
        )
        assert [o.status for o in report.outcomes] == [
            OutcomeStatus.CREATED,
            OutcomeStatus.CREATED,
            OutcomeStatus.EXISTS,
        ]
        async with client.links.queue_links(query="Queue: TEST") as found:
            by_key = {item.key: item.links async for item in found}
        assert len(by_key) == 30
        assert {ln.id for ln in by_key["TEST-3"]} == {imported.id}
        await client.links.delete("TEST-1", link.id)
        assert await client.links.get("TEST-2") == []
        plan = await client.links.plan([("TEST-9", "TEST-10", "relates")], queue="TEST")
        assert len(plan.create) == 1
        # The deletes: one pair, many specs, and the undo of the bulk create above.
        assert [ln.id for ln in await client.links.remove("TEST-3", "TEST-4")] == [imported.id]
        await client.links.create("TEST-11", "TEST-12", "relates")
        deleted = await client.links.bulk_delete([("TEST-11", "TEST-12", "relates")])
        assert [o.status for o in deleted.outcomes] == [OutcomeStatus.DELETED]
        undone = await client.links.undo(tmp_path / "v3.jsonl")
        assert sorted(o.status.value for o in undone.outcomes) == ["deleted", "deleted"]
        assert await client.links.get("TEST-5") == []


# --- moved issues --------------------------------------------------------------------------------


def moved_fake(**kwargs: Any) -> tuple[FakeTracker, dict[str, str]]:
    fake = FakeTracker(queues={"TEST": 40, "NEW": 0}, seed=17, **kwargs)
    moves = {old: fake.move_issue(old, "NEW") for old in ("TEST-3", "TEST-4", "TEST-5")}
    return fake, moves


MOVED_SPECS: list[Any] = [
    ("TEST-3", "TEST-10", "depends on"),  # a moved source
    ("TEST-11", "TEST-4", "relates"),  # a moved target
    LinkSpec("TEST-5", "TEST-3", "clone", created_at=EPOCH, created_by="ivanov"),  # both
    ("TEST-12", "TEST-13", "is subtask for"),  # nothing moved
    ("NEW-1", "TEST-10", "depends on"),  # the first again, under the new key
    ("TEST-10", "TEST-3", "is dependent by"),  # the first again, the other way round
]


@pytest.mark.parametrize("status", [301, 307])
async def test_moved_keys_land_on_the_new_keys_and_a_rerun_sends_nothing(
    tmp_path: Any, status: int
) -> None:
    fake, moves = moved_fake(redirect_status=status, fail_rate=0.1, drop_rate=0.05)
    assert moves == {"TEST-3": "NEW-1", "TEST-4": "NEW-2", "TEST-5": "NEW-3"}
    journal = tmp_path / "moves.jsonl"
    with fake.serve() as url:
        async with connect(url, max_concurrency=4) as client:
            report = await client.links.bulk_create(MOVED_SPECS, journal=journal)
        statuses = [o.status.value for o in report.outcomes]
        assert statuses == ["created"] * 4 + ["exists"] * 2, report.summary()
        assert [o.repeat_of for o in report.outcomes[4:]] == [0, 0]
        assert [o.moved for o in report.outcomes] == [
            {"TEST-3": "NEW-1"},
            {"TEST-4": "NEW-2"},
            {"TEST-5": "NEW-3", "TEST-3": "NEW-1"},
            None,
            None,
            {"TEST-3": "NEW-1"},
        ]
        assert report.moved == moves
        assert fake.stats.redirects > 0
        assert fake.has_link("NEW-1", "TEST-10", "depends on")
        assert fake.has_link("TEST-11", "NEW-2", "relates")
        (clone,) = fake.find_links("NEW-3", "NEW-1", "clone")
        assert (clone.created_at, clone.created_by) == (EPOCH, "ivanov")
        assert len(fake.links) == 4
        assert fake.stats.duplicates_created == 0
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
        first = next(ln for ln in lines if ln.get("status") == "created" and ln["index"] == 0)
        assert (first["moved"], first["link_issue"]) == ({"TEST-3": "NEW-1"}, "NEW-1")
        # A re-run with the journal, by a new client (the moves come from the journal), with
        # the old keys and the new ones: no write.
        fake.stats.reset()
        fake.fail_rate = fake.drop_rate = 0.0
        renamed = [("NEW-1", "TEST-10", "depends on"), ("TEST-11", "NEW-2", "relates")]
        async with connect(url) as client:
            again = await client.links.bulk_create([*MOVED_SPECS, *renamed], journal=journal)
        assert {o.status.value for o in again.outcomes} == {"exists"}
        assert fake.stats.count("POST") == 0
        assert fake.stats.total == 0
        assert again.outcomes[0].moved == {"TEST-3": "NEW-1"}


async def test_queue_links_gives_the_aliases_of_moved_issues() -> None:
    fake, moves = moved_fake()
    with fake.serve() as url:
        async with connect(url) as client:
            await client.links.create("TEST-3", "TEST-4", "relates")
            async with client.links.queue_links("NEW") as found:
                items = {item.key: item async for item in found}
            assert dict(client.links.aliases) == moves
    assert {k: v.aliases for k, v in items.items()} == {
        "NEW-1": ("TEST-3",),
        "NEW-2": ("TEST-4",),
        "NEW-3": ("TEST-5",),
    }
    assert [ln.target.key for ln in items["NEW-1"].links] == ["NEW-2"]


async def test_a_redirect_to_another_host_is_not_followed_and_gets_no_token() -> None:
    from .test_http11 import scripted
    from .test_redirects import moved

    async with scripted() as other:
        elsewhere = other.url.replace("127.0.0.1", "localhost")
        scripts = [[moved(f"{elsewhere}/v2/issues/NEW-{i}/links", 301)] for i in range(1, 4)]
        async with scripted(*scripts) as service:
            async with connect(service.url, max_concurrency=1) as client:
                report = await client.links.bulk_create(
                    [
                        ("OLD-1", "A-2", "relates"),
                        LinkSpec("OLD-2", "A-2", "relates", created_at=EPOCH, created_by="x"),
                        ("OLD-3", "A-2", "relates"),
                    ]
                )
            assert len(service.requests) == 3
            assert all(TOKEN.encode() in r for r in service.requests)
        assert [o.status for o in report.outcomes] == [OutcomeStatus.FAILED] * 3
        for outcome in report.outcomes:
            reason = str(outcome.reason)
            assert "localhost" in reason
            assert "another host" in reason
            assert TOKEN not in reason + repr(outcome.error)
        assert other.accepted == 0
        assert other.requests == []


def test_bulk_link_cli_with_moved_keys_and_history(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracker_links._cli import main

    fake, _ = moved_fake(token=TOKEN)
    source = tmp_path / "links.csv"
    source.write_text(
        "source,relationship,target,created_at,created_by\n"
        "TEST-3,depends on,TEST-10,,\n"
        "TEST-11,relates,TEST-4,2016-01-02T03:04:05.678+0000,petrov\n"
        "TEST-12,relates,TEST-13,,\n"
        "TEST-14,relates,TEST-15,2016-01-02,petrov\n",
        encoding="utf-8",
    )
    journal, report = tmp_path / "j.jsonl", tmp_path / "r.jsonl"
    for name in ("TRACKER_IAM_TOKEN", "TRACKER_CLOUD_ORG_ID", "TRACKER_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRACKER_TOKEN", TOKEN)
    monkeypatch.setenv("TRACKER_ORG_ID", "1")
    monkeypatch.setenv("COLUMNS", "200")
    argv = ["bulk-link", str(source), "--journal", str(journal), "--report", str(report)]
    with fake.serve() as url:
        monkeypatch.setenv("TRACKER_BASE_URL", url)
        code = main([*argv, "--api-version", "v3"])
        out = capsys.readouterr().out
        assert code == 1, out  # the bad date of line 5
        assert "moved keys" in out
        assert "TEST-3 -> NEW-1" in out
        assert "TEST-4 -> NEW-2" in out
        assert "line 5" in out
        assert "created_at" in out
        assert fake.has_link("NEW-1", "TEST-10", "depends on")
        (imported,) = fake.find_links("TEST-11", "NEW-2", "relates")
        assert imported.created_by == "petrov"
        assert imported.created_at == datetime(2016, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
        lines = [json.loads(line) for line in report.read_text().splitlines()]
        created = {
            (ln["source"], ln["target"]): ln.get("moved")
            for ln in lines
            if ln.get("status") == "created"
        }
        assert created == {
            ("TEST-3", "TEST-10"): {"TEST-3": "NEW-1"},
            ("TEST-11", "TEST-4"): {"TEST-4": "NEW-2"},
            ("TEST-12", "TEST-13"): None,
        }
        fake.stats.reset()
        code = main(argv)
        out = capsys.readouterr().out
        assert code == 1  # the bad line is still bad
        assert fake.stats.count("POST") == 0
        assert TOKEN not in out
