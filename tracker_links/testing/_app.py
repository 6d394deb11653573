"""The fake as an ASGI 3 application (served by uvicorn in :mod:`._server`)."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._payloads import Responder

__all__ = ["FakeASGIApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Set in the task of a request the fake drops on purpose: the server then logs "returned
# without completing response" from that same task, and _QuietDrops hides just that.
_DROPPING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tracker_links_fake_dropping", default=False
)


class _QuietDrops(logging.Filter):
    """Hide the server's complaint about a response the fake abandoned on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _DROPPING.get()


def quiet_intentional_drops(logger_name: str = "uvicorn.error") -> None:
    """Install the filter on the server's error logger, once."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


# What a drop sends before closing: headers promising more body than ever comes.
_DROP_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"4096")]


class FakeASGIApp:
    """The :class:`FakeTracker` as an ASGI 3 app: ``FakeTracker.app``.

    A dropped request gets a response start promising a body that never fully arrives, then
    the app returns, and the server closes the connection: the client sees a protocol error.
    """

    def __init__(self, fake: Responder) -> None:
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        if host is None:
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        reply = await self.fake.respond(
            scope["method"],
            scope["path"],
            scope["query_string"].decode("latin-1"),
            headers,
            body,
            f"{scope.get('scheme', 'http')}://{host}",
        )
        if reply.dropped:
            _DROPPING.set(True)
            await send({"type": "http.response.start", "status": 200, "headers": _DROP_HEADERS})
            await send({"type": "http.response.body", "body": b"[", "more_body": True})
            return
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [*reply.headers, (b"content-length", str(len(reply.body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})
