"""The fake's modules: one job each, imports only downward (no cycle, TYPE_CHECKING included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import tracker_links.testing
from tracker_links.testing import FakeStats, FakeTracker, FixedWindow

TESTING = Path(tracker_links.testing.__file__).parent


def _imports(path: Path) -> set[str]:
    """The sibling modules of ``tracker_links.testing`` that ``path`` imports (any level)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("tracker_links.testing."):
                found.add(node.module.split(".")[2])
    return found


def test_no_import_cycle_among_the_fakes_modules() -> None:
    graph = {p.stem: _imports(p) for p in TESTING.glob("*.py") if p.stem != "__init__"}
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            assert state.get(nxt) != "open", "import cycle: " + " -> ".join([*trail, nxt])
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert "_state" not in graph  # the old all-in-one module is gone
    assert graph["_transport"] <= {"_payloads"}  # the ways in know the reply, not the fake
    assert graph["_app"] <= {"_payloads"}


def test_no_module_of_the_fake_is_too_long() -> None:
    for path in TESTING.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 500, path.name


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("latency", 0.5),
        ("jitter", 0.1),
        ("rate_limit", 50.0),
        ("rate_burst", 7),
        ("retry_after", None),
        ("max_inflight", 3),
        ("limit", FixedWindow(9)),
        ("fail_rate", 0.2),
        ("drop_rate", 0.1),
        ("drop_after_write", 0.9),
        ("list_lag", 1.5),
        ("duplicate_status", 409),
        ("token", "tok"),
        ("users", {"a": "alice"}),
        ("forbidden_queues", frozenset({"X"})),
        ("import_forbidden", True),
        ("clone_on_create", True),
        ("malformed_search", 0.3),
        ("redirect_status", 307),
        ("seed", 5),
    ],
)
def test_every_knob_is_a_public_attribute_changed_between_requests(
    knob: str, value: object
) -> None:
    fake = FakeTracker(queues={"TEST": 1})
    setattr(fake, knob, value)
    assert getattr(fake, knob) == value
    # the fake answers with the new setting (no part is left holding a stale copy)
    fake.handle("GET", "/v2/linktypes", "", {"authorization": "OAuth tok", "x-org-id": "1"}, b"")


def test_every_route_counted_in_by_route_is_documented() -> None:
    source = (TESTING / "_routes.py").read_text()
    routes = set(re.findall(r'by_route\[\(method, "([a-z.]+)"\)\]', source))
    assert len(routes) >= 10
    assert FakeStats.__doc__ is not None
    documented = set(re.findall(r'``"([a-z.]+)"``', FakeStats.__doc__))
    assert routes <= documented, routes - documented


def test_the_readme_layout_names_every_module_of_the_package() -> None:
    package = TESTING.parent
    readme = (package.parent / "README.md").read_text(encoding="utf-8")
    development = readme.partition("## Development")[2]
    modules = [p for p in package.rglob("*.py") if p.stem != "__init__" or p.parent == package]
    missing = [
        str(p.relative_to(package))
        for p in modules
        if f"{p.name}" not in development and p.parent.name != "commands"
    ]
    assert not missing, missing
    commands = sorted(p.stem for p in (package / "_cli" / "commands").glob("[!_]*.py"))
    assert commands
    listed = development.partition("commands/")[2].partition("testing/")[0]
    assert [c for c in commands if c not in listed] == []
