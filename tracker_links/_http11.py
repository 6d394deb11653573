"""A lean HTTP/1.1 keep-alive client behind httpx's one-method transport API: the I/O.

Why: under ``httpx.AsyncClient``, httpcore + h11 cost several times the CPU per request of the
client layer itself. The library's requests are small JSON documents to one origin, so this
transport does only what they need: a LIFO pool of keep-alive connections per origin
(:mod:`tracker_links._pool`), the request written in one send, the response parsed by the
sans-I/O :mod:`tracker_links._wire` (heads) and :mod:`tracker_links._framing` (bodies) and read
whole (``Content-Length``, chunked, or up to EOF) and decoded from its ``Content-Encoding``
(httpx's decoders, fed a slice at a time so that the decoded size stays within
``_wire.MAX_BODY``: then the response carries no ``Content-Encoding``) before it is handed to
httpx, which sets ``response.request``, extracts cookies, etc.

The library's own client goes one step further on its hot path: :meth:`FastTransport.prepare`
turns the base URL and the client's headers into bytes once, and :meth:`FastTransport.send_raw`
writes each request as those bytes plus its method, path and body, and returns the status,
headers and body as they were read (the body decoded, the same way): no ``httpx.Request`` or
``httpx.Response`` (their URL parsing and header and stream objects cost about a tenth of the
client's CPU per request).

All I/O goes through anyio's streams (asyncio and trio). Failures are httpx's exceptions, as
the library decides from them whether a request may have reached the server: only
``ConnectError``, ``ConnectTimeout`` and ``PoolTimeout`` prove that it did not. A write that
fails is a ``WriteError`` (httpcore instead reads on, for an early answer such as a 413).

Not supported (use ``httpx.AsyncHTTPTransport``): proxies, HTTP/2, Unix sockets, streaming
response bodies (each body is read whole into memory, up to ``_wire.MAX_BODY``),
``Upgrade``/``CONNECT``, the ``sni_hostname`` extension, and responses with bare-LF line
endings (refused as a protocol error).
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from typing import Final

import anyio
import httpcore
import httpx
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSAttribute

from . import _tls, _wire
from ._framing import NO_RESPONSE, Answer, ResponseParser
from ._pool import Conn, Pool
from ._wire import Prepared

__all__ = ["FastTransport", "Prepared", "safe_path"]

_RECEIVE: Final = 65536
_NO_TIMEOUTS: Final[dict[str, float | None]] = {}

# The phases of one request, for mapping failures and timeouts to httpx's exceptions.
_CONNECT: Final = 0
_WRITE: Final = 1
_READ: Final = 2
_TIMEOUTS: Final[tuple[type[httpx.TimeoutException], ...]] = (
    httpx.ConnectTimeout,
    httpx.WriteTimeout,
    httpx.ReadTimeout,
)
_TIMEOUT_MESSAGES: Final = ("timed out connecting", "timed out writing", "timed out reading")
_ERRORS: Final[tuple[type[httpx.NetworkError], ...]] = (
    httpx.ConnectError,
    httpx.WriteError,
    httpx.ReadError,
)
# What anyio's streams raise when the network fails (ssl.SSLError is an OSError).
_NETWORK_ERRORS: Final = (
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)
_SLACK: Final = 0.001  # seconds: deadline moves smaller than this are skipped (see _renew)


def _renew(scope: anyio.CancelScope, limit: float | None) -> None:
    """Move ``scope``'s deadline to ``limit`` seconds from now (to no deadline if None).

    Left alone if it would move by less than _SLACK: then a phase may time out up to _SLACK
    early, but the common request (equal write and read timeouts, a fast write, one read)
    arms one timer, not three.
    """
    if limit is None:
        if scope.deadline != math.inf:
            scope.deadline = math.inf
    else:
        deadline = anyio.current_time() + limit
        if abs(deadline - scope.deadline) > _SLACK:
            scope.deadline = deadline


_SAFE_PATH: Final = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")


def safe_path(path: str) -> bool:
    """Whether ``path`` can go on the request line as it is (:meth:`FastTransport.send_raw`)."""
    return _SAFE_PATH.fullmatch(path) is not None


_DECODED: Final = frozenset({b"content-encoding", b"content-length"})  # of a decoded body
_DECODE_STEP: Final = 16384  # compressed bytes per decoder call: deflate grows ~1000x at most


class _Steps(httpx.SyncByteStream):
    """A whole body handed to httpx's decoders a slice at a time, so that the decoded size
    can be checked as it grows (a small gzip body may decode to gigabytes)."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        body = self._body
        for start in range(0, len(body), _DECODE_STEP):
            yield body[start : start + _DECODE_STEP]


def _decode(answer: Answer) -> bytes:
    """``answer``'s body decoded from its ``Content-Encoding`` (httpx's decoders), refused as
    a protocol error once it grows over ``_wire.MAX_BODY``."""
    response = httpx.Response(answer.status, headers=answer.headers, stream=_Steps(answer.body))
    parts: list[bytes] = []
    size = 0
    for part in response.iter_bytes():
        size += len(part)
        if size > _wire.MAX_BODY:
            raise _wire.error(f"body over the limit of {_wire.MAX_BODY} bytes once decoded")
        parts.append(part)
    return b"".join(parts)


