"""The public API: the exact names, and their types as a user's type checker sees them."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tracker_links

# The subclasses of TrackerError.
ERRORS = (
    "AuthError",
    "NotFoundError",
    "ConflictError",
    "InvalidInputError",
    "RateLimitError",
    "ServerError",
    "TransportError",
)
# Issue 3's list, plus what the package exports besides (the bulk results, register_link_type,
# __version__). Later issues rely on these exact names.
ISSUE_3 = {
    "TrackerClient",
    "LinkService",
    "Link",
    "LinkType",
    "IssueRef",
    "UserRef",
    "StatusRef",
    "Relationship",
    "Direction",
    "LinkSpec",
    "RetryPolicy",
    "TrackerError",
    *ERRORS,
}
EXPECTED = ISSUE_3 | {
    "BulkReport",
    "IssueLinks",
    "LinksReport",
    "Outcome",
    "OutcomeStatus",
    "Plan",
    "register_link_type",
    "__version__",
    "FileQuota",  # issue 16: a quota shared by processes
    "RedisQuota",
}


def test_all_is_sorted_and_exact() -> None:
    names = list(tracker_links.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert set(names) == EXPECTED


def test_every_name_resolves() -> None:
    for name in tracker_links.__all__:
        assert getattr(tracker_links, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from tracker_links import *", namespace)
    assert set(namespace) >= EXPECTED


def test_star_import_brings_nothing_private() -> None:
    namespace: dict[str, object] = {}
    exec("from tracker_links import *", namespace)
    public = {n for n in namespace if n != "__builtins__"}
    assert public == EXPECTED


def test_version() -> None:
    version = tracker_links.__version__
    assert isinstance(version, str)
    assert version.count(".") >= 2


def test_error_tree() -> None:
    e = tracker_links
    for name in ERRORS:
        assert issubclass(getattr(e, name), e.TrackerError), name
    assert issubclass(e.TrackerError, Exception)
    assert issubclass(e.InvalidInputError, ValueError)


def test_client_signature_matches_the_contract() -> None:
    params = inspect.signature(tracker_links.TrackerClient).parameters
    assert next(iter(params)) == "token"
    assert params["token"].default is None
    expected_defaults = {
        "iam_token": None,
        "org_id": None,
        "cloud_org_id": None,
        "base_url": "https://api.tracker.yandex.net",
        "rate_limit": None,
        "max_concurrency": 16,
        "retry": None,
        "timeout": 30.0,
        "http_client": None,
    }
    for name, default in expected_defaults.items():
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[name].default == default, name
    create = inspect.signature(tracker_links.LinkService.create).parameters
    assert list(create)[:4] == ["self", "issue", "target", "relationship"]
    assert create["exist_ok"].kind is inspect.Parameter.KEYWORD_ONLY
    assert create["exist_ok"].default is False


def test_package_is_typed() -> None:
    assert (Path(tracker_links.__file__).parent / "py.typed").is_file()


SNIPPET = """
from __future__ import annotations

from datetime import datetime

from typing_extensions import assert_type

from tracker_links import (
    AuthError,
    ConflictError,
    Direction,
    InvalidInputError,
    IssueLinks,
    IssueRef,
    Link,
    LinkService,
    LinkSpec,
    LinkType,
    Outcome,
    RateLimitError,
    Relationship,
    RetryPolicy,
    StatusRef,
    TrackerClient,
    TrackerError,
    UserRef,
)


