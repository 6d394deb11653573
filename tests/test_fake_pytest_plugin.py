"""The pytest plugin: nothing heavy at start-up, a word on the extra, under both async plugins."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tracker_links.testing import FakeTracker

HEADERS = {"Authorization": "OAuth t", "X-Org-ID": "1"}
HEAVY = ("httpx", "cattrs", "attrs", "anyio", "tracker_links._client", "tracker_links._models")


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    out = run_python(
        f"""
        import sys
        import tracker_links.testing._pytest_plugin
        print([m for m in {HEAVY!r} if m in sys.modules])
        import tracker_links.testing
        print([m for m in {HEAVY!r} if m in sys.modules])
        from tracker_links.testing import FakeTracker   # first use imports the fake
        print("attrs" in sys.modules and "tracker_links._models" in sys.modules)
        """
    )
    assert out.split("\n")[:3] == ["[]", "[]", "True"]


def test_lazy_packages_still_resolve_every_public_name() -> None:
    import tracker_links
    import tracker_links.testing

    for package in (tracker_links, tracker_links.testing):
        for name in package.__all__:
            assert getattr(package, name) is not None
        assert set(package.__all__) <= set(dir(package))
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            package.nope  # noqa: B018


def pytest_in(
    tmp_path: Path, files: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_fake_tracker_url_without_uvicorn_says_what_to_install(tmp_path: Path) -> None:
    done = pytest_in(
        tmp_path,
        {
            "conftest.py": "import sys\nsys.modules['uvicorn'] = None  # as if not installed\n",
            "test_url.py": "def test_it(fake_tracker_url):\n    pass\n",
        },
    )
    assert done.returncode == 1, done.stdout
    assert "pip install 'tracker-links[fake]'" in done.stdout
    assert "ModuleNotFoundError" not in done.stdout
    assert "Traceback" not in done.stdout


def test_the_plugin_can_be_switched_off(tmp_path: Path) -> None:
    files = {"test_fixture.py": "def test_it(fake_tracker):\n    assert fake_tracker.issues\n"}
    assert pytest_in(tmp_path, files).returncode == 0
    off = pytest_in(tmp_path, files, "-p", "no:tracker_links")
    assert off.returncode == 1
    assert "fixture 'fake_tracker' not found" in off.stdout


# --- under pytest-asyncio (strict mode: only tests marked asyncio are its own) --------------


@pytest.mark.asyncio
async def test_fixtures_under_pytest_asyncio(
    fake_tracker: FakeTracker, fake_tracker_url: str
) -> None:
    async with fake_tracker.client() as client:
        await client.links.create("TEST-1", "TEST-2", "depends on")
    async with httpx.AsyncClient(base_url=fake_tracker_url, headers=HEADERS) as http:
        r = await http.get("/v2/issues/TEST-2/links")
    assert r.status_code == 200
    assert [x["object"]["key"] for x in r.json()] == ["TEST-1"]


@pytest.mark.anyio
async def test_fixtures_under_anyio(fake_tracker: FakeTracker, fake_tracker_url: str) -> None:
    async with fake_tracker.client(base_url=fake_tracker_url, transport=None) as client:
        await client.links.create("TEST-3", "TEST-4", "relates")
    assert fake_tracker.has_link("TEST-4", "TEST-3", "relates")
