"""Dependency graphs of issues: cycles, and which issues are ready or blocked (pure).

A graph is a mapping ``{issue: {issues it depends on}}`` (``A -> B``: A depends on B). The
functions here only read it; none does any I/O. Results are in the natural order of issue keys
(``PROJ-2`` before ``PROJ-10``), so that they are the same from one run to the next.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator, Mapping

__all__ = ["blocked", "find_cycles", "issues_of", "natural_key", "ready"]

Graph = Mapping[str, Collection[str]]


def natural_key(key: str) -> tuple[str, int, str]:
    """Sort key for issue keys: ``PROJ-2`` before ``PROJ-10``."""
    queue, _, number = key.rpartition("-")
    if queue and number.isdigit():
        return (queue, int(number), "")
    return (key, 0, key)


def issues_of(graph: Graph) -> list[str]:
    """Every issue of the graph (those that depend and those depended on), in natural order."""
    nodes: set[str] = set(graph)
    for targets in graph.values():
        nodes.update(targets)
    return sorted(nodes, key=natural_key)


def ready(graph: Graph, closed: Collection[str] = ()) -> list[str]:
    """The open issues whose dependencies are all closed (or that have none).

    ``closed`` are the issues that are done; they are never ready themselves.
    """
    return [
        issue
        for issue in issues_of(graph)
        if issue not in closed and all(dep in closed for dep in graph.get(issue, ()))
    ]


def blocked(graph: Graph, closed: Collection[str] = ()) -> dict[str, list[str]]:
    """The open issues that wait on others: each with the open issues it depends on."""
    out: dict[str, list[str]] = {}
    for issue in issues_of(graph):
        if issue in closed:
            continue
        waiting = sorted((d for d in graph.get(issue, ()) if d not in closed), key=natural_key)
        if waiting:
            out[issue] = waiting
    return out


def _groups(graph: Graph) -> list[list[str]]:
    """The strongly connected groups of more than one issue (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0

    def successors(node: str) -> Iterator[str]:
        return iter(sorted(graph.get(node, ()), key=natural_key))

    for root in sorted(graph, key=natural_key):
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work: list[tuple[str, Iterator[str]]] = [(root, successors(root))]
        while work:
            node, it = work[-1]
            descended = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, successors(nxt)))
                    descended = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if descended:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    return groups


def _shortest_loop(graph: Graph, group: list[str]) -> list[str] | None:
    """A shortest loop through the group's first issue, by breadth-first search."""
    members = set(group)
    start = min(group, key=natural_key)
    prev: dict[str, str] = {}
    queue: deque[str] = deque([start])
    last: str | None = None
    while queue and last is None:
        node = queue.popleft()
        for nxt in sorted(graph.get(node, ()), key=natural_key):
            if nxt == start:
                last = node
                break
            if nxt in members and nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    if last is None:  # cannot happen in a strongly connected group
        return None
    path = [last]
    while path[-1] != start:
        path.append(prev[path[-1]])
    path.reverse()
    path.append(start)
    return path


def find_cycles(graph: Graph) -> list[tuple[list[str], int]]:
    """Dependency cycles: for each strongly connected group of issues, one shortest loop.

    Returns ``(path, size)`` pairs, ``path`` starting and ending at the group's first key and
    ``size`` the number of issues in the group. Iterative, so deep chains are fine::

        >>> find_cycles({"A-1": {"A-2"}, "A-2": {"A-1"}, "A-3": {"A-1"}})
        [(['A-1', 'A-2', 'A-1'], 2)]
    """
    cycles: list[tuple[list[str], int]] = []
    for group in _groups(graph):
        path = _shortest_loop(graph, group)
        if path is not None:
            cycles.append((path, len(group)))
    cycles.sort(key=lambda c: natural_key(c[0][0]))
    return cycles
