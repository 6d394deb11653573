"""Migrations over respx: clone links, the API version, the import, history on specs, moves."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from tracker_links import (
    ConflictError,
    Direction,
    InvalidInputError,
    LinkSpec,
    Relationship,
    TrackerClient,
)

from .helpers import BASE, FakeTime, error

pytestmark = pytest.mark.anyio

TOKEN = "y0_AgAAAAB-migrate-secret-token-77aa"


def make_client(ft: FakeTime, router: respx.MockRouter, **kwargs: Any) -> TrackerClient:
    return TrackerClient(
        TOKEN,
        org_id="7654321",
        sleep=ft.sleep,
        clock=ft.clock,
        transport=httpx.MockTransport(router.async_handler),
        **kwargs,
    )


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
