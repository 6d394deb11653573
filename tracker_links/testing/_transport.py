"""The in-process httpx transport: requests go straight to the fake, with no sockets."""

from __future__ import annotations

import httpx

from ._payloads import Responder

__all__ = ["FakeTransport"]


class FakeTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` answering from a :class:`FakeTracker` (asyncio or trio).

    Made by :meth:`FakeTracker.transport`. A dropped connection raises
    ``httpx.RemoteProtocolError``, as a server closing the socket mid-request would.
    """

    def __init__(self, fake: Responder) -> None:
        self._fake = fake

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` from the fake."""
        body = await request.aread()
        url = request.url
        reply = await self._fake.respond(
            request.method,
            url.path,
            url.query.decode("ascii", "replace"),
            request.headers,
            body,
            f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}",
        )
        if reply.dropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body)
