"""pytest fixtures for code that uses tracker-links (registered as the ``tracker_links`` plugin).

- ``fake_tracker``: a fresh :class:`~tracker_links.testing.FakeTracker` with issues
  ``TEST-1`` … ``TEST-50`` and ``seed=0``. Use ``fake_tracker.client()`` or
  ``fake_tracker.transport()`` to talk to it in process.
- ``fake_tracker_url``: that same fake served over loopback HTTP; the base URL
  (``"http://127.0.0.1:<port>"``). Needs uvicorn (``pip install 'tracker-links[fake]'``).

Change the fake's settings for one test with the ``fake_tracker`` marker, whose keyword
arguments go to the constructor::

    @pytest.mark.fake_tracker(fail_rate=0.2, queues={"PROJ": 10})
    async def test_survives_failures(fake_tracker): ...

Nothing heavy is imported (no httpx, no cattrs, nothing of the library), and no server
started, unless a test asks for these fixtures: the plugin is loaded by every pytest run of a
project that installs the package. ``pytest -p no:tracker_links`` switches it off. The fixtures
are synchronous, so they serve tests run by anyio's plugin and by pytest-asyncio alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tracker_links.testing import FakeTracker

__all__ = ["fake_tracker", "fake_tracker_url"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``fake_tracker`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "fake_tracker(**kwargs): FakeTracker constructor arguments for the fake_tracker fixture",
    )


@pytest.fixture
def fake_tracker(request: pytest.FixtureRequest) -> FakeTracker:
    """A fresh fake Tracker: ``FakeTracker(queues={"TEST": 50}, seed=0)``.

    Keyword arguments of a ``@pytest.mark.fake_tracker(...)`` marker override or extend these.
    """
    from tracker_links.testing import FakeTracker

    kwargs: dict[str, Any] = {"queues": {"TEST": 50}, "seed": 0}
    marker = request.node.get_closest_marker("fake_tracker")
    if marker is not None:
        kwargs.update(marker.kwargs)
    return FakeTracker(**kwargs)


@pytest.fixture
def fake_tracker_url(fake_tracker: FakeTracker) -> Iterator[str]:
    """The ``fake_tracker`` served over loopback HTTP: its base URL, for the test's duration.

    Needs uvicorn, the ``fake`` extra: ``pip install 'tracker-links[fake]'``.
    """
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        pytest.fail(
            "the fake_tracker_url fixture serves the fake over HTTP with uvicorn, which is not "
            "installed: pip install 'tracker-links[fake]'",
            pytrace=False,
        )
    with fake_tracker.serve() as base_url:
        yield base_url
