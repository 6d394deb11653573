"""JSON -> models on the real example payloads of the API pages (tests/payloads/)."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tracker_links import (
    Direction,
    IssueRef,
    Link,
    LinkType,
    Relationship,
    StatusRef,
    UserRef,
)
from tracker_links._converter import (
    parse_datetime,
    structure,
    structure_link,
    structure_links,
    unstructure,
)

PAYLOADS = Path(__file__).parent / "payloads"
HOST = "https://api.tracker.yandex.net"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def test_create_example_payload() -> None:
    link = structure_link(load("link_create.json"))
    assert link == Link(
        id=1048570,
        url=f"{HOST}/v2/issues/TEST-1/links/1048570",
        type=LinkType(
            id="relates",
            inward="relates",
            outward="relates",
            url=f"{HOST}/v2/linktypes/relates",
        ),
        direction=Direction.INWARD,
        target=IssueRef(
            key="TREK-2",
            id="4ff3e8dae4b0e2ac27f6eb43",
            display="NEW!!!",
            url=f"{HOST}/v2/issues/STARTREK-2",
        ),
        created_by=UserRef(
            id="1120000000004859", display="Ivan Ivanov", url=f"{HOST}/v2/users/1120000000004859"
        ),
        updated_by=UserRef(
            id="1120000000049224", display="Ivan Ivanov", url=f"{HOST}/v2/users/1120000000049224"
        ),
        created_at=datetime(2014, 6, 18, 12, 6, 2, 401000, tzinfo=timezone.utc),
        updated_at=datetime(2014, 6, 18, 12, 6, 2, 401000, tzinfo=timezone.utc),
    )
    # The create answer has no assignee/status: they stay None.
    assert link.assignee is None
    assert link.status is None
    assert isinstance(link.id, int)
    assert link.relationship is Relationship.RELATES


def test_get_example_payload() -> None:
    links = structure_links(load("links_get.json"))
    assert len(links) == 1
    (link,) = links
    assert link.id == 4712345
    assert link.url == f"{HOST}/v2/issues/JUNE-2/links/4712345"
    assert link.type == LinkType(
        id="subtask",
        inward="Subissue",
        outward="Parent issue",
        url=f"{HOST}/v2/linktypes/subtask",
    )
    assert link.direction is Direction.OUTWARD
    assert link.target.key == "TREK-9844"
    assert link.target.id == "593cd211ef7e8a3312345678"
    assert link.target.display == "subtask"
    assert link.target.url == f"{HOST}/v2/issues/TREK-9844"
    assert link.assignee == UserRef(
        id="1100000000000001", display="Ivan Ivanov", url=f"{HOST}/v2/users/1100000000000001"
    )
    assert link.status == StatusRef(key="open", display="Open", id="1", url=f"{HOST}/v2/statuses/1")
    assert link.created_at == datetime(2017, 6, 11, 5, 16, 1, 421000, tzinfo=timezone.utc)
    assert link.relationship is Relationship.IS_PARENT_TASK_FOR


def test_dates_are_timezone_aware_utc() -> None:
    link = structure_link(load("link_create.json"))
    for value in (link.created_at, link.updated_at):
        assert value is not None
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
        assert value.isoformat() == "2014-06-18T12:06:02.401000+00:00"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2014-06-18T12:06:02.401+0000", datetime(2014, 6, 18, 12, 6, 2, 401000, timezone.utc)),
        ("2014-06-18T12:06:02+0000", datetime(2014, 6, 18, 12, 6, 2, tzinfo=timezone.utc)),
        ("2014-06-18T12:06:02.401Z", datetime(2014, 6, 18, 12, 6, 2, 401000, timezone.utc)),
        ("2014-06-18T15:06:02.401+0300", datetime(2014, 6, 18, 12, 6, 2, 401000, timezone.utc)),
        # No offset at all: the service's dates are UTC.
        ("2014-06-18T12:06:02.401", datetime(2014, 6, 18, 12, 6, 2, 401000, timezone.utc)),
    ],
)
def test_parse_datetime(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed.tzinfo is not None
    assert parsed == expected


def test_ids_are_kept_as_served() -> None:
    data = load("link_create.json")
    data["id"] = "1048570"
    data["createdBy"]["id"] = 1120000000004859
    link = structure_link(data)
    assert link.id == "1048570"
    assert isinstance(link.id, str)
    assert link.created_by is not None
    assert link.created_by.id == 1120000000004859
    assert isinstance(link.created_by.id, int)
    listed = load("links_get.json")
    listed[0]["status"]["id"] = 1
    status = structure_links(listed)[0].status
    assert status is not None
    assert status.id == 1


def test_unknown_fields_are_ignored_at_every_level() -> None:
    data = load("links_get.json")[0]
    expected = structure_link(copy.deepcopy(data))
    data["newTopLevelField"] = {"nested": [1, 2, 3]}
    data["type"]["localizedName"] = "Подзадача"
    data["object"]["summary"] = "x"
    data["createdBy"]["cloudUid"] = "abc"
    data["assignee"]["passportUid"] = 42
    data["status"]["color"] = "green"
    assert structure_link(data) == expected


def test_optional_fields_absent_default_to_none() -> None:
    minimal = {
        "id": 1,
        "type": {"id": "depends"},
        "direction": "outward",
        "object": {"key": "A-2"},
    }
    link = structure_link(minimal)
    assert link == Link(1, LinkType("depends"), Direction.OUTWARD, IssueRef(key="A-2"))
    assert link.relationship is Relationship.DEPENDS_ON


def test_explicit_nulls_are_none() -> None:
    data = load("links_get.json")[0]
    data["assignee"] = None
    data["status"] = None
    data["updatedAt"] = None
    link = structure_link(data)
    assert link.assignee is None
    assert link.status is None
    assert link.updated_at is None


def test_unknown_link_type_is_kept() -> None:
    data = load("link_create.json")
    data["type"] = {"id": "x-cloned", "inward": "Клон", "outward": "Оригинал", "self": "x"}
    link = structure_link(data)
    assert link.type.id == "x-cloned"
    assert link.type.inward == "Клон"
    assert link.relationship is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("type"),
        lambda d: d.pop("object"),
        lambda d: d.update(direction="sideways"),
        lambda d: d.update(id=None),
        lambda d: d.update(id=1.5),
        lambda d: d.update(createdAt="yesterday"),
    ],
    ids=["no type", "no object", "bad direction", "null id", "float id", "bad date"],
)
def test_malformed_link_is_an_error(mutate: Any) -> None:
    data = load("link_create.json")
    mutate(data)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the service layer wraps it
        structure_link(data)


@pytest.mark.parametrize("data", [{}, None, "links", 3])
def test_structure_links_needs_a_list(data: Any) -> None:
    with pytest.raises(ValueError, match="array"):
        structure_links(data)


def test_structure_links_empty_and_many() -> None:
    assert structure_links([]) == []
    one = load("links_get.json")[0]
    two = copy.deepcopy(one)
    two["id"] = 4712346
    two["type"] = {"id": "depends", "inward": "Blocker", "outward": "Depends on"}
    two["direction"] = "inward"
    links = structure_links([one, two])
    assert [link.id for link in links] == [4712345, 4712346]
    assert [link.relationship for link in links] == [
        Relationship.IS_PARENT_TASK_FOR,
        Relationship.IS_DEPENDENT_BY,
    ]


def test_link_types_list() -> None:
    data = [
        {
            "self": f"{HOST}/v2/linktypes/relates",
            "id": "relates",
            "inward": "relates",
            "outward": "relates",
            "extra": True,
        },
        {"id": "subtask", "inward": "Subissue", "outward": "Parent issue"},
    ]
    assert structure(data, list[LinkType]) == [
        LinkType("relates", "relates", "relates", f"{HOST}/v2/linktypes/relates"),
        LinkType("subtask", "Subissue", "Parent issue"),
    ]


@pytest.mark.parametrize("name", ["link_create.json"])
def test_round_trip_to_the_service_shape(name: str) -> None:
    data = load(name)
    assert unstructure(structure_link(data)) == data


def test_round_trip_of_the_listed_link() -> None:
    data = load("links_get.json")
    assert [unstructure(link) for link in structure_links(data)] == data
