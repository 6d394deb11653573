"""The README's examples run: a snippet a user copies must work as printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 3


@pytest.mark.anyio
async def test_the_fake_tracker_example_test_passes() -> None:
    (block,) = [b for b in python_blocks() if "pytest.mark.anyio" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_")]
    assert tests
    for test in tests:
        await test()


def test_the_test_examples_pass_in_a_project_of_their_own(tmp_path: Path) -> None:
    """Both forms (anyio's plugin, pytest-asyncio) in a fresh project, as a user runs them."""
    blocks = [b for b in python_blocks() if "async def test_" in b]
    assert len(blocks) == 2
    assert any("pytest.mark.asyncio" in b for b in blocks)
    for i, block in enumerate(blocks):
        (tmp_path / f"test_example_{i}.py").write_text(block, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in re.findall(r"async def (test_\w+)", "".join(blocks)):
        assert re.search(rf"::{name}(\[\w+\])? PASSED", proc.stdout), proc.stdout


def test_the_quick_start_runs_as_printed_against_fake_server(tmp_path: Path) -> None:
    """The first example, unchanged, against ``tracker-links fake-server``, set up as it says."""
    block = python_blocks()[0]
    assert "TrackerClient.from_env()" in block
    script = tmp_path / "quickstart.py"
    script.write_text(block, encoding="utf-8")
    server = subprocess.Popen(
        [sys.executable, "-m", "tracker_links", "fake-server", "--port=0", "--queues=PROJ=100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:\d+", server.stdout.readline())
        assert found
        url = found.group(0)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
        env.update(TRACKER_BASE_URL=url, TRACKER_TOKEN="anything", TRACKER_ORG_ID="1")
        proc = subprocess.run(
            [sys.executable, str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "Relationship.DEPENDS_ON PROJ-7" in proc.stdout
        stats = httpx.get(f"{url}/_fake/stats").json()
    finally:
        server.terminate()
        server.communicate(timeout=30)
    counts = stats["requests"]
    assert counts.get("POST 201") == 1
    assert counts.get("DELETE 204") == 1


@pytest.mark.anyio
async def test_the_explicit_client_of_the_quick_start() -> None:
    """The explicit form builds a client that, given a transport, talks to the fake."""
    from tracker_links import TrackerClient
    from tracker_links.testing import FakeTracker

    (block,) = [b for b in python_blocks() if 'TrackerClient(token="y0_' in b]
    fake = FakeTracker(queues={"PROJ": 20})

    def client_on_fake(*args: Any, **kwargs: Any) -> TrackerClient:
        return TrackerClient(
            *args, **kwargs, base_url="http://localhost", transport=fake.transport()
        )

    namespace: dict[str, Any] = {"__name__": "readme"}
    source = block.replace("from tracker_links import TrackerClient\n", "")
    namespace["TrackerClient"] = client_on_fake
    exec(compile(source, "README.md", "exec"), namespace)
    async with namespace["client"] as client:
        await client.links.create("PROJ-12", "PROJ-7", "depends on")
    assert fake.stats.count("POST", 201) == 1


def test_the_fake_virtual_time_example_runs_in_virtual_time() -> None:
    """The fake's virtual-time example runs as printed, on trio's MockClock."""
    (block,) = [b for b in python_blocks() if "MockClock" in b]
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(block, "README.md", "exec"), namespace)
    elapsed, answered_429 = namespace["elapsed"], namespace["answered_429"]
    assert 3.9 <= elapsed < 8  # 200 creates at 50/s, in virtual seconds
    assert answered_429 <= 5
