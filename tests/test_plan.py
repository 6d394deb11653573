"""The pure sync plan: diff, prune rules, changes, invalid items, cycles, JSON round trip."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from tracker_links import (
    InvalidInputError,
    IssueLinks,
    Link,
    LinkSpec,
    LinkType,
    NotFoundError,
    Plan,
    Relationship,
    ServerError,
)
from tracker_links._models import Direction, IssueRef
from tracker_links._plan import PlannedDelete, Unread, make_plan

Row = tuple[int, str, str, str]  # (link id, source, relationship, target)


def views(rows: Iterable[Row], scope: Iterable[str]) -> list[IssueLinks]:
    """What the read engine yields for ``scope``: each link listed on both of its issues."""
    by_key: dict[str, list[Link]] = {key: [] for key in scope}
    for link_id, source, rel_text, target in rows:
        rel = Relationship(rel_text)
        for key, other, r in ((source, target, rel), (target, source, rel.inverse)):
            if key in by_key:
                link = Link(link_id, LinkType(r.type_id), r.direction, IssueRef(key=other))
                by_key[key].append(link)
    return [IssueLinks(key, links) for key, links in by_key.items()]


def plan_of(
    desired: Sequence[object],
    rows: Iterable[Row],
    scope: Iterable[str],
    **kwargs: object,
) -> Plan:
    scope = list(scope)
    return make_plan(desired, scope, views(rows, scope), **kwargs)  # type: ignore[arg-type]


KEYS = [f"P-{i}" for i in range(1, 9)]
ROWS: list[Row] = [
    (1, "P-1", "depends on", "P-2"),
    (2, "P-2", "is subtask for", "P-3"),
    (3, "P-4", "relates", "P-3"),
    (4, "P-5", "is dependent by", "P-6"),
]
DESIRED = [
    ("P-1", "P-2", "depends on"),
    LinkSpec("P-3", "P-2", "is parent task for"),  # row 2 in the other spelling
    ("P-3", "P-4", "relates"),
    ("P-6", "P-5", "depends on"),
]


@pytest.mark.parametrize("prune", [False, True])
def test_identity_plan_is_empty(prune: bool) -> None:
    plan = plan_of(DESIRED, ROWS, KEYS, prune=prune)
    assert plan == Plan(unchanged=4)
    assert plan.empty
    assert plan.summary() == "0 to create, 0 to delete, 4 unchanged, 0 invalid, 0 cycles"


def test_drift_is_planned_back_exactly() -> None:
    # Someone deleted link 3 and added 5 (P-7 relates P-8) and 6 (P-1 depends on P-8).
    drifted = [r for r in ROWS if r[0] != 3] + [
        (5, "P-7", "relates", "P-8"),
        (6, "P-8", "is dependent by", "P-1"),
    ]
    plan = plan_of(DESIRED, drifted, KEYS, prune=True)
    assert plan.create == (LinkSpec("P-3", "P-4", "relates"),)
    assert plan.delete == (
        PlannedDelete(LinkSpec("P-1", "P-8", "depends on"), 6),
        PlannedDelete(LinkSpec("P-7", "P-8", "relates"), 5),
    )
    assert plan.unchanged == 3
    assert [d.issue for d in plan.delete] == ["P-1", "P-7"]


def test_prune_false_deletes_nothing() -> None:
    extra = [*ROWS, (5, "P-7", "relates", "P-8")]
    plan = plan_of(DESIRED[:2], extra, KEYS)
    assert plan.delete == ()
    assert plan.create == ()
    assert plan.unchanged == 2


def test_unmanaged_and_scope_leaving_links_survive_prune() -> None:
    rows = [
        *ROWS,
        (7, "P-1", "relates", "OUT-1"),  # leaves the scope
        (8, "OUT-2", "depends on", "P-2"),  # leaves the scope
        (9, "P-7", "duplicates", "P-8"),  # unmanaged relationship
    ]
    plan = plan_of(DESIRED, rows, KEYS, relationships=["depends on", "relates"], prune=True)
    # Row 2 (subtask) is not managed either: it is kept, and its desired item is reported.
    assert plan.delete == ()
    assert [i.index for i in plan.invalid] == [1]
    assert "not managed" in plan.invalid[0].reason
    assert plan.unchanged == 3


def test_relationships_accept_either_spelling_and_text() -> None:
    rows = [(1, "P-1", "depends on", "P-2"), (2, "P-3", "relates", "P-4")]
    plan = plan_of([], rows, KEYS, relationships="is dependent by", prune=True)
    assert plan.delete == (PlannedDelete(LinkSpec("P-1", "P-2", "depends on"), 1),)
    with pytest.raises(InvalidInputError):
        plan_of([], rows, KEYS, relationships="blocks")


@pytest.mark.parametrize("prune", [False, True])
def test_a_change_deletes_only_when_pruning(prune: bool) -> None:
    rows = [(1, "P-1", "relates", "P-2")]
    plan = plan_of([("P-2", "P-1", "is dependent by")], rows, KEYS, prune=prune)
    assert plan.create == (LinkSpec("P-2", "P-1", "is dependent by"),)
    if prune:
        assert plan.delete == (PlannedDelete(LinkSpec("P-1", "P-2", "relates"), 1),)
        assert plan.changes == [(plan.delete[0], plan.create[0])]
        assert "(1 change)" in plan.summary()
    else:
        assert plan.delete == ()
        assert plan.changes == []


def test_a_change_from_an_unmanaged_relationship_creates_beside() -> None:
    rows = [(1, "P-1", "relates", "P-2")]
    plan = plan_of(
        [("P-1", "P-2", "depends on")], rows, KEYS, relationships=["depends on"], prune=True
    )
    assert plan.create == (LinkSpec("P-1", "P-2", "depends on"),)
    assert plan.delete == ()


def test_invalid_items_are_reported_and_the_rest_planned() -> None:
    desired = [
        ("P-1", "P-2", "depends on"),
        ("P-1", "P-1", "relates"),
        ("bad key", "P-2", "relates"),
        ("P-1", "P-3", "blocks"),
        42,
        ("P-1", None, "relates"),
        ("P-1", "NOPE-1", "relates"),
    ]
    current = [*views([], KEYS), IssueLinks("NOPE-1", [], NotFoundError("no such issue"))]
    plan = make_plan(desired, [*KEYS, "NOPE-1"], current)
    assert plan.create == (LinkSpec("P-1", "P-2", "depends on"),)
    assert [i.index for i in plan.invalid] == [1, 2, 3, 4, 5, 6]
    assert "two different issues" in plan.invalid[0].reason
    assert "unknown relationship" in plan.invalid[2].reason
    assert plan.invalid[3].item == "42"
    assert "NOPE-1 was not found" in plan.invalid[5].reason


def test_repeats_in_desired_are_one_link() -> None:
    desired = [("P-1", "P-2", "depends on"), ("P-2", "P-1", "is dependent by")] * 2
    plan = plan_of(desired, [], KEYS)
    assert plan.create == (LinkSpec("P-1", "P-2", "depends on"),)
    assert plan_of(desired, [(1, "P-2", "is dependent by", "P-1")], KEYS).unchanged == 1


def test_duplicate_copies_of_a_desired_link_are_pruned_to_one() -> None:
    rows = [(1, "P-1", "depends on", "P-2"), (2, "P-2", "is dependent by", "P-1")]
    plan = plan_of([("P-1", "P-2", "depends on")], rows, KEYS, prune=True)
    assert plan.unchanged == 1
    assert [d.link_id for d in plan.delete] == [2]


def test_an_unread_issue_is_reported_and_the_rest_planned() -> None:
    rows = [(1, "P-1", "relates", "P-2")]
    current = [*views(rows, ["P-1"]), IssueLinks("P-2", [], ServerError("boom", status_code=503))]
    plan = make_plan([("P-2", "P-3", "relates")], ["P-1", "P-2", "P-3"], current, prune=True)
    assert plan.unread == (Unread("P-2", "ServerError: HTTP 503: boom"),)
    # Link 1 was seen from P-1: its deletion is still safe; the create goes as a safe create.
    assert [d.link_id for d in plan.delete] == [1]
    assert plan.create == (LinkSpec("P-2", "P-3", "relates"),)
    assert "1 issues unread" in plan.summary()


def test_a_link_read_from_either_end_is_deleted_through_its_outward_issue() -> None:
    rows = [(1, "P-1", "depends on", "P-2"), (2, "P-3", "relates", "P-4")]
    for order in (KEYS, list(reversed(KEYS))):
        plan = plan_of([], rows, order, prune=True)
        assert [d.issue for d in plan.delete] == ["P-1", "P-3"]


def test_unknown_link_types_are_never_touched() -> None:
    current = [
        IssueLinks("P-1", [Link(5, LinkType("x-custom"), Direction.OUTWARD, IssueRef(key="P-2"))]),
        IssueLinks("P-2", []),
    ]
    assert make_plan([], ["P-1", "P-2"], current, prune=True).empty


def test_cycles_after_the_plan() -> None:
    rows = [
        (1, "P-1", "depends on", "P-2"),
        (2, "P-2", "is subtask for", "P-3"),  # P-3 waits for its subtask P-2
        (3, "P-5", "relates", "P-6"),
    ]
    desired = [
        ("P-1", "P-2", "depends on"),
        ("P-2", "P-3", "is subtask for"),
        ("P-2", "P-1", "is epic of"),  # closes P-1 -> P-2 -> P-1
        ("P-6", "P-5", "relates"),
        ("P-5", "P-6", "duplicates"),  # relates + duplicates: never a cycle
        ("P-6", "P-5", "duplicates"),
    ]
    plan = plan_of(desired, rows, KEYS)
    assert plan.cycles == (("P-1", "P-2", "P-1"),)
    # Deleting the link that closes a loop removes the cycle from the plan's view.
    loop = [*rows, (4, "P-2", "depends on", "P-3")]
    assert plan_of(desired[:2], loop, KEYS).cycles == (("P-2", "P-3", "P-2"),)
    assert plan_of(desired[:2], loop, KEYS, prune=True).cycles == ()


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    rows = [(1, "P-1", "relates", "P-2"), (2, "P-3", "depends on", "P-4")]
    desired = [
        ("P-2", "P-1", "depends on"),
        ("P-4", "P-3", "depends on"),
        ("P-3", "P-4", "depends on"),
        ("x", "y", "z"),
    ]
    current = [*views(rows, KEYS)]
    current.append(IssueLinks("P-9", [], ServerError("boom", status_code=500)))
    plan = make_plan(desired, [*KEYS, "P-9"], current, prune=True)
    assert all((plan.create, plan.delete, plan.invalid, plan.cycles, plan.unread))
    path = tmp_path / "plan.json"
    plan.write_json(path)
    again = Plan.read_json(path)
    assert again == plan
    assert [type(d.link_id) for d in again.delete] == [int]
    assert Plan.from_json({**plan.to_json(), "delete": [
        {"issue": "P-1", "link_id": "77", "relationship": "relates", "target": "P-2"}
    ]}).delete == (PlannedDelete(LinkSpec("P-1", "P-2", "relates"), "77"),)  # fmt: skip


def test_json_round_trip_keeps_a_create_s_history(tmp_path: Path) -> None:
    """A desired link with a history is imported by apply: a saved plan must keep it."""
    history = {"created_at": "2019-03-01T10:00:00.000+0300", "created_by": "ivanov"}
    full = {**history, "updated_at": "2020-01-02T03:04:05.006-0130", "updated_by": 42}
    desired = [
        LinkSpec("P-1", "P-2", "clone", **history),
        LinkSpec("P-3", "P-4", "depends on", **full),
    ]
    plan = make_plan(desired, KEYS, views([], KEYS))
    assert [spec.history for spec in plan.create] == [history, full]
    path = tmp_path / "plan.json"
    plan.write_json(path)
    again = Plan.read_json(path)
    assert [spec.history for spec in again.create] == [history, full]
    assert again == plan


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "not json",
        '{"format": "tracker-links plan", "version": 2}',
        '{"format": "tracker-links plan", "version": 1, "create": []}',
        '{"format": "tracker-links plan", "version": 1, "create": [{"source": "A-1"}],'
        ' "delete": [], "unchanged": 0, "invalid": [], "cycles": [], "unread": []}',
        '{"format": "tracker-links plan", "version": 1, "create": [], "delete": [{"issue": "A-1",'
        ' "link_id": "../x", "relationship": "relates", "target": "A-2"}], "unchanged": 0,'
        ' "invalid": [], "cycles": [], "unread": []}',
    ],
)
def test_read_json_rejects_what_is_not_a_plan(tmp_path: Path, text: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(InvalidInputError):
        Plan.read_json(path)


def test_a_plan_of_20k_links_is_correct() -> None:
    """Correctness at size (the speed target is measured by benchmarks/, not here)."""
    n = 20_000
    keys = [f"Q-{i}" for i in range(1, n + 2)]
    rows = [(i, f"Q-{i}", "depends on", f"Q-{i + 1}") for i in range(1, n + 1)]
    desired = [(f"Q-{i}", f"Q-{i + 1}", "depends on") for i in range(2, n + 1)]
    desired.append((f"Q-{n + 1}", "Q-1", "relates"))
    plan = plan_of(desired, rows, keys, prune=True)
    assert plan.unchanged == n - 1
    assert plan.create == (LinkSpec(f"Q-{n + 1}", "Q-1", "relates"),)
    assert plan.delete == (PlannedDelete(LinkSpec("Q-1", "Q-2", "depends on"), 1),)


def test_the_garbage_collector_is_restored_after_a_plan() -> None:
    import gc

    assert gc.isenabled()
    plan_of(DESIRED, ROWS, KEYS)
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(InvalidInputError):
            plan_of(DESIRED, ROWS, KEYS, relationships="blocks")
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(InvalidInputError):
        plan_of(DESIRED, ROWS, KEYS, relationships="blocks")
    assert gc.isenabled()
