"""A connection pool cut into one-connection shards, behind httpx's one-method transport API.

Why: httpcore's pool walks all of its connections and queued requests on every request and
every response close, so its CPU cost per request grows with the pool (measured here: one pool
of 64 connections at 64 in flight costs about 2.8x the CPU per request of 64 pools of one).
This transport keeps one ``httpx.AsyncClient`` per :class:`TrackerClient`, but hands each
request to a free single-connection ``httpx.AsyncHTTPTransport``: O(1) to pick, O(1) inside.

The caller (the transport layer's concurrency limiter) keeps at most ``size`` requests in
flight; should more arrive anyway, they share shard 0, which queues them as httpcore does.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable

import httpx

__all__ = ["ShardedTransport"]


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives its shard back once it is closed (exactly once)."""

    __slots__ = ("_release", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        release, self._release = self._release, None
        try:
            await self._stream.aclose()
        finally:
            if release is not None:
                release()


class ShardedTransport(httpx.AsyncBaseTransport):
    """``size`` single-connection HTTP/1.1 pools sharing one TLS context."""

    def __init__(self, size: int, *, verify: ssl.SSLContext | bool = True) -> None:
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context()
        if verify is False:
            context = False  # type: ignore[assignment]
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=30.0)
        self._shards = [httpx.AsyncHTTPTransport(verify=context, limits=one) for _ in range(size)]
        self._free = list(range(size - 1, -1, -1))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        free = self._free
        index = free.pop() if free else -1
        shard = self._shards[index if index >= 0 else 0]

        def release() -> None:
            if index >= 0:
                free.append(index)

        try:
            response = await shard.handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, release)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()
