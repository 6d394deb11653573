"""Shared fixtures: every async test runs on asyncio and on trio (anyio's pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

from .helpers import BASE, FakeTime


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ft() -> FakeTime:
    """A fake clock and sleep: nothing really waits."""
    return FakeTime()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    """respx routes for the real service's base URL."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router