async def main() -> None:
    retry = RetryPolicy(attempts=3, deadline=10.0)
    async with TrackerClient("t", org_id="1", retry=retry, max_concurrency=4) as client:
        assert_type(client, TrackerClient)
        assert_type(client.links, LinkService)
        links = await client.links.get("PROJ-1")
        assert_type(links, list[Link])
        link = await client.links.create("PROJ-1", "PROJ-2", Relationship.DEPENDS_ON)
        assert_type(link, Link)
        link = await client.links.create("PROJ-1", "PROJ-2", "depends on", exist_ok=True)
        assert_type(link.id, int | str)
        assert_type(link.url, str | None)
        assert_type(link.type, LinkType)
        assert_type(link.direction, Direction)
        assert_type(link.target, IssueRef)
        assert_type(link.created_by, UserRef | None)
        assert_type(link.created_at, datetime | None)
        assert_type(link.status, StatusRef | None)
        assert_type(link.relationship, Relationship | None)
        assert_type(await client.links.types(), list[LinkType])
        await client.links.delete("PROJ-1", link.id)
        try:
            await client.links.create("PROJ-1", "PROJ-3", "relates")
        except ConflictError as exc:
            assert_type(exc.link, Link | None)
            assert_type(exc.status_code, int | None)
            assert_type(exc.messages, tuple[str, ...])
        except RateLimitError as exc:
            assert_type(exc.retry_after, float | None)
        except (AuthError, InvalidInputError, TrackerError):
            pass
        async with client.links.create_many([("PROJ-1", "PROJ-2", "relates")]) as outcomes:
            async for outcome in outcomes:
                assert_type(outcome, Outcome)
                assert_type(outcome.repeat_of, int | None)
                assert_type(outcome.line, int | None)
                assert_type(outcome.verified_by, str | None)
        async for outcome in client.links.create_many([(LinkSpec("A-1", "A-2", "relates"), 3)]):
            assert_type(outcome.index, int)
        async with client.links.get_many(["PROJ-1"]) as items:
            async for item in items:
                assert_type(item, IssueLinks)
        async with client.links.queue_links("PROJ") as items:
            async for item in items:
                assert_type(item.links, list[Link])
        # Mistakes a type checker must catch:
        await client.links.get(123)  # type: ignore[arg-type]
        await client.links.create("PROJ-1", "PROJ-2")  # type: ignore[call-arg]
        await client.links.create("A-1", "A-2", "relates", True)  # type: ignore[call-arg]
    spec = LinkSpec("PROJ-1", "PROJ-2", "relates")
    assert_type(spec.digest, bytes)
    assert_type(spec.relationship, Relationship)
    assert_type(Relationship.RELATES.inverse, Relationship)
    assert_type(Relationship.parse("relates"), Relationship)
    spec.source = "X-1"  # type: ignore[misc]
    client2 = TrackerClient.from_env()
    assert_type(client2, TrackerClient)
    await client2.aclose()
    TrackerClient("t", "1")  # type: ignore[call-arg]
"""


def test_public_api_type_checks_under_mypy_strict(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "uses_tracker_links.py"
    path.write_text(textwrap.dedent(SNIPPET), encoding="utf-8")
    # The project's own mypy settings and cache: `make test` has just checked the package with
    # them, so only the snippet is new (about 1 s instead of 8 s from a cold cache).
    root = request.config.rootpath
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(root / "pyproject.toml"),
            "--cache-dir",
            str(root / ".mypy_cache"),
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            str(path),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_version_is_written_once() -> None:
    from importlib.metadata import version

    from tracker_links import _client, _version

    assert tracker_links.__version__ is _version.__version__
    assert version("tracker-links") == _version.__version__
    assert "version =" not in (Path(__file__).parents[1] / "pyproject.toml").read_text().split(
        "[project.optional-dependencies]"
    )[0].replace('dynamic = ["version"]', "")
    assert not hasattr(_client, "_VERSION")


def _imports_of_package() -> dict[str, set[str]]:
    """Each module of tracker_links -> the modules of tracker_links it imports (every import,
    ``TYPE_CHECKING`` ones included)."""
    import ast

    root = Path(tracker_links.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = ("tracker_links", *path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        package = name.split(".") if is_pkg else name.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                mod = ".".join([*base, *([node.module] if node.module else [])])
                if node.module:
                    deps.add(mod)
                # ``from . import _protocol`` imports a module; ``from ._x import name``, a name.
                deps.update(f"{mod}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def test_no_import_cycles_in_the_package() -> None:
    # Every module of tracker_links, the CLI and the fake (testing/) included; TYPE_CHECKING
    # imports count as imports.
    graph = _imports_of_package()
    assert "tracker_links.testing._fake" in graph
    assert any(m.startswith("tracker_links._cli.") for m in graph)

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for dep in graph[todo.pop()]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    cycles = sorted(m for m in graph if m in reachable(m))
    assert cycles == []
    # The bulk engines see the service only through their narrow interface.
    for engine in ("tracker_links._bulk_create", "tracker_links._bulk_read"):
        assert "tracker_links._service" not in reachable(engine)
        assert "tracker_links._ops" in graph[engine]
