"""A lean HTTP/1.1 keep-alive client behind httpx's one-method transport API.

Why: under ``httpx.AsyncClient``, httpcore + h11 cost several times the CPU per request of the
client layer itself. The library's requests are small JSON documents to one origin, so this
transport does only what they need: a LIFO pool of keep-alive connections per origin, the
request written in one send, the response parsed with ``bytes.find`` and read whole
(``Content-Length``, chunked, or up to EOF) before it is handed to httpx, which still decodes
``Content-Encoding``, sets ``response.request``, extracts cookies, etc.

The library's own client goes one step further on its hot path: :meth:`FastTransport.prepare`
turns the base URL and the client's headers into bytes once, and :meth:`FastTransport.send_raw`
writes each request as those bytes plus its method, path and body, and returns the status,
headers and body as they were read: no ``httpx.Request``/``httpx.Response`` (their URL parsing
and header and stream objects cost about a tenth of the client's CPU per request). Bodies with
a ``Content-Encoding`` are still decoded by httpx.

All I/O goes through anyio's streams (asyncio and trio). Failures are httpx's exceptions, as
the library decides from them whether a request may have reached the server: only
``ConnectError``, ``ConnectTimeout`` and ``PoolTimeout`` prove that it did not. A write that
fails is a ``WriteError`` (httpcore instead reads on, for an early answer such as a 413).

Not supported (use ``httpx.AsyncHTTPTransport``): proxies, HTTP/2, Unix sockets, streaming
response bodies (each body is read whole into memory), ``Upgrade``/``CONNECT``, the
``sni_hostname`` extension, and responses with bare-LF line endings.
"""

from __future__ import annotations

import contextlib
import math
import re
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Mapping
from typing import Final, NamedTuple

import anyio
import httpcore
import httpx
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSAttribute

__all__ = ["FastTransport", "Prepared", "safe_path"]

