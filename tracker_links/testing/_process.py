"""The fake Tracker in a process of its own, so that it gets a core to itself.

``with FakeProcess(latency=0.02, queues={"DEMO": 100}) as fake:`` starts a ``FakeTracker`` with
those settings in a child process (``spawn``), serving over loopback; ``fake.url`` is its base
URL and ``fake.stats()`` reads its counters (``FakeStats.as_dict()`` plus ``"links"``, the
number of links stored). Leaving the block stops it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from typing import Any

__all__ = ["FakeProcess"]


def _child(conn: Any, settings: dict[str, Any]) -> None:
    """Serve the fake; send its URL, then answer ``"stats"`` until ``"stop"`` or EOF."""
    from tracker_links.testing import FakeTracker

    fake = FakeTracker(**settings)
    with fake.serve() as base_url:
        conn.send(base_url)
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError, KeyboardInterrupt):
                break
            if message != "stats":
                break
            conn.send({**fake.stats.as_dict(), "links": len(fake.links)})


class FakeProcess:
    """A ``FakeTracker(**settings)`` served from a child process (a context manager)."""

    def __init__(self, *, start_timeout: float = 60.0, **settings: Any) -> None:
        self._settings = settings
        self._timeout = start_timeout
        self._conn: Any = None
        self._process: Any = None
        self.url = ""

    def __enter__(self) -> FakeProcess:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._conn = parent
        self._process = ctx.Process(
            target=_child, args=(child, self._settings), name="fake-tracker", daemon=True
        )
        self._process.start()
        child.close()
        try:
            if not parent.poll(self._timeout):
                raise RuntimeError(f"the fake Tracker did not start within {self._timeout:g} s")
            try:
                self.url = parent.recv()
            except EOFError:
                raise RuntimeError("the fake Tracker could not start") from None
        except BaseException:
            self.__exit__()
            raise
        return self

    def stats(self) -> dict[str, Any]:
        """The fake's counters now (``FakeStats.as_dict()`` and ``"links"``)."""
        self._conn.send("stats")
        data: dict[str, Any] = self._conn.recv()
        return data

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send("stop")
        self._conn.close()
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
