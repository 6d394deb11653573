"""The README's examples run: a snippet a user copies must work as printed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.anyio


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 3


async def test_the_fake_tracker_example_test_passes() -> None:
    (block,) = [b for b in python_blocks() if "async def test_" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_")]
    assert tests
    for test in tests:
        await test()


async def test_the_quick_start_runs_against_the_fake() -> None:
    """The quick start, with its client pointed at the fake and ``anyio.run`` left out."""
    from tracker_links import TrackerClient
    from tracker_links.testing import FakeTracker

    (block,) = [b for b in python_blocks() if "Quick" in b or "async def main" in b][:1]
    fake = FakeTracker(queues={"PROJ": 20})

    def client_on_fake(*args: Any, **kwargs: Any) -> TrackerClient:
        return TrackerClient(
            *args, **kwargs, base_url="http://localhost", transport=fake.transport()
        )

    source = block.replace("anyio.run(main)", "")
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)
    namespace["TrackerClient"] = client_on_fake
    await namespace["main"]()
    assert fake.stats.count("POST", 201) == 1
    assert fake.stats.count("DELETE", 204) == 1
