"""A fake Yandex Tracker for tests and benchmarks: in process (httpx) or over real loopback.

::

    from tracker_links.testing import FakeTracker

    fake = FakeTracker(queues={"TEST": 100}, seed=0, fail_rate=0.1)
    async with fake.client() as client:               # in process, asyncio or trio
        await client.links.create("TEST-1", "TEST-2", "depends on")
    assert fake.find_links("TEST-1", "TEST-2", "depends on")

    with fake.serve() as base_url:                    # real HTTP on 127.0.0.1 (extra "fake")
        ...

The pytest plugin (installed with the package) provides the ``fake_tracker`` and
``fake_tracker_url`` fixtures. The names below are imported on first use, so that loading the
plugin imports nothing heavy.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_names as _lazy_names

if TYPE_CHECKING:
    from ._context import Clock
    from ._fake import FakeTracker, TrackerState
    from ._limits import (
        FixedWindow,
        InFlightCap,
        Limit,
        Schedule,
        SlidingWindow,
        TokenBucket,
        parse_limit,
    )
    from ._payloads import API_URL, Reply
    from ._pipeline import Sleep
    from ._stats import FakeStats
    from ._store import FakeIssue, StoredLink
    from ._transport import FakeTransport

__all__ = [
    "API_URL",
    "Clock",
    "FakeIssue",
    "FakeStats",
    "FakeTracker",
    "FakeTransport",
    "FixedWindow",
    "InFlightCap",
    "Limit",
    "Reply",
    "Schedule",
    "Sleep",
    "SlidingWindow",
    "StoredLink",
    "TokenBucket",
    "TrackerState",
    "parse_limit",
]

_HOME = {
    "Clock": "_context",
    "FakeTracker": "_fake",
    "TrackerState": "_fake",
    **dict.fromkeys(
        (
            "FixedWindow",
            "InFlightCap",
            "Limit",
            "Schedule",
            "SlidingWindow",
            "TokenBucket",
            "parse_limit",
        ),
        "_limits",
    ),
    "API_URL": "_payloads",
    "Reply": "_payloads",
    "Sleep": "_pipeline",
    "FakeStats": "_stats",
    "FakeIssue": "_store",
    "StoredLink": "_store",
    "FakeTransport": "_transport",
}


__getattr__, __dir__ = _lazy_names(__name__, globals(), _HOME, __all__)