_RECEIVE: Final = 65536
_MAX_HEAD: Final = 65536  # bytes of status line + headers before the blank line
_CHUNK_SIZE: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")
_NO_TIMEOUTS: Final[dict[str, float | None]] = {}
_METHODS: Final = {m: m.encode("ascii") for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")}
_VERSIONS: Final = (b"HTTP/1.1", b"HTTP/1.0")
_DEFAULT_PORTS: Final = {b"http": 80, b"https": 443}

# The phases of one request, for mapping failures and timeouts to httpx's exceptions.
_CONNECT: Final = 0
_WRITE: Final = 1
_READ: Final = 2
_TIMEOUTS: Final[tuple[type[httpx.TimeoutException], ...]] = (
    httpx.ConnectTimeout,
    httpx.WriteTimeout,
    httpx.ReadTimeout,
)
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
_NO_RESPONSE: Final = "Server disconnected without sending a response."
_HAS_POLL: Final = hasattr(select, "poll")
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


class Prepared:
    """A base URL and its request headers as bytes (:meth:`FastTransport.prepare`).

    The header block holds the credentials: the repr names the headers, never their values.
    """

    __slots__ = ("base_url", "block", "headers", "keep_alive", "prefix")

    def __init__(
        self,
        base_url: httpx.URL,
        headers: httpx.Headers,
        prefix: bytes,
        block: bytes,
        keep_alive: bool,
    ) -> None:
        self.base_url = base_url
        self.headers = headers
        self.prefix = prefix  # the base URL's path, without a trailing slash
        self.block = block  # the header lines, each ending in CRLF (Host included)
        self.keep_alive = keep_alive

    def __repr__(self) -> str:
        names = ", ".join(self.headers.keys())
        return f"<Prepared {self.base_url} headers: {names}>"


class _Answer(NamedTuple):
    """One response as read: the head's parts, the whole body, whether to reuse the conn."""

    status: int
    reason: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    reusable: bool
    coded: bool  # a Content-Encoding to decode


class _Conn:
    """One connection: its stream, the raw socket (to poll while idle), when it went idle."""

    __slots__ = ("closed", "idle_since", "sock", "stream")

    def __init__(self, stream: ByteStream | None, sock: socket.socket | None) -> None:
        self.stream = stream
        self.sock = sock
        self.idle_since = 0.0
        self.closed = False


class _Waiter:
    """A request waiting for a connection: ``granted`` once handed one (or a slot to open)."""

    __slots__ = ("conn", "event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.conn: _Conn | None = None
        self.granted = False


class _Pool:
    """The connections to one origin. ``count`` includes idle, busy and opening ones."""

    __slots__ = ("closed", "conns", "count", "free", "host", "port", "stale", "tls", "waiters")

    def __init__(self, host: str, port: int, tls: bool) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.free: list[_Conn] = []  # idle, LIFO: the newest on top
        self.conns: set[_Conn] = set()  # all open ones, for aclose()
        self.count = 0
        self.waiters: deque[_Waiter] = deque()
        self.stale: list[_Conn] = []  # idle ones found expired or dead, to close
        self.closed = False


def _is_dead(sock: socket.socket | None) -> bool:
    """Whether an idle connection's socket has something to read: EOF, a reset or junk.

    The server closing an idle connection is the common case (its keep-alive timeout); reusing
    it would fail the next request with an error that cannot prove the request unsent.
    """
    if sock is None:
        return False
    try:
        fd = sock.fileno()
        if fd < 0:
            return True
        if _HAS_POLL:  # poll(), unlike select(), takes descriptors >= FD_SETSIZE
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select((fd,), (), (), 0)[0])
    except (OSError, ValueError):
        return True


def _serialize(request: httpx.Request, url: httpx.URL, body: bytes) -> tuple[bytes, bool]:
    """The request's bytes (head and body, one buffer) and whether it allows keep-alive."""
    method = request.method
    parts = [_METHODS.get(method) or method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
    has_host = has_length = False
    drop_chunked = False
    keep_alive = True
    lines = 2  # the request line and the blank line
    for name, value in request.headers.raw:
        n = len(name)
        if n == 4:
            has_host = has_host or name.lower() == b"host"
        elif n == 14:
            has_length = has_length or name.lower() == b"content-length"
        elif n == 17 and name.lower() == b"transfer-encoding":
            drop_chunked = True  # the body was read whole: it goes with a Content-Length
            continue
        elif n == 10 and name.lower() == b"connection" and b"close" in value.lower():
            keep_alive = False
        parts += (name, b": ", value, b"\r\n")
        lines += 1
    if not has_host:
        parts[4:4] = (b"Host: ", url.netloc, b"\r\n")
        lines += 1
    if (body or drop_chunked) and not has_length:
        parts += (b"Content-Length: ", b"%d" % len(body), b"\r\n")
        lines += 1
    parts.append(b"\r\n")
    parts.append(body)
    data = b"".join(parts)
    end = len(data) - len(body)
    if data.count(b"\n", 0, end) != lines or data.count(b"\r", 0, end) != lines:
        raise httpx.LocalProtocolError("a CR or LF inside the request line or a header")
    return data, keep_alive


def _parse_head(
    head: bytes | bytearray,
) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]], int, bool, bool, bool]:
    """Parse a response head (without the blank line).

    Returns status, reason, version, headers, Content-Length (-1 if none), whether the body is
    chunked, whether the server allows keeping the connection (by version and Connection) and
    whether the body has a ``Content-Encoding`` (other than ``identity``) to decode.
    """
    eol = head.find(b"\r\n")
    status_line = head if eol < 0 else head[:eol]
    parts = bytes(status_line).split(b" ", 2)
    if len(parts) < 2 or parts[0] not in _VERSIONS or len(parts[1]) != 3 or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"malformed status line: {bytes(status_line)[:100]!r}")
    version = parts[0]
    status = int(parts[1])
    reason = parts[2] if len(parts) == 3 else b""
    headers: list[tuple[bytes, bytes]] = []
    length = -1
    chunked = False
    other_coding = False
    coded = False
    keep_alive = version == b"HTTP/1.1"
    if eol >= 0:
        for line in bytes(head[eol + 2 :]).split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if line[0] in b" \t":  # obsolete line folding: continues the previous value
                if not headers:
                    raise httpx.RemoteProtocolError("malformed header line: folding first")
                previous, value = headers[-1]
                headers[-1] = (previous, value + b" " + line.strip(b" \t"))
                continue
            if not sep or not name or name[-1] in b" \t":
                raise httpx.RemoteProtocolError(f"malformed header line: {line[:100]!r}")
            value = value.strip(b" \t")
            headers.append((name, value))
            n = len(name)
            if n == 14:
                if name.lower() == b"content-length":
                    if not value.isdigit():
                        raise httpx.RemoteProtocolError(f"bad Content-Length: {value[:50]!r}")
                    number = int(value)
                    if length >= 0 and number != length:
                        raise httpx.RemoteProtocolError("conflicting Content-Length headers")
                    length = number
            elif n == 17:
                if name.lower() == b"transfer-encoding":
                    codings = [c.strip() for c in value.lower().split(b",")]
                    chunked = codings[-1] == b"chunked"
                    other_coding = not chunked
            elif n == 16:
                if name.lower() == b"content-encoding" and value.lower() != b"identity":
                    coded = True
            elif n == 10 and name.lower() == b"connection":
                tokens = [t.strip() for t in value.lower().split(b",")]
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
    if chunked and length >= 0:
        keep_alive = False  # RFC 9112 6.3: chunked wins; don't trust the connection after
        length = -1
    elif other_coding:
        keep_alive = False  # read to EOF
        length = -1
    return status, reason, version, headers, length, chunked, keep_alive, coded


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

    ``verify``: ``True`` (httpx's default certificates), ``False`` (no verification) or an
    ``ssl.SSLContext`` (shared by all connections; its ALPN is set to ``http/1.1``). An idle
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
        self._pools: dict[tuple[bytes, bytes, int | None], _Pool] = {}
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
        data, keep_alive = _serialize(request, url, body)
        timeouts = request.extensions.get("timeout") or _NO_TIMEOUTS
        answer = await self._exchange(pool, data, keep_alive, timeouts, request.method == "HEAD")
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=httpx.ByteStream(answer.body),
            extensions={"http_version": answer.version, "reason_phrase": answer.reason},
        )

    # -- the lean path: no httpx.Request or httpx.Response -----------------------------

    def prepare(self, base_url: httpx.URL, headers: httpx.Headers) -> Prepared:
        """Turn a base URL and the headers every request carries into bytes, once.

        :meth:`send_raw` then writes a request as one ``b"".join`` of these and its own
        method, path and body. Raises ``httpx.LocalProtocolError`` if a header holds a CR or
        LF, ``httpx.UnsupportedProtocol`` for a scheme other than http and https.
        """
        if base_url.raw_scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                f"FastTransport speaks http:// and https:// only, not {base_url.scheme!r}"
            )
        lines: list[bytes] = []
        keep_alive = True
        has_host = False
        for name, value in headers.raw:
            lower = name.lower()
            if lower in (b"content-length", b"transfer-encoding"):
                continue  # per request
            if b"\r" in name + value or b"\n" in name + value:
                raise httpx.LocalProtocolError("a CR or LF inside a header")
            if lower == b"host":
                has_host = True
            elif lower == b"connection" and b"close" in value.lower():
                keep_alive = False
            lines.append(name + b": " + value + b"\r\n")
        if not has_host:
            lines.insert(0, b"Host: " + base_url.netloc + b"\r\n")
        return Prepared(
            base_url=base_url,
            headers=headers,
            prefix=base_url.raw_path.rstrip(b"/"),
            block=b"".join(lines),
            keep_alive=keep_alive,
        )

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
        data = b"".join(
            (
                _METHODS.get(method) or method.encode("ascii"),
                b" ",
                prepared.prefix,
                path.encode("ascii"),
                b" HTTP/1.1\r\n",
                prepared.block,
                b"Content-Length: %d\r\n\r\n" % len(body) if body else b"\r\n",
                body or b"",
            )
        )
        answer = await self._exchange(pool, data, prepared.keep_alive, timeouts, method == "HEAD")
        if answer.coded:  # gzip and the like: httpx's decoders
            response = httpx.Response(
                answer.status, headers=answer.headers, stream=httpx.ByteStream(answer.body)
            )
            return answer.status, answer.headers, response.read()
        return answer.status, answer.headers, answer.body

    # -- one exchange on a pooled connection ------------------------------------------

    async def _exchange(
        self,
        pool: _Pool,
        data: bytes,
        keep_alive: bool,
        timeouts: Mapping[str, float | None],
        no_body: bool,
    ) -> _Answer:
        """Write ``data`` on a pooled connection and read the answer; pool the connection."""
        conn = self._take(pool)
        if pool.stale:
            await self._close_stale(pool)
        if conn is None:
            conn = await self._wait(pool, timeouts.get("pool"))

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
        answer: _Answer | None = None
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
            await self._discard(pool, conn)
            raise
        except _NETWORK_ERRORS as exc:
            await self._discard(pool, conn)
            if phase == _READ and isinstance(exc, anyio.EndOfStream):
                raise httpx.RemoteProtocolError(_NO_RESPONSE) from exc
            raise _ERRORS[phase](str(exc) or type(exc).__name__) from exc
        except BaseException:  # cancelled (or a bug): the connection is in an unknown state
            await self._discard(pool, conn)
            raise
        if answer is None:  # our own deadline passed (the scope swallowed its cancellation)
            await self._discard(pool, conn)
            raise _TIMEOUTS[phase](_TIMEOUT_MESSAGES[phase])
        if answer.reusable and keep_alive and not conn.closed and not pool.closed:
            self._put(pool, conn)
        else:
            await self._discard(pool, conn)
        return answer

    # -- reading ----------------------------------------------------------------------

    async def _read_response(
        self, stream: ByteStream, scope: anyio.CancelScope, limit: float | None, no_body: bool
    ) -> _Answer:
        """Read one final response, and whether the connection may be reused after it."""
        buf: bytes | bytearray = await stream.receive(_RECEIVE)
        start = 0  # where the current response starts in buf (after skipped 1xx ones)
        while True:
            end = buf.find(b"\r\n\r\n", start)
            while end < 0:
                if len(buf) - start > _MAX_HEAD:
                    raise httpx.RemoteProtocolError("response headers too long")
                searched = max(start, len(buf) - 3)
                buf = await self._more(stream, buf, scope, limit, _NO_RESPONSE)
                end = buf.find(b"\r\n\r\n", searched)
            status, reason, version, headers, length, chunked, keep_alive, coded = _parse_head(
                buf[start:end]
            )
            start = end + 4
            if status >= 200:
                break
            if status == 101:
                raise httpx.RemoteProtocolError("101 Switching Protocols is not supported")
            # A 1xx interim response: skip it, the final one follows.

        size = len(buf)
        if no_body or status == 204 or status == 304:
            body = b""
            reusable = keep_alive and size == start
        elif chunked:
            body, buf, end = await self._read_chunked(stream, buf, start, scope, limit)
            reusable = keep_alive and len(buf) == end
        elif length >= 0:
            end = start + length
            while size < end:
                buf = await self._more(
                    stream,
                    buf,
                    scope,
                    limit,
                    "peer closed connection without sending complete message body: "
                    f"received {size - start} bytes, expected {length}",
                )
                size = len(buf)
            body = bytes(buf[start:end])
            reusable = keep_alive and size == end
        else:  # neither: the body runs to EOF, and the connection ends with it
            if isinstance(buf, bytes):
                buf = bytearray(buf)
            while True:
                _renew(scope, limit)
                try:
                    buf += await stream.receive(_RECEIVE)
                except anyio.EndOfStream:
                    break
            body = bytes(buf[start:])
            reusable = False
        return _Answer(status, reason, version, headers, body, reusable, coded)

    async def _read_chunked(
        self,
        stream: ByteStream,
        buf: bytes | bytearray,
        pos: int,
        scope: anyio.CancelScope,
        limit: float | None,
    ) -> tuple[bytes, bytes | bytearray, int]:
        """Decode a chunked body at ``buf[pos:]``; returns it, the buffer and where it ended."""
        parts: list[bytes] = []
        eof = "peer closed connection without sending complete message body: incomplete chunked"
        while True:
            eol = buf.find(b"\r\n", pos)
            while eol < 0:
                if len(buf) - pos > _MAX_HEAD:
                    raise httpx.RemoteProtocolError("chunk size line too long")
                searched = max(pos, len(buf) - 1)
                buf = await self._more(stream, buf, scope, limit, eof)
                eol = buf.find(b"\r\n", searched)
            line = bytes(buf[pos:eol])
            semicolon = line.find(b";")
            if semicolon >= 0:
                line = line[:semicolon]
            line = line.strip(b" \t")
            if _CHUNK_SIZE.fullmatch(line) is None:
                raise httpx.RemoteProtocolError(f"malformed chunk size: {line[:50]!r}")
            size = int(line, 16)
            pos = eol + 2
            if size == 0:
                break
            end = pos + size
            while len(buf) < end + 2:
                buf = await self._more(stream, buf, scope, limit, eof)
            if buf[end : end + 2] != b"\r\n":
                raise httpx.RemoteProtocolError("malformed chunked body: no CRLF after a chunk")
            parts.append(bytes(buf[pos:end]))
            pos = end + 2
        # The trailer section (skipped): either an empty line at once or lines ending "\r\n\r\n".
        while len(buf) < pos + 2:
            buf = await self._more(stream, buf, scope, limit, eof)
        if buf[pos : pos + 2] == b"\r\n":
            return b"".join(parts), buf, pos + 2
        end = buf.find(b"\r\n\r\n", pos)
        while end < 0:
            if len(buf) - pos > _MAX_HEAD:
                raise httpx.RemoteProtocolError("trailers too long")
            searched = max(pos, len(buf) - 3)
            buf = await self._more(stream, buf, scope, limit, eof)
            end = buf.find(b"\r\n\r\n", searched)
        return b"".join(parts), buf, end + 4

    @staticmethod
    async def _more(
        stream: ByteStream,
        buf: bytes | bytearray,
        scope: anyio.CancelScope,
        limit: float | None,
        eof_message: str,
    ) -> bytearray:
        """Append the next chunk from the network to ``buf`` (made a bytearray once)."""
        _renew(scope, limit)
        try:
            more = await stream.receive(_RECEIVE)
        except anyio.EndOfStream:
            raise httpx.RemoteProtocolError(eof_message) from None
        if isinstance(buf, bytes):
            buf = bytearray(buf)
        buf += more
        return buf

    # -- the pool ---------------------------------------------------------------------

    def _new_pool(self, url: httpx.URL) -> _Pool:
        if self._closed:
            raise RuntimeError("this FastTransport was closed")
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                f"FastTransport speaks http:// and https:// only, not {scheme.decode()!r}"
            )
        if not url.raw_host:
            raise httpx.UnsupportedProtocol(f"no host in the URL {url!r}")
        port = url.port if url.port is not None else _DEFAULT_PORTS[scheme]
        pool = _Pool(url.raw_host.decode("ascii"), port, scheme == b"https")
        self._pools[(scheme, url.raw_host, url.port)] = pool
        return pool

    def _take(self, pool: _Pool) -> _Conn | None:
        """An idle live connection, a new unconnected one (a slot taken), or None: all busy.

        Idle connections found expired or dead go to ``pool.stale``, for the caller to close.
        """
        free = pool.free
        if free:
            now = self._clock()
            expiry = self.keepalive_expiry
            while free:
                conn = free.pop()
                if now - conn.idle_since < expiry:
                    if not _is_dead(conn.sock):
                        return conn
                    stale = [conn]
                else:  # expired, and all below it on the stack are older still
                    stale = [conn, *free]
                    free.clear()
                for conn in stale:
                    conn.closed = True
                    pool.conns.discard(conn)
                pool.count -= len(stale)
                pool.stale += stale
        if pool.closed:
            raise RuntimeError("this FastTransport was closed")
        if pool.count < self.size:
            pool.count += 1
            return _Conn(None, None)  # to be connected
        return None

    async def _close_stale(self, pool: _Pool) -> None:
        stale = pool.stale[:]
        pool.stale.clear()
        with anyio.CancelScope(shield=True):
            for conn in stale:
                await _close(conn)

    async def _wait(self, pool: _Pool, limit: float | None) -> _Conn:
        """Wait until a connection (or a slot to open one) is handed over, or time out."""
        waiter = _Waiter()
        pool.waiters.append(waiter)
        try:
            with anyio.move_on_after(math.inf if limit is None else limit):
                await waiter.event.wait()
        except BaseException:
            self._abandon(pool, waiter)
            raise
        if not waiter.granted:
            self._abandon(pool, waiter)
            if pool.closed:
                raise RuntimeError("this FastTransport was closed")
            raise httpx.PoolTimeout("timed out waiting for a free connection")
        conn = waiter.conn
        return conn if conn is not None else _Conn(None, None)

    def _abandon(self, pool: _Pool, waiter: _Waiter) -> None:
        """A waiter gives up: pass on what it was granted, or leave the queue."""
        if waiter.granted:
            if waiter.conn is not None:
                self._put(pool, waiter.conn)
            else:
                self._free_slot(pool)
        else:
            with contextlib.suppress(ValueError):
                pool.waiters.remove(waiter)

    def _put(self, pool: _Pool, conn: _Conn) -> None:
        """Return a healthy idle connection: to the first waiter, or on top of the free list."""
        waiters = pool.waiters
        if waiters:
            waiter = waiters.popleft()
            waiter.conn = conn
            waiter.granted = True
            waiter.event.set()
        else:
            conn.idle_since = self._clock()
            pool.free.append(conn)

    def _free_slot(self, pool: _Pool) -> None:
        """A connection is gone: let the first waiter open one instead, or shrink the count."""
        waiters = pool.waiters
        if waiters and not pool.closed:
            waiter = waiters.popleft()
            waiter.granted = True
            waiter.event.set()
        else:
            pool.count -= 1

    async def _discard(self, pool: _Pool, conn: _Conn) -> None:
        """Close a connection that failed or may not be reused, and free its slot."""
        pool.conns.discard(conn)
        self._free_slot(pool)
        if conn.stream is not None:
            with anyio.CancelScope(shield=True):
                await _close(conn)

    async def _connect(self, pool: _Pool, conn: _Conn) -> ByteStream:
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
        pool.conns.add(conn)
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
                raise httpx.ConnectError(f"the server chose {alpn!r} over ALPN, not http/1.1")
        return stream

    def _ssl_context(self) -> ssl.SSLContext:
        context = self._ssl
        if context is None:
            verify = self._verify
            if isinstance(verify, ssl.SSLContext):
                context = verify
            else:
                context = httpx.create_ssl_context(verify=verify)
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
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
                pool.closed = True
                waiters = list(pool.waiters)
                pool.waiters.clear()
                for waiter in waiters:
                    waiter.event.set()  # not granted: they raise that the transport is closed
                conns = list(pool.conns)
                pool.conns.clear()
                pool.count -= len(pool.free)
                pool.free.clear()
                for conn in conns:
                    await _close(conn)


async def _close(conn: _Conn) -> None:
    conn.closed = True
    stream = conn.stream
    if stream is None:
        return
    with contextlib.suppress(Exception):  # a broken connection may fail to close: it is gone
        await stream.aclose()


_TIMEOUT_MESSAGES: Final = ("timed out connecting", "timed out writing", "timed out reading")