_HTTPCORE_SEND: Final = httpcore.AsyncConnectionPool.handle_async_request


def _httpcore_patched() -> bool:
    """Whether something (respx's default mocker) has replaced httpcore's request method.

    Tests that mock HTTP with ``respx.mock`` patch httpcore, which this transport does not use;
    while such a patch is active, requests go through httpx's own transport so that the mock
    sees them, as it would with any httpx client. One attribute comparison per request.
    """
    return httpcore.AsyncConnectionPool.handle_async_request is not _HTTPCORE_SEND


class FastTransport(httpx.AsyncBaseTransport):
    """A pool of at most ``size`` HTTP/1.1 keep-alive connections per origin.

    ``verify``: ``True`` (the system's trust store and certifi's, see :mod:`tracker_links._tls`),
    ``False`` (no verification) or an ``ssl.SSLContext`` (shared by all connections, used as it
    is: not changed, so it offers whatever ALPN its owner set). An idle
    connection older than ``keepalive_expiry`` seconds, or readable while idle (the server
    closed it), is closed instead of reused. Timeouts come from httpx's request extensions.
    """

    def __init__(
        self,
        size: int,
        *,
        verify: ssl.SSLContext | bool = True,
        keepalive_expiry: float = 15.0,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an int >= 1, got {size!r}")
        self.size = size
        self.keepalive_expiry = keepalive_expiry
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._pools: dict[tuple[bytes, bytes, int | None], Pool] = {}
        self._closed = False
        self._clock = time.monotonic  # idle ages; replaceable in tests
        self._fallback: httpx.AsyncHTTPTransport | None = None

    # -- the request ------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _httpcore_patched():
            return await self._through_httpcore().handle_async_request(request)
        url = request.url
        pool = self._pools.get((url.raw_scheme, url.raw_host, url.port))
        if pool is None:
            pool = self._new_pool(url)
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        data, keep_alive = _wire.serialize(request, url, body)
        timeouts = request.extensions.get("timeout") or _NO_TIMEOUTS
        answer = await self._exchange(pool, data, keep_alive, timeouts, request.method == "HEAD")
        headers, body = answer.headers, answer.body
        if answer.coded:  # decoded here, within the cap (httpx would decode it unbounded)
            body = _decode(answer)
            headers = [(n, v) for n, v in headers if n.lower() not in _DECODED]
            headers.append((b"Content-Length", b"%d" % len(body)))
        return httpx.Response(
            answer.status,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": answer.version, "reason_phrase": answer.reason},
        )

    # -- the lean path: no httpx.Request or httpx.Response -----------------------------

    def prepare(self, base_url: httpx.URL, headers: httpx.Headers) -> Prepared:
        """Turn a base URL and the headers every request carries into bytes, once.

        :meth:`send_raw` then writes a request as one ``b"".join`` of these and its own
        method, path and body. Raises ``httpx.LocalProtocolError`` if a header holds a CR or
        LF, ``httpx.UnsupportedProtocol`` for a scheme other than http and https.
        """
        return _wire.prepare(base_url, headers)

    async def send_raw(
        self,
        prepared: Prepared,
        method: str,
        path: str,
        body: bytes | None,
        timeouts: Mapping[str, float | None],
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send ``method`` to the prepared base URL + ``path``; return status, headers, body.

        ``path`` must be ASCII made of URL-safe characters (``safe_path()``); it is written as
        it is. The body is decoded from its ``Content-Encoding`` (by httpx) if it has one. The
        failures are those of :meth:`handle_async_request`, and while httpcore is patched
        (respx) the request goes through httpx's own transport the same way.
        """
        if _httpcore_patched():  # as handle_async_request does, for respx to see it
            request = httpx.Request(
                method,
                str(prepared.base_url).rstrip("/") + path,
                headers=prepared.headers,
                content=body,
                extensions={"timeout": dict(timeouts)},
            )
            response = await self._through_httpcore().handle_async_request(request)
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            return response.status_code, response.headers.raw, content
        url = prepared.base_url
        pool = self._pools.get((url.raw_scheme, url.raw_host, url.port))
        if pool is None:
            pool = self._new_pool(url)
        data = _wire.request_bytes(prepared, method, path, body)
        answer = await self._exchange(pool, data, prepared.keep_alive, timeouts, method == "HEAD")
        if answer.coded:  # gzip and the like: httpx's decoders, within the cap
            return answer.status, answer.headers, _decode(answer)
        return answer.status, answer.headers, answer.body

    # -- one exchange on a pooled connection ------------------------------------------

    async def _exchange(
        self,
        pool: Pool,
        data: bytes,
        keep_alive: bool,
        timeouts: Mapping[str, float | None],
        no_body: bool,
    ) -> Answer:
        """Write ``data`` on a pooled connection and read the answer; pool the connection."""
        conn = pool.take()  # (Pool.acquire, inline: no coroutine on the common path)
        if pool.stale:
            await pool.close_stale()
        if conn is None:
            conn = await pool.wait(timeouts.get("pool"))

        # One cancel scope (one timer) per request: its deadline moves from phase to phase, and
        # only if the move is more than _SLACK (each new timer costs a heap push on asyncio).
        stream = conn.stream
        if stream is None:
            phase = _CONNECT
            limit = timeouts.get("connect")
        else:
            phase = _WRITE
            limit = timeouts.get("write")
        scope = anyio.CancelScope(
            deadline=math.inf if limit is None else anyio.current_time() + limit
        )
        read_limit = timeouts.get("read")
        answer: Answer | None = None
        try:
            with scope:
                if stream is None:
                    stream = await self._connect(pool, conn)
                    phase = _WRITE
                    _renew(scope, timeouts.get("write"))
                await stream.send(data)
                phase = _READ
                _renew(scope, read_limit)
                answer = await self._read_response(stream, scope, read_limit, no_body)
        except httpx.HTTPError:
            await pool.discard(conn)
            raise
        except _NETWORK_ERRORS as exc:
            await pool.discard(conn)
            if phase == _READ and isinstance(exc, anyio.EndOfStream):
                raise httpx.RemoteProtocolError(NO_RESPONSE) from exc
            raise _ERRORS[phase](str(exc) or type(exc).__name__) from exc
        except BaseException:  # cancelled (or a bug): the connection is in an unknown state
            await pool.discard(conn)
            raise
        if answer is None:  # our own deadline passed (the scope swallowed its cancellation)
            await pool.discard(conn)
            raise _TIMEOUTS[phase](_TIMEOUT_MESSAGES[phase])
        if answer.reusable and keep_alive and not conn.closed and not pool.closed:
            pool.put(conn)
        else:
            await pool.discard(conn)
        return answer

    @staticmethod
    async def _read_response(
        stream: ByteStream, scope: anyio.CancelScope, limit: float | None, no_body: bool
    ) -> Answer:
        """Read one final response (the parsing is :class:`_framing.ResponseParser`'s)."""
        parser = ResponseParser(no_body)
        answer = parser.feed(await stream.receive(_RECEIVE))
        while answer is None:
            _renew(scope, limit)
            try:
                data = await stream.receive(_RECEIVE)
            except anyio.EndOfStream:
                return parser.feed_eof()
            answer = parser.feed(data)
        return answer

    # -- connections ------------------------------------------------------------------

    def _new_pool(self, url: httpx.URL) -> Pool:
        if self._closed:
            raise RuntimeError("this FastTransport was closed")
        scheme = url.raw_scheme
        if scheme not in _wire.DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                f"FastTransport speaks http:// and https:// only, not {scheme.decode()!r}"
            )
        if not url.raw_host:
            raise httpx.UnsupportedProtocol(f"no host in the URL {url!r}")
        port = url.port if url.port is not None else _wire.DEFAULT_PORTS[scheme]
        pool = Pool(
            url.raw_host.decode("ascii"),
            port,
            scheme == b"https",
            size=self.size,
            keepalive_expiry=self.keepalive_expiry,
            clock=self._clock,
        )
        self._pools[(scheme, url.raw_host, url.port)] = pool
        return pool

    async def _connect(self, pool: Pool, conn: Conn) -> ByteStream:
        if pool.tls:
            stream: ByteStream = await anyio.connect_tcp(
                pool.host,
                pool.port,
                ssl_context=self._ssl_context(),
                tls_hostname=pool.host,
                tls_standard_compatible=False,
            )
        else:
            stream = await anyio.connect_tcp(pool.host, pool.port)
        conn.stream = stream
        pool.connected(conn)
        sock: socket.socket | None = stream.extra(SocketAttribute.raw_socket, None)
        if sock is not None:
            # anyio sets it already (asyncio: for sockets whose proto is TCP): make sure, as
            # with Nagle's algorithm and delayed ACKs a request written in more than one
            # segment would wait ~40 ms.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock = sock
        if pool.tls:
            alpn = stream.extra(TLSAttribute.alpn_protocol, None)
            if alpn not in (None, "http/1.1"):
                raise httpx.ConnectError(
                    f"the server chose {alpn!r} over ALPN, not http/1.1: an SSLContext given as "
                    "verify= must offer only http/1.1 (set_alpn_protocols(['http/1.1']))"
                ) from _tls.ProtocolRefused(alpn)
        return stream

    def _ssl_context(self) -> ssl.SSLContext:
        context = self._ssl
        if context is None:  # a caller's context as is; our own offers ALPN http/1.1
            context = self._ssl = _tls.make_context(self._verify)
        return context

    def _through_httpcore(self) -> httpx.AsyncHTTPTransport:
        """httpx's own transport, for when a test double (respx) has patched httpcore."""
        if self._fallback is None:
            self._fallback = httpx.AsyncHTTPTransport(verify=self._verify)
        return self._fallback

    async def aclose(self) -> None:
        """Close every connection (requests still reading them fail with ``httpx.ReadError``)."""
        self._closed = True
        if self._fallback is not None:
            await self._fallback.aclose()
        with anyio.CancelScope(shield=True):
            for pool in self._pools.values():
                await pool.aclose()
