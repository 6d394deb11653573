"""Test doubles shared by the respx-based test modules."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import httpx

from tracker_links import AuthError, ConflictError, InvalidInputError, NotFoundError, TrackerError

BASE = "https://api.tracker.yandex.net"

# The 4xx answers the client raises at once, without a retry, and the exception for each.
NOT_RETRIED: list[tuple[int, type[TrackerError]]] = [
    (400, InvalidInputError),
    (401, AuthError),
    (403, AuthError),
    (404, NotFoundError),
    (409, ConflictError),
    (422, ConflictError),
]


class FakeTime:
    """A clock that only moves when someone sleeps; every sleep is recorded (task, seconds)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[tuple[str, float]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append((str(anyio.get_current_task().name), seconds))
        wake = self.now + seconds
        await anyio.lowlevel.checkpoint()
        self.now = max(self.now, wake)

    @property
    def waits(self) -> list[float]:
        return [s for _, s in self.sleeps]


def error(status: int, *messages: str, **headers: str) -> httpx.Response:
    """An answer in the service's error shape."""
    body = {"errors": {}, "errorMessages": list(messages), "statusCode": status}
    return httpx.Response(status, json=body, headers=headers)
