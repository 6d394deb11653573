"""Migrations over respx: clone links, the API version, the import, history on specs, moves."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx

from tracker_links import (
    AuthError,
    ConflictError,
    Direction,
    InvalidInputError,
    LinkSpec,
    Relationship,
    TrackerClient,
)

from .helpers import BASE, FakeTime, error
from .test_client import TOKEN, make_client

pytestmark = pytest.mark.anyio


def link_json(
    source: str,
    target: str,
    type_id: str,
    direction: str,
    *,
    link_id: int = 501,
    version: str = "v2",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "self": f"{BASE}/{version}/issues/{source}/links/{link_id}",
        "id": link_id,
        "type": {"self": f"{BASE}/{version}/linktypes/{type_id}", "id": type_id},
        "direction": direction,
        "object": {"self": f"{BASE}/{version}/issues/{target}", "key": target, "display": "t"},
        **extra,
    }


# --- clone links -----------------------------------------------------------------------------


def test_clone_and_original_are_inverses_on_the_clone_type() -> None:
    assert Relationship("clone") is Relationship.CLONE
    assert Relationship("original") is Relationship.ORIGINAL
    assert Relationship.CLONE.inverse is Relationship.ORIGINAL
    assert Relationship.ORIGINAL.inverse is Relationship.CLONE
    assert (Relationship.CLONE.type_id, Relationship.CLONE.direction) == (
        "clone",
        Direction.OUTWARD,
    )
    assert (Relationship.ORIGINAL.type_id, Relationship.ORIGINAL.direction) == (
        "clone",
        Direction.INWARD,
    )
    assert Relationship.parse("ORIGINAL") is Relationship.ORIGINAL
    # A clone of B, written from either side, is one link.
    assert LinkSpec("A-1", "B-2", "clone").digest == LinkSpec("B-2", "A-1", "original").digest
    assert LinkSpec("A-1", "B-2", "clone").digest != LinkSpec("A-1", "B-2", "original").digest


async def test_clone_may_be_sent_to_create(mock: respx.MockRouter, ft: FakeTime) -> None:
    post = mock.post("/v2/issues/A-1/links").respond(
        201, json=link_json("A-1", "B-2", "clone", "outward")
    )
    async with make_client(ft, mock) as client:
        link = await client.links.create("A-1", "B-2", Relationship.CLONE)
    assert link.relationship is Relationship.CLONE
    assert json.loads(post.calls.last.request.content) == {"relationship": "clone", "issue": "B-2"}


@pytest.mark.parametrize(("status", "cls"), [(422, ConflictError), (400, InvalidInputError)])
async def test_clone_refused_by_create_says_to_use_the_import(
    mock: respx.MockRouter, ft: FakeTime, status: int, cls: type[Exception]
) -> None:
    post = mock.post("/v2/issues/A-1/links").mock(
        return_value=error(status, "Relationship 'original' is not allowed")
    )
    get = mock.get("/v2/issues/A-1/links").respond(200, json=[])
    async with make_client(ft, mock) as client:
        with pytest.raises(cls) as info:
            await client.links.create("A-1", "B-2", "original")
    text = str(info.value)
    assert "import_link" in text
    assert "not allowed" in text
    assert getattr(info.value, "status_code", None) == status
    assert post.call_count == 1
    assert get.call_count <= 1  # one look for an existing link, not the listing-lag wait
    assert ft.waits == []


async def test_an_existing_clone_link_is_still_a_conflict_with_the_link(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    existing = link_json("A-1", "B-2", "clone", "inward")
    mock.post("/v2/issues/A-1/links").mock(return_value=error(422, "already linked"))
    mock.get("/v2/issues/A-1/links").respond(200, json=[existing])
    async with make_client(ft, mock) as client:
        with pytest.raises(ConflictError) as info:
            await client.links.create("A-1", "B-2", "original")
        assert info.value.link is not None
        assert info.value.link.id == 501
        same = await client.links.create("A-1", "B-2", "original", exist_ok=True)
    assert same.relationship is Relationship.ORIGINAL


# --- the API version ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v2", "v3"])
async def test_every_endpoint_follows_the_api_version(
    mock: respx.MockRouter, ft: FakeTime, version: str
) -> None:
    other = "v3" if version == "v2" else "v2"
    refused = mock.route(url__regex=rf"^{BASE}/{other}/").respond(410)
    links = mock.get(f"/{version}/issues/A-1/links").respond(200, json=[])
    post = mock.post(f"/{version}/issues/A-1/links").respond(
        201, json=link_json("A-1", "B-2", "depends", "outward", version=version)
    )
    delete = mock.delete(f"/{version}/issues/A-1/links/501").respond(204)
    types = mock.get(f"/{version}/linktypes").respond(200, json=[{"id": "relates"}])
    search = mock.post(f"/{version}/issues/_search").respond(
        200, json=[{"key": "A-1"}], headers={"X-Total-Count": "1", "X-Total-Pages": "1"}
    )
    async with make_client(ft, mock, api_version=version) as client:
        assert client.api_version == version
        assert await client.links.get("A-1") == []
        await client.links.create("A-1", "B-2", "depends on")
        await client.links.delete("A-1", 501)
        assert [t.id for t in await client.links.types()] == ["relates"]
        async with client.links.queue_links("A") as found:
            assert [item.key async for item in found] == ["A-1"]
        report = await client.links.bulk_create([("A-1", "B-2", "depends on")])
        assert report.ok
    assert refused.call_count == 0
    assert links.call_count == 2  # get, queue_links
    assert post.call_count == 2  # create, bulk_create
    assert (delete.call_count, types.call_count, search.call_count) == (1, 1, 1)


@pytest.mark.parametrize("bad", ["v1", "V3", "3", "", " v3", 3, None])
def test_an_unknown_api_version_is_invalid_input(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="api_version"):
        TrackerClient(TOKEN, org_id="1", api_version=bad)


def test_from_env_reads_the_api_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_TOKEN", TOKEN)
    monkeypatch.setenv("TRACKER_ORG_ID", "1")
    monkeypatch.delenv("TRACKER_API_VERSION", raising=False)
    assert TrackerClient.from_env().api_version == "v2"
    monkeypatch.setenv("TRACKER_API_VERSION", "v3")
    assert TrackerClient.from_env().api_version == "v3"
    assert TrackerClient.from_env(api_version="v2").api_version == "v2"
    monkeypatch.setenv("TRACKER_API_VERSION", "v4")
    with pytest.raises(InvalidInputError, match="'v4'"):
        TrackerClient.from_env()


def test_the_cli_takes_an_api_version(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker_links._cli import build_parser
    from tracker_links._cli._setup import make_client as cli_client

    monkeypatch.setenv("TRACKER_TOKEN", TOKEN)
    monkeypatch.setenv("TRACKER_ORG_ID", "1")
    monkeypatch.delenv("TRACKER_API_VERSION", raising=False)
    parser = build_parser()
    args = parser.parse_args(["bulk-link", "--api-version", "v3", "x.csv"])
    assert cli_client(args).api_version == "v3"
    assert cli_client(parser.parse_args(["bulk-link", "x.csv"])).api_version == "v2"
    monkeypatch.setenv("TRACKER_API_VERSION", "v3")
    assert cli_client(parser.parse_args(["bulk-link", "x.csv"])).api_version == "v3"
    with pytest.raises(SystemExit):
        parser.parse_args(["bulk-link", "--api-version", "v9", "x.csv"])


# --- the import --------------------------------------------------------------------------------

IMPORT = "/v2/issues/A-1/links/_import"
STAMP = "2019-03-01T10:00:00.000+0300"


class ImportServer:
    """The links of A-1 behind respx: ``faults`` scripts the next imports as ``(applied,
    answer)`` (a status, or an exception: the answer lost); otherwise an import is applied and
    answered 200, or 422 when the link exists."""

    def __init__(self, router: respx.MockRouter, version: str = "v2") -> None:
        self.version = version
        self.links: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []
        self.faults: list[tuple[bool, int | Exception]] = []
        base = f"/{version}/issues/A-1/links"
        self.post = router.post(base + "/_import").mock(side_effect=self.on_import)
        self.get = router.get(base).mock(side_effect=lambda _: httpx.Response(200, json=self.links))

    def on_import(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        existing = [ln for ln in self.links if ln["object"]["key"] == body["issue"]]
        applied, answer = (
            self.faults.pop(0) if self.faults else (not existing, 422 if existing else 200)
        )
        if applied and not existing:
            type_id, direction = FILED[body["relationship"]]
            link = link_json(
                "A-1",
                body["issue"],
                type_id,
                direction,
                link_id=600 + len(self.links),
                version=self.version,
                createdAt=body["createdAt"],
                createdBy={"id": str(body["createdBy"]), "display": str(body["createdBy"])},
            )
            self.links.append(link)
        if isinstance(answer, Exception):
            raise answer
        if answer == 200:
            return httpx.Response(200, json=self.links[-1])
        return error(answer, f"answer {answer}")


FILED = {
    "depends on": ("depends", "outward"),
    "clone": ("clone", "outward"),
    "relates": ("relates", "inward"),
}


@pytest.fixture
def imports(mock: respx.MockRouter) -> ImportServer:
    return ImportServer(mock)


async def test_import_sends_the_history_and_reads_the_200(
    imports: ImportServer, mock: respx.MockRouter, ft: FakeTime
) -> None:
    async with make_client(ft, mock) as client:
        link = await client.links.import_link(
            "A-1", "B-2", "depends on", created_at=STAMP, created_by="ivanov"
        )
    assert imports.bodies == [
        {"relationship": "depends on", "issue": "B-2", "createdAt": STAMP, "createdBy": "ivanov"}
    ]
    assert link.relationship is Relationship.DEPENDS_ON
    assert link.created_at == datetime(2019, 3, 1, 7, 0, tzinfo=timezone.utc)
    assert imports.get.call_count == 0


async def test_import_with_datetimes_ids_and_the_update(
    imports: ImportServer, mock: respx.MockRouter, ft: FakeTime
) -> None:
    msk = timezone(timedelta(hours=3))
    async with make_client(ft, mock) as client:
        await client.links.import_link(
            "A-1",
            "B-2",
            Relationship.CLONE,
            created_at=datetime(2019, 3, 1, 10, 0, 0, 123456, tzinfo=msk),
            created_by=1120000000004859,
            updated_at=datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
            updated_by="petrov",
        )
        await client.links.import_link(
            "A-1", "C-3", "relates", created_at=STAMP, created_by="1120000000004859"
        )
    assert imports.bodies[0] == {
        "relationship": "clone",
        "issue": "B-2",
        "createdAt": "2019-03-01T10:00:00.123+0300",
        "createdBy": 1120000000004859,
        "updatedAt": "2020-01-02T03:04:05.000+0000",
        "updatedBy": "petrov",
    }
    assert imports.bodies[1]["createdBy"] == "1120000000004859"


NAIVE = datetime(2019, 3, 1, 10, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"created_at": NAIVE, "created_by": "ivanov"}, "naive"),
        ({"created_at": "2019-03-01 10:00:00", "created_by": "ivanov"}, "YYYY"),
        ({"created_at": "2019-03-01T10:00:00+0300", "created_by": "ivanov"}, "YYYY"),
        ({"created_at": "2019-03-01T10:00:00.000Z", "created_by": "ivanov"}, "YYYY"),
        ({"created_at": "2019-13-01T10:00:00.000+0300", "created_by": "ivanov"}, "created_at"),
        ({"created_at": 1551423600, "created_by": "ivanov"}, "created_at"),
        ({"created_at": None, "created_by": "ivanov"}, "created_at"),
        ({"created_at": STAMP, "created_by": None}, "created_by"),
        ({"created_at": STAMP, "created_by": ""}, "created_by"),
        ({"created_at": STAMP, "created_by": "ivan ivanov"}, "created_by"),
        ({"created_at": STAMP, "created_by": "ivanov\n"}, "created_by"),
        ({"created_at": STAMP, "created_by": "iva\x00nov"}, "created_by"),
        ({"created_at": STAMP, "created_by": True}, "created_by"),
        ({"created_at": STAMP, "created_by": 0}, "created_by"),
        ({"created_at": STAMP, "created_by": 1.5}, "created_by"),
        ({"created_at": STAMP, "created_by": "x" * 257}, "created_by"),
        ({"created_at": STAMP, "created_by": "a", "updated_at": STAMP}, "updated_by"),
        ({"created_at": STAMP, "created_by": "a", "updated_by": "b"}, "updated_at"),
        ({"created_at": STAMP, "created_by": "a", "updated_at": NAIVE, "updated_by": "b"}, "naive"),
        (
            {"created_at": STAMP, "created_by": "a", "updated_at": STAMP, "updated_by": " "},
            "updated_by",
        ),
        (
            {
                "created_at": STAMP,
                "created_by": "a",
                "updated_at": "2019-03-01T06:59:59.999+0000",
                "updated_by": "b",
            },
            "before",
        ),
    ],
)
async def test_bad_history_is_invalid_input_before_any_request(
    imports: ImportServer, mock: respx.MockRouter, ft: FakeTime, kwargs: dict[str, Any], match: str
) -> None:
    async with make_client(ft, mock) as client:
        with pytest.raises(InvalidInputError, match=match):
            await client.links.import_link("A-1", "B-2", "depends on", **kwargs)
    if kwargs.get("created_at") is not None:
        with pytest.raises(InvalidInputError, match=match):
            LinkSpec("A-1", "B-2", "depends on", **kwargs)
    assert imports.post.call_count == imports.get.call_count == 0


async def test_import_after_an_unknown_outcome_looks_before_sending_again(
    imports: ImportServer, mock: respx.MockRouter, ft: FakeTime
) -> None:
    imports.faults = [(True, 503), (True, httpx.ReadTimeout("lost"))]
    async with make_client(ft, mock) as client:
        first = await client.links.import_link(
            "A-1", "B-2", "depends on", created_at=STAMP, created_by="ivanov"
        )
        second = await client.links.import_link(
            "A-1", "C-3", "depends on", created_at=STAMP, created_by="ivanov"
        )
    assert imports.post.call_count == 2  # each applied once, found by the check: not re-sent
    assert imports.get.call_count == 2
    assert [first.id, second.id] == [600, 601]
    assert len(imports.links) == 2


async def test_import_not_applied_is_sent_again_once(
    imports: ImportServer, mock: respx.MockRouter, ft: FakeTime
) -> None:
    imports.faults = [(False, 503)]
    async with make_client(ft, mock) as client:
        link = await client.links.import_link(
            "A-1", "B-2", "depends on", created_at=STAMP, created_by="ivanov"
        )
    assert imports.post.call_count == 2
    assert imports.get.call_count == 1
    assert link.id == 600
    assert [b["createdAt"] for b in imports.bodies] == [STAMP, STAMP]


async def test_import_of_an_existing_link_is_a_conflict_with_the_link(
    imports: ImportServer, mock: respx.MockRouter, ft: FakeTime
) -> None:
    imports.links.append(link_json("A-1", "B-2", "depends", "outward", link_id=42))
    async with make_client(ft, mock) as client:
        with pytest.raises(ConflictError) as info:
            await client.links.import_link(
                "A-1", "B-2", "depends on", created_at=STAMP, created_by="ivanov"
            )
        assert info.value.link is not None
        assert info.value.link.id == 42
        link = await client.links.import_link(
            "A-1", "B-2", "depends on", created_at=STAMP, created_by="ivanov", exist_ok=True
        )
    assert link.id == 42
    assert len(imports.links) == 1


async def test_import_403_says_an_administrator_is_needed(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    mock.post(IMPORT).mock(return_value=error(403, "Forbidden"))
    async with make_client(ft, mock) as client:
        with pytest.raises(AuthError) as info:
            await client.links.import_link(
                "A-1", "B-2", "depends on", created_at=STAMP, created_by="ivanov"
            )
    assert "administrator" in str(info.value)
    assert info.value.status_code == 403
    assert TOKEN not in repr(info.value)


async def test_a_403_on_create_is_not_called_an_import_matter(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    mock.post("/v2/issues/A-1/links").mock(return_value=error(403, "Forbidden"))
    async with make_client(ft, mock) as client:
        with pytest.raises(AuthError) as info:
            await client.links.create("A-1", "B-2", "depends on")
    assert "administrator" not in str(info.value)


async def test_import_follows_the_api_version(mock: respx.MockRouter, ft: FakeTime) -> None:
    server = ImportServer(mock, "v3")
    async with make_client(ft, mock, api_version="v3") as client:
        await client.links.import_link("A-1", "B-2", "clone", created_at=STAMP, created_by="x")
    assert server.post.call_count == 1


# --- history on specs, in bulk -------------------------------------------------------------------


def test_history_is_not_part_of_a_links_identity() -> None:
    plain = LinkSpec("A-1", "B-2", "depends on")
    kept = LinkSpec("A-1", "B-2", "depends on", created_at=STAMP, created_by="ivanov")
    other_side = LinkSpec(
        "B-2",
        "A-1",
        "is dependent by",
        created_at="2001-01-01T00:00:00.000+0000",
        created_by=7,
        updated_at="2002-01-01T00:00:00.000+0000",
        updated_by="petrov",
    )
    assert plain.canonical == kept.canonical == other_side.canonical
    assert plain.digest == kept.digest == other_side.digest
    assert plain.history == {}
    assert kept.history == {"created_at": STAMP, "created_by": "ivanov"}
    assert kept.as_dict() == {
        "source": "A-1",
        "relationship": "depends on",
        "target": "B-2",
        "created_at": STAMP,
        "created_by": "ivanov",
    }
    assert LinkSpec.coerce(kept.as_dict()) == kept
    assert LinkSpec.coerce(plain.as_dict()) == plain


def test_a_spec_with_half_a_history_is_invalid() -> None:
    with pytest.raises(InvalidInputError, match="created_by"):
        LinkSpec("A-1", "B-2", "relates", created_at=STAMP)
    with pytest.raises(InvalidInputError, match="created_at"):
        LinkSpec("A-1", "B-2", "relates", created_by="ivanov")
    with pytest.raises(InvalidInputError, match="updated_by"):
        LinkSpec.coerce(
            {"source": "A-1", "target": "B-2", "relationship": "relates", "updated_at": STAMP}
        )


def history_fake(**kwargs: Any) -> Any:
    from tracker_links.testing import FakeTracker

    kwargs.setdefault("seed", 3)
    return FakeTracker(queues={"TEST": 40}, **kwargs)


async def test_bulk_create_imports_specs_with_history_and_creates_the_others(
    tmp_path: Any, ft: FakeTime
) -> None:
    fake = history_fake()
    journal = tmp_path / "links.jsonl"
    specs: list[Any] = [
        LinkSpec("TEST-1", "TEST-2", "depends on", created_at=STAMP, created_by="ivanov"),
        ("TEST-3", "TEST-4", "relates"),
        {
            "source": "TEST-5",
            "target": "TEST-6",
            "relationship": "clone",
            "created_at": STAMP,
            "created_by": 1120000000004859,
            "updated_at": "2020-01-01T00:00:00.000+0000",
            "updated_by": "petrov",
        },
        # The same link as the first, without history: one link, not sent again.
        ("TEST-2", "TEST-1", "is dependent by"),
        {"source": "TEST-7", "target": "TEST-8", "relationship": "relates", "created_at": "x"},
    ]
    async with fake.client(sleep=ft.sleep, clock=ft.clock) as client:
        report = await client.links.bulk_create(specs, journal=journal)
    assert [o.status.value for o in report.outcomes] == [
        "created",
        "created",
        "created",
        "exists",
        "failed",
    ]
    assert report.outcomes[3].repeat_of == 0
    assert "created_at" in str(report.outcomes[4].error)
    assert fake.stats.by_route[("POST", "links.import")] == 2
    assert fake.stats.by_route[("POST", "links.create")] == 1
    (first,) = fake.find_links("TEST-1", "TEST-2", "depends on")
    assert first.created_by == "ivanov"
    assert first.created_at == datetime(2019, 3, 1, 7, tzinfo=timezone.utc)
    (clone,) = fake.find_links("TEST-5", "TEST-6", "clone")
    assert (clone.created_by, clone.updated_by) == ("1120000000004859", "petrov")
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    outcome = next(ln for ln in lines if ln.get("status") == "created" and ln["index"] == 2)
    intent = next(ln for ln in lines if ln.get("intent") and ln["index"] == 2)
    for line in (outcome, intent):
        assert line["created_at"] == STAMP
        assert line["created_by"] == 1120000000004859
        assert line["updated_at"] == "2020-01-01T00:00:00.000+0000"
        assert line["updated_by"] == "petrov"
    assert report.outcomes[0].to_json()["created_by"] == "ivanov"
    # A re-run with the journal sends no write, with or without the history in its input.
    fake.stats.reset()
    async with fake.client(sleep=ft.sleep, clock=ft.clock) as client:
        again = await client.links.bulk_create(
            [("TEST-1", "TEST-2", "depends on"), specs[2]], journal=journal
        )
    assert [o.status.value for o in again.outcomes] == ["exists", "exists"]
    assert fake.stats.count("POST") == 0


async def test_a_lost_import_answer_is_read_back_as_created(
    imports: ImportServer, mock: respx.MockRouter, ft: FakeTime
) -> None:
    # The import lands but its answer is lost: the link found has the asked createdAt (the
    # history, long before the call), and that is this run's work, not an older link.
    imports.faults = [(True, httpx.ReadTimeout("lost")), (False, 503)]
    imports.links.append(
        link_json(
            "A-1", "C-3", "depends", "outward", link_id=9, createdAt="2014-06-18T12:06:02.401+0000"
        )
    )
    specs = [
        LinkSpec("A-1", "B-2", "depends on", created_at=STAMP, created_by="ivanov"),
        LinkSpec("A-1", "C-3", "depends on", created_at=STAMP, created_by="ivanov"),
    ]
    async with make_client(ft, mock, max_concurrency=1) as client:
        report = await client.links.bulk_create(specs)
    created, older = report.outcomes
    assert (created.status.value, created.verified_by) == ("created", "read_back")
    # Found after the second's lost answer: another createdAt, so it was there before.
    assert (older.status.value, older.verified_by, older.link.id) == ("exists", "created_at", 9)
    assert imports.post.call_count == 2


def test_cli_input_reads_the_history_columns_and_keys() -> None:
    import io

    from tracker_links._cli._input import read_rows

    csv_text = (
        "Source,Relationship,Target,created_at,CREATED_BY,updated_at,updated_by\n"
        f"A-1,depends on,B-2,{STAMP},ivanov,,\n"
        "A-1,relates,C-3,,,,\n"
        f"A-1,relates,D-4,{STAMP},1120000000004859,2020-01-01T00:00:00.000+0000,petrov\n"
        "A-1,relates,E-5,2019-03-01,ivanov,,\n"
        f"A-1,relates,F-6,{STAMP},,,\n"
    )
    rows = list(read_rows(io.StringIO(csv_text), "auto", "in.csv").rows)
    assert [r.line for r in rows] == [2, 3, 4, 5, 6]
    first, plain, full, bad_date, no_user = rows
    assert first.spec == LinkSpec("A-1", "B-2", "depends on", created_at=STAMP, created_by="ivanov")
    assert plain.spec == LinkSpec("A-1", "C-3", "relates")
    assert full.spec is not None
    assert full.spec.history == {
        "created_at": STAMP,
        "created_by": "1120000000004859",
        "updated_at": "2020-01-01T00:00:00.000+0000",
        "updated_by": "petrov",
    }
    assert bad_date.spec is None
    assert "created_at" in str(bad_date.reason)
    assert no_user.spec is None
    assert "created_by" in str(no_user.reason)
    jsonl = (
        json.dumps(
            {
                "source": "A-1",
                "relationship": "clone",
                "target": "B-2",
                "created_at": STAMP,
                "created_by": 42,
            }
        )
        + "\n"
        + json.dumps(
            {"source": "A-1", "relationship": "relates", "target": "C-3", "created_by": ""}
        )
        + "\n"
        + json.dumps(
            {"source": "A-1", "relationship": "relates", "target": "D-4", "created_at": 12345}
        )
        + "\n"
    )
    clone, empty, bad = read_rows(io.StringIO(jsonl), "auto", "in.jsonl").rows
    assert clone.spec == LinkSpec("A-1", "B-2", "clone", created_at=STAMP, created_by=42)
    assert empty.spec == LinkSpec("A-1", "C-3", "relates")
    assert bad.spec is None
    assert "created_at" in str(bad.reason)


# --- moved issues ------------------------------------------------------------------------------


def test_aliases_resolve_chains_and_ignore_ids() -> None:
    from tracker_links._moves import Aliases, key_in_url

    aliases = Aliases({"OLD-1": "MID-1"})
    assert aliases.learn("MID-1", "NEW-1")
    assert aliases["OLD-1"] == aliases["MID-1"] == "NEW-1"
    assert aliases.resolve("X-9") == "X-9"
    assert not aliases.learn("593cd211ef7e8a3312345678", "NEW-2")  # an id never moves
    assert not aliases.learn("A-1", "A-1")
    assert not aliases.learn("A-1", None)
    spec = LinkSpec("OLD-1", "B-2", "depends on")
    assert aliases.moved(spec) == {"OLD-1": "NEW-1"}
    assert aliases.moved(LinkSpec("A-1", "B-2", "relates")) is None
    assert aliases.identity(spec) == LinkSpec("NEW-1", "B-2", "depends on").digest
    assert aliases.identity(LinkSpec("B-2", "OLD-1", "is dependent by")) == aliases.identity(spec)
    assert key_in_url(f"{BASE}/v2/issues/NEW-3/links/7") == "NEW-3"
    assert key_in_url(f"{BASE}/v3/issues/NEW-3?fields=key") == "NEW-3"
    assert key_in_url(f"{BASE}/v2/issues/593cd211ef7e8a3312345678/links") is None
    assert key_in_url(None) is None


async def test_a_moved_source_is_reported_from_the_link_answered(
    mock: respx.MockRouter, ft: FakeTime, tmp_path: Any
) -> None:
    # The service answers the old key's create from the new key (after the redirect): the
    # link's self names where it is.
    post = mock.post("/v2/issues/OLD-1/links").respond(
        201, json=link_json("NEW-1", "B-2", "relates", "inward")
    )
    journal = tmp_path / "j.jsonl"
    async with make_client(ft, mock) as client:
        report = await client.links.bulk_create(
            [("OLD-1", "B-2", "relates"), ("NEW-1", "B-2", "relates"), ("B-2", "OLD-1", "relates")],
            journal=journal,
        )
        assert client.links.aliases == {"OLD-1": "NEW-1"}
    first, again, reversed_ = report.outcomes
    assert first.status.value == "created"
    assert first.moved == {"OLD-1": "NEW-1"}
    # Its new key and its old one are one issue: both repeats are of the first, not sent.
    assert (again.repeat_of, reversed_.repeat_of) == (0, 0)
    assert post.call_count == 1
    assert report.moved == {"OLD-1": "NEW-1"}
    assert "1 moved issue keys followed" in report.summary()
    line = first.to_json()
    assert line["moved"] == {"OLD-1": "NEW-1"}
    assert (line["source"], line["link_issue"]) == ("OLD-1", "NEW-1")
    # A re-run with the journal, under the old key or the new one, sends nothing.
    async with make_client(ft, mock) as client:
        rerun = await client.links.bulk_create(
            [("OLD-1", "B-2", "relates"), ("NEW-1", "B-2", "relates")], journal=journal
        )
        assert client.links.aliases == {"OLD-1": "NEW-1"}  # taught by the journal
    assert [o.status.value for o in rerun.outcomes] == ["exists", "exists"]
    assert rerun.outcomes[0].moved == {"OLD-1": "NEW-1"}
    assert post.call_count == 1


async def test_a_moved_target_is_reported_and_matched_after_a_lost_answer(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    landed = link_json("A-1", "NEW-5", "depends", "outward")
    links: list[dict[str, Any]] = [link_json("A-1", "C-3", "depends", "outward", link_id=8)]

    def on_post(request: httpx.Request) -> httpx.Response:
        if landed in links:
            return error(422, "already linked")
        links.append(landed)
        return error(503, "lost")  # applied, and the answer says nothing

    post = mock.post("/v2/issues/A-1/links").mock(side_effect=on_post)
    mock.get("/v2/issues/A-1/links").mock(side_effect=lambda _: httpx.Response(200, json=links))
    lookup = mock.get("/v2/issues/OLD-5").respond(200, json={"key": "NEW-5", "aliases": ["OLD-5"]})
    async with make_client(ft, mock) as client:
        (outcome,) = (await client.links.bulk_create([("A-1", "OLD-5", "depends on")])).outcomes
    assert outcome.status.value == "created"
    assert outcome.link is not None
    assert outcome.link.target.key == "NEW-5"
    assert outcome.moved == {"OLD-5": "NEW-5"}
    # Not listed under the asked key, so sent again; refused as existing, and found under the
    # target's current key (asked once): one link, no failure.
    assert post.call_count == 2
    assert links.count(landed) == 1
    assert lookup.call_count == 1
    assert lookup.calls.last.request.url.params["fields"] == "key,aliases"


async def test_a_target_is_looked_up_only_when_a_link_of_the_kind_could_be_it(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    answers = iter(
        [
            error(503, "lost"),
            httpx.Response(201, json=link_json("A-1", "B-2", "depends", "outward")),
        ]
    )
    mock.post("/v2/issues/A-1/links").mock(side_effect=lambda _: next(answers))
    mock.get("/v2/issues/A-1/links").respond(
        200, json=[link_json("A-1", "C-3", "relates", "inward", link_id=8)]
    )
    async with make_client(ft, mock) as client:
        link = await client.links.create("A-1", "B-2", "depends on")
    assert link.target.key == "B-2"  # no lookup route: a GET of B-2 would have failed the test


async def test_a_moved_target_answered_by_its_new_key(mock: respx.MockRouter, ft: FakeTime) -> None:
    mock.post("/v2/issues/A-1/links").respond(
        201, json=link_json("A-1", "NEW-5", "relates", "inward")
    )
    mock.post("/v2/issues/A-1/links/_import").respond(
        200, json=link_json("A-1", "B-2", "relates", "inward", link_id=9)
    )
    async with make_client(ft, mock) as client:
        report = await client.links.bulk_create(
            [
                ("A-1", "OLD-5", "relates"),
                LinkSpec("A-1", "B-2", "relates", created_at=STAMP, created_by="x"),
            ]
        )
    assert [o.moved for o in report.outcomes] == [{"OLD-5": "NEW-5"}, None]


async def test_queue_links_exposes_the_aliases_of_moved_issues(
    mock: respx.MockRouter, ft: FakeTime
) -> None:
    search = mock.post("/v2/issues/_search").respond(
        200,
        json=[{"key": "NEW-1", "aliases": ["OLD-1", "OLDER-1"]}, {"key": "A-2"}],
        headers={"X-Total-Count": "2", "X-Total-Pages": "1"},
    )
    mock.get("/v2/issues/NEW-1/links").respond(200, json=[])
    mock.get("/v2/issues/A-2/links").respond(200, json=[])
    async with make_client(ft, mock) as client:
        async with client.links.queue_links("A") as found:
            items = {item.key: item async for item in found}
        assert client.links.aliases == {"OLD-1": "NEW-1", "OLDER-1": "NEW-1"}
    assert items["NEW-1"].aliases == ("OLD-1", "OLDER-1")
    assert items["A-2"].aliases == ()
    assert search.calls.last.request.url.params["fields"] == "key,aliases"


def test_every_request_builder_takes_the_version() -> None:
    from tracker_links import _protocol as p

    spec = LinkSpec("A-1", "B-2", "relates", created_at=STAMP, created_by="x")
    requests = [
        p.get_links("A-1", "v3"),
        p.create_link("A-1", "B-2", "relates", "v3"),
        p.write_request(spec, "v3"),
        p.write_request(LinkSpec("A-1", "B-2", "relates"), "v3"),
        p.delete_link("A-1", 5, "v3"),
        p.link_types("v3"),
        p.myself("v3"),
        p.issue_key("A-1", "v3"),
        p.search_page({"query": "x"}, 1, "v3"),
        p.search_scroll({"query": "x"}, version="v3"),
        p.search_scroll({"query": "x"}, "sid", "tok", "v3"),
    ]
    assert all(r.path.startswith("/v3/") for r in requests), [r.path for r in requests]
    assert p.write_request(spec, "v3").path == "/v3/issues/A-1/links/_import"
    assert p.myself().path == "/v2/myself"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_the_final_url_of_a_redirect_tells_the_move(
    mock: respx.MockRouter, ft: FakeTime, status: int
) -> None:
    def moved(path: str) -> httpx.Response:
        return httpx.Response(status, headers={"Location": f"{BASE}{path}"})

    old_post = mock.post("/v2/issues/OLD-1/links").mock(
        return_value=moved("/v2/issues/NEW-1/links")
    )
    # The answer's self does not name the issue: only the URL that answered does.
    answer = link_json("NEW-1", "B-2", "relates", "inward")
    del answer["self"]
    new_post = mock.post("/v2/issues/NEW-1/links").respond(201, json=answer)
    mock.get("/v2/issues/OLD-7/links").mock(return_value=moved("/v2/issues/NEW-7/links"))
    mock.get("/v2/issues/NEW-7/links").respond(200, json=[])
    async with make_client(ft, mock) as client:
        (outcome,) = (await client.links.bulk_create([("OLD-1", "B-2", "relates")])).outcomes
        assert await client.links.get("OLD-7") == []
        assert dict(client.links.aliases) == {"OLD-1": "NEW-1", "OLD-7": "NEW-7"}
    assert outcome.moved == {"OLD-1": "NEW-1"}
    assert (old_post.call_count, new_post.call_count) == (1, 1)
    assert new_post.calls.last.request.content == old_post.calls.last.request.content


def test_a_dry_run_keeps_the_history_columns(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracker_links._cli import main

    source = tmp_path / "in.csv"
    source.write_text(
        "source,relationship,target,created_by,created_at\n"
        f"A-1,depends on,B-2,ivanov,{STAMP}\n"
        "A-1,relates,C-3,,\n",
        encoding="utf-8",
    )
    assert main(["bulk-link", "--dry-run", str(source)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "source,relationship,target,created_at,created_by",
        f"A-1,depends on,B-2,{STAMP},ivanov",
        "A-1,relates,C-3,,",
    ]
