"""The data model: Relationship, Direction, Link.relationship, LinkSpec, register_link_type."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tracker_links import (
    Direction,
    InvalidInputError,
    IssueRef,
    Link,
    LinkSpec,
    LinkType,
    Relationship,
    StatusRef,
    TrackerError,
    UserRef,
    _models,
    register_link_type,
)
from tracker_links._converter import structure_link, structure_links

PAYLOADS = Path(__file__).parent / "payloads"

API_STRINGS = {
    "relates",
    "depends on",
    "is dependent by",
    "is subtask for",
    "is parent task for",
    "duplicates",
    "is duplicated by",
    "is epic of",
    "has epic",
    "clone",
    "original",
}

# ../shared/tracker-api.md section 8: (type.id, direction) -> relationship of the requested issue.
TABLE = [
    ("relates", "outward", "relates"),
    ("relates", "inward", "relates"),
    ("subtask", "outward", "is parent task for"),
    ("subtask", "inward", "is subtask for"),
    ("depends", "outward", "depends on"),
    ("depends", "inward", "is dependent by"),
    ("duplicates", "outward", "duplicates"),
    ("duplicates", "inward", "is duplicated by"),
    ("epic", "outward", "is epic of"),
    ("epic", "inward", "has epic"),
    ("clone", "outward", "clone"),
    ("clone", "inward", "original"),
]


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def link_with(type_id: str, direction: str, inward: str = "in", outward: str = "out") -> Link:
    data = load("link_create.json")
    data["type"] = {"id": type_id, "inward": inward, "outward": outward}
    data["direction"] = direction
    return structure_link(data)


@pytest.fixture
def restore_link_types() -> Iterator[None]:
    """register_link_type changes process-wide tables: put them back after the test."""
    saved = dict(_models._RELATIONSHIP_OF), dict(_models._TYPE_OF)
    yield
    _models._RELATIONSHIP_OF.clear()
    _models._RELATIONSHIP_OF.update(saved[0])
    _models._TYPE_OF.clear()
    _models._TYPE_OF.update(saved[1])


# --- Relationship and Direction --------------------------------------------------------------


def test_relationship_values_are_exactly_the_eleven_api_strings() -> None:
    assert len(Relationship) == 11
    assert {r.value for r in Relationship} == API_STRINGS


def test_relationship_lookup_by_api_string() -> None:
    for text in API_STRINGS:
        assert Relationship(text).value == text


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("relates", "relates"),
        ("depends on", "is dependent by"),
        ("is subtask for", "is parent task for"),
        ("duplicates", "is duplicated by"),
        ("is epic of", "has epic"),
    ],
)
def test_relationship_inverse_pairs(a: str, b: str) -> None:
    assert Relationship(a).inverse is Relationship(b)
    assert Relationship(b).inverse is Relationship(a)


def test_inverse_is_an_involution() -> None:
    for r in Relationship:
        assert r.inverse.inverse is r


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Relationship.HAS_EPIC, Relationship.HAS_EPIC),
        ("depends on", Relationship.DEPENDS_ON),
        ("  is dependent by ", Relationship.IS_DEPENDENT_BY),
        ("Depends On", Relationship.DEPENDS_ON),
        ("DEPENDS_ON", Relationship.DEPENDS_ON),
        ("is_subtask_for", Relationship.IS_SUBTASK_FOR),
        ("relates", Relationship.RELATES),
    ],
)
def test_relationship_parse_accepts(value: Relationship | str, expected: Relationship) -> None:
    assert Relationship.parse(value) is expected


@pytest.mark.parametrize("value", ["blocks", "", "depends", "depends  on", "cloned", 3, None])
def test_relationship_parse_rejects_naming_value_and_choices(value: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        Relationship.parse(value)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert repr(value) in message
    for text in API_STRINGS:
        assert repr(text) in message


def test_direction_values() -> None:
    assert {d.value for d in Direction} == {"inward", "outward"}
    assert Direction("inward") is Direction.INWARD
    assert Direction("outward") is Direction.OUTWARD


# --- Link.relationship -----------------------------------------------------------------------


@pytest.mark.parametrize(("type_id", "direction", "expected"), TABLE)
def test_link_relationship_table(type_id: str, direction: str, expected: str) -> None:
    assert link_with(type_id, direction).relationship is Relationship(expected)


@pytest.mark.parametrize(("type_id", "direction", "expected"), TABLE)
def test_link_relationship_ignores_localized_and_misleading_labels(
    type_id: str, direction: str, expected: str
) -> None:
    russian = link_with(type_id, direction, inward="Подзадача", outward="Родительская задача")
    # Labels that claim the opposite relationship must not matter either.
    lying = link_with(type_id, direction, inward="depends on", outward="is dependent by")
    assert russian.relationship is Relationship(expected)
    assert lying.relationship is Relationship(expected)


def test_link_relationship_of_the_seed_payloads() -> None:
    created = structure_link(load("link_create.json"))
    listed = structure_links(load("links_get.json"))
    assert created.relationship is Relationship.RELATES  # relates came back "inward"
    assert listed[0].relationship is Relationship.IS_PARENT_TASK_FOR  # "Parent issue"


def test_unknown_link_type_is_kept_with_no_relationship() -> None:
    link = link_with("x-cloned", "outward")
    assert link.type.id == "x-cloned"
    assert link.relationship is None
    assert link_with("my-custom-type", "inward").relationship is None


def test_relationship_type_id_and_direction_agree_with_the_table() -> None:
    for type_id, direction, expected in TABLE:
        rel = Relationship(expected)
        assert link_with(rel.type_id, rel.direction.value).relationship is rel
        if type_id != "relates":
            assert (rel.type_id, rel.direction.value) == (type_id, direction)


# --- frozen and slotted ----------------------------------------------------------------------


INSTANCES = [
    Link(1, LinkType("relates"), Direction.OUTWARD, IssueRef(key="A-2")),
    LinkType("relates"),
    IssueRef(key="A-1"),
    UserRef(id="1"),
    StatusRef(key="open"),
    LinkSpec("A-1", "A-2", "relates"),
]


@pytest.mark.parametrize("obj", INSTANCES, ids=lambda o: type(o).__name__)
def test_models_are_frozen_and_slotted_attrs_classes(obj: object) -> None:
    cls = type(obj)
    assert attrs.has(cls)
    assert "__slots__" in cls.__dict__
    assert not hasattr(obj, "__dict__")
    field = attrs.fields(cls)[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(obj, field, "x")
    with pytest.raises(AttributeError):
        obj.surprise = 1  # type: ignore[attr-defined]


def test_model_instances_reject_assignment_and_new_attributes() -> None:
    link = structure_link(load("link_create.json"))
    spec = LinkSpec("A-1", "A-2", "relates")
    for obj, name in [
        (link, "id"),
        (link.type, "id"),
        (link.target, "key"),
        (link.created_by, "display"),
        (spec, "target"),
    ]:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(obj, name, "x")
    with pytest.raises(AttributeError):
        link.surprise = 1  # type: ignore[attr-defined]
    assert not hasattr(link, "__dict__")


def test_optional_fields_default_to_none() -> None:
    assert LinkType("relates") == LinkType("relates", None, None, None)
    assert IssueRef() == IssueRef(None, None, None, None)
    assert UserRef() == UserRef(None, None, None)
    assert StatusRef() == StatusRef(None, None, None, None)
    link = Link(1, LinkType("relates"), Direction.OUTWARD, IssueRef(key="A-2"))
    for name in (
        "url",
        "created_by",
        "updated_by",
        "created_at",
        "updated_at",
        "assignee",
        "status",
    ):
        assert getattr(link, name) is None


def test_models_compare_and_hash_by_value() -> None:
    a = structure_link(load("link_create.json"))
    b = structure_link(load("link_create.json"))
    assert a == b
    assert hash(a) == hash(b)
    assert LinkSpec("A-1", "A-2", "relates") == LinkSpec("A-1", "A-2", Relationship.RELATES)


# --- LinkSpec validation ---------------------------------------------------------------------

VALID_KEYS = ["QUEUE-123", "A-1", "MY_Q2-10", "TEST-1000000", "4ff3e8dae4b0e2ac27f6eb43"]
INVALID_KEYS: list[Any] = [
    "",
    "test-1",
    "Test-1",
    "TEST-0",
    "TEST-01",
    "TEST-1/../x",
    "TEST-1?x",
    "TEST-1#x",
    "TEST 1",
    " TEST-1",
    "TEST-1 ",
    "TEST-1\n",
    "TEST-",
    "TEST",
    "-1",
    "1TEST-1",
    "TEST-1-2",
    "../TEST-1",
    "4ff3e8dae4b0e2ac27f6eb4",  # 23 hex digits
    "4ff3e8dae4b0e2ac27f6eb43a",  # 25
    "4ff3e8dae4b0e2ac27f6eb4g",  # not hex
    None,
    123,
]


@pytest.mark.parametrize("key", VALID_KEYS)
def test_linkspec_accepts_keys_and_hex_ids(key: str) -> None:
    as_source = LinkSpec(key, "OTHER-1", "depends on")
    as_target = LinkSpec("OTHER-1", key, "depends on")
    assert as_source.source == key
    assert as_target.target == key
    assert as_source.relationship is Relationship.DEPENDS_ON


@pytest.mark.parametrize("key", INVALID_KEYS)
@pytest.mark.parametrize("position", ["source", "target"])
def test_linkspec_rejects_bad_keys_naming_the_value_and_the_valid_forms(
    key: Any, position: str
) -> None:
    args = [key, "OTHER-1"] if position == "source" else ["OTHER-1", key]
    with pytest.raises(InvalidInputError) as info:
        LinkSpec(args[0], args[1], "relates")
    exc = info.value
    assert isinstance(exc, ValueError)
    assert isinstance(exc, TrackerError)
    assert repr(key) in str(exc)
    assert "QUEUE-123" in str(exc)
    assert "24-hex" in str(exc)
    assert exc.status_code is None


def test_linkspec_rejects_a_self_link() -> None:
    with pytest.raises(InvalidInputError, match="TEST-1") as info:
        LinkSpec("TEST-1", "TEST-1", "relates")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", ["blocks", "DEPENDS", "", "is blocked by"])
def test_linkspec_rejects_unknown_relationship_naming_it_and_the_choices(bad: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        LinkSpec("A-1", "A-2", bad)
    assert isinstance(info.value, ValueError)
    assert repr(bad) in str(info.value)
    for text in API_STRINGS:
        assert repr(text) in str(info.value)


def test_linkspec_relationship_accepts_enum_and_string() -> None:
    for rel in Relationship:
        assert LinkSpec("A-1", "B-2", rel).relationship is rel
        assert LinkSpec("A-1", "B-2", rel.value).relationship is rel


# --- LinkSpec.canonical ----------------------------------------------------------------------


@pytest.mark.parametrize("rel", list(Relationship))
def test_canonical_is_the_same_from_either_side(rel: Relationship) -> None:
    assert LinkSpec("A-1", "B-2", rel).canonical == LinkSpec("B-2", "A-1", rel.inverse).canonical


def test_canonical_examples_from_the_contract() -> None:
    assert (
        LinkSpec("A-1", "B-2", "depends on").canonical
        == LinkSpec("B-2", "A-1", "is dependent by").canonical
    )
    assert (
        LinkSpec("A-1", "B-2", "relates").canonical == LinkSpec("B-2", "A-1", "relates").canonical
    )


def test_canonical_differs_for_different_links() -> None:
    # From one ordered pair, the eleven relationships are eleven different links.
    assert len({LinkSpec("A-1", "B-2", rel).canonical for rel in Relationship}) == 11
    assert (
        LinkSpec("A-1", "B-2", "depends on").canonical
        != LinkSpec("B-2", "A-1", "depends on").canonical
    )
    assert (
        LinkSpec("A-1", "B-2", "depends on").canonical
        != LinkSpec("A-1", "C-3", "depends on").canonical
    )
    assert (
        LinkSpec("A-1", "B-2", "duplicates").canonical
        != LinkSpec("A-1", "B-2", "relates").canonical
    )


def test_canonical_is_hashable_for_deduplication() -> None:
    specs = [
        LinkSpec("A-1", "B-2", "depends on"),
        LinkSpec("B-2", "A-1", "is dependent by"),
        LinkSpec("A-1", "B-2", "relates"),
        LinkSpec("B-2", "A-1", "relates"),
        LinkSpec("A-1", "B-2", "has epic"),
    ]
    assert len({s.canonical for s in specs}) == 3


# --- LinkSpec helpers ------------------------------------------------------------------------


def test_linkspec_matches_the_link_read_from_its_source() -> None:
    listed = structure_links(load("links_get.json"))[0]  # JUNE-2 is parent task for TREK-9844
    assert LinkSpec("JUNE-2", "TREK-9844", "is parent task for").matches(listed)
    # By the target's 24-hex id too.
    assert LinkSpec("JUNE-2", "593cd211ef7e8a3312345678", "is parent task for").matches(listed)
    assert not LinkSpec("JUNE-2", "TREK-9844", "is subtask for").matches(listed)
    assert not LinkSpec("JUNE-2", "TREK-9845", "is parent task for").matches(listed)


def test_linkspec_coerce_and_as_dict() -> None:
    spec = LinkSpec("A-1", "B-2", "depends on")
    assert LinkSpec.coerce(spec) is spec
    assert LinkSpec.coerce(("A-1", "B-2", "depends on")) == spec
    assert spec.as_dict() == {"source": "A-1", "relationship": "depends on", "target": "B-2"}
    with pytest.raises(InvalidInputError):
        LinkSpec.coerce(("A-1", "B-2"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        LinkSpec.coerce(("A-1", "a-2", "relates"))


# --- register_link_type ----------------------------------------------------------------------


@pytest.mark.usefixtures("restore_link_types")
def test_register_link_type_teaches_a_new_type_id() -> None:
    assert link_with("blocker", "outward").relationship is None
    register_link_type(
        "blocker", outward=Relationship.DEPENDS_ON, inward=Relationship.IS_DEPENDENT_BY
    )
    assert link_with("blocker", "outward").relationship is Relationship.DEPENDS_ON
    assert link_with("blocker", "inward").relationship is Relationship.IS_DEPENDENT_BY
    # The built-in id keeps working, and the pair still has one canonical key.
    assert link_with("depends", "outward").relationship is Relationship.DEPENDS_ON
    assert (
        LinkSpec("A-1", "B-2", "depends on").canonical
        == LinkSpec("B-2", "A-1", "is dependent by").canonical
    )


@pytest.mark.usefixtures("restore_link_types")
def test_register_link_type_symmetric() -> None:
    register_link_type("related", outward=Relationship.RELATES, inward=Relationship.RELATES)
    assert link_with("related", "outward").relationship is Relationship.RELATES
    assert link_with("related", "inward").relationship is Relationship.RELATES
    assert (
        LinkSpec("A-1", "B-2", "relates").canonical == LinkSpec("B-2", "A-1", "relates").canonical
    )


def test_a_hex_id_target_matches_in_any_case() -> None:
    from tracker_links import Direction, IssueRef, Link, LinkSpec, LinkType

    link = Link(
        id=1,
        type=LinkType("depends"),
        direction=Direction.OUTWARD,
        target=IssueRef(key="TEST-2", id="593cd211ef7e8a332414f2a7"),
    )
    assert LinkSpec("TEST-1", "593CD211EF7E8A332414F2A7", "depends on").matches(link)
    assert LinkSpec("TEST-1", "TEST-2", "depends on").matches(link)
    assert not LinkSpec("TEST-1", "TEST-3", "depends on").matches(link)
