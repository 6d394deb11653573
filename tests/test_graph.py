"""Dependency graphs: cycles, ready and blocked issues (pure functions, no I/O)."""

from __future__ import annotations

from tracker_links._graph import blocked, find_cycles, issues_of, natural_key, ready


def test_natural_key_orders_issue_numbers() -> None:
    keys = ["P-10", "P-2", "A-1", "weird"]
    assert sorted(keys, key=natural_key) == ["A-1", "P-2", "P-10", "weird"]


def test_find_cycles_knots_and_long_chains() -> None:
    graph = {f"A-{i}": {f"A-{i + 1}"} for i in range(1, 5000)}  # deep: no recursion limit
    graph["A-5000"] = {"A-1"}
    graph["B-1"] = {"B-2", "B-3"}
    graph["B-2"] = {"B-1"}
    graph["B-3"] = {"B-1"}
    graph["C-1"] = {"C-2"}
    cycles = find_cycles(graph)
    assert [(path[0], len(path), size) for path, size in cycles] == [
        ("A-1", 5001, 5000),
        ("B-1", 3, 3),
    ]
    assert cycles[1][0] == ["B-1", "B-2", "B-1"]


def test_find_cycles_none_and_the_shortest_loop_of_a_knot() -> None:
    assert find_cycles({}) == []
    assert find_cycles({"A-1": {"A-2"}, "A-2": {"A-3"}}) == []
    # A-1 -> A-2 -> A-3 -> A-1 and the shortcut A-1 -> A-3: the loop found is the short one.
    graph = {"A-1": {"A-2", "A-3"}, "A-2": {"A-3"}, "A-3": {"A-1"}}
    assert find_cycles(graph) == [(["A-1", "A-3", "A-1"], 3)]


GRAPH = {
    "P-1": {"P-2", "P-3"},  # P-1 depends on P-2 and P-3
    "P-2": {"P-4"},
    "P-5": set(),
}


def test_issues_of_counts_both_ends() -> None:
    assert issues_of(GRAPH) == ["P-1", "P-2", "P-3", "P-4", "P-5"]


def test_ready_and_blocked_with_nothing_closed() -> None:
    assert ready(GRAPH) == ["P-3", "P-4", "P-5"]
    assert blocked(GRAPH) == {"P-1": ["P-2", "P-3"], "P-2": ["P-4"]}


def test_ready_and_blocked_as_issues_close() -> None:
    closed = {"P-4", "P-3"}
    assert ready(GRAPH, closed) == ["P-2", "P-5"]
    assert blocked(GRAPH, closed) == {"P-1": ["P-2"]}
    closed = {"P-2", "P-3", "P-4"}
    assert ready(GRAPH, closed) == ["P-1", "P-5"]
    assert blocked(GRAPH, closed) == {}


def test_a_cycle_is_blocked_never_ready() -> None:
    graph = {"C-1": {"C-2"}, "C-2": {"C-1"}}
    assert ready(graph) == []
    assert blocked(graph) == {"C-1": ["C-2"], "C-2": ["C-1"]}
