"""The set-up the latency benchmarks share (``remove``, ``sync``): the fake Tracker in its own
process at ``LATENCY`` a request, a client of ``CONCURRENCY`` slots, a CPU and wall timer."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from tracker_links import TrackerClient

from ._common import ORG_ID, QUEUE, TOKEN
from ._harness import FakeServer

__all__ = ["CONCURRENCY", "LATENCY", "TARGET", "Timed", "client", "server"]

LATENCY = 0.02
CONCURRENCY = 64
TARGET = 1.3  # each measurement within this factor of its yardstick


@contextlib.contextmanager
def server(issues: int) -> Iterator[str]:
    """A fake server process with ``issues`` issues in ``QUEUE``; its URL."""
    fake = FakeServer({"queues": {QUEUE: issues}, "knobs": {"latency": LATENCY}})
    try:
        yield fake.url
    finally:
        fake.stop()


def client(url: str) -> TrackerClient:
    return TrackerClient(TOKEN, org_id=ORG_ID, base_url=url, max_concurrency=CONCURRENCY)


class Timed:
    """``with Timed() as t:``, then ``t.wall`` and ``t.cpu`` (seconds)."""

    def __enter__(self) -> Timed:
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
