"""FastTransport (tracker_links._http11) against real loopback servers, on asyncio and trio.

Most tests run a tiny scripted server in the test's own task group: it reads each request
(head and Content-Length body) and answers with the next script, a list of steps: bytes to
send, an ``anyio.Event`` to wait for, ``CLOSE`` (close the connection) or ``HANG`` (never
answer; read until the client closes). It counts accepted connections and connections it saw closed.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
from anyio.abc import SocketAttribute

from tracker_links import RetryPolicy, ServerError, TrackerClient, TransportError, _wire
from tracker_links._http11 import FastTransport, safe_path
from tracker_links._protocol import Request
from tracker_links.testing import FakeTracker

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("error::ResourceWarning")]

CLOSE = "close"
HANG = "hang"
Step = bytes | anyio.Event | str
HEADERS = {"Authorization": "OAuth t", "X-Org-ID": "1"}


def ok(body: bytes = b"ok", *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


class Scripted:
    """The state of one scripted server: scripts to play, what it saw."""

    def __init__(self, scripts: Sequence[Sequence[Step]]) -> None:
        self.scripts = [list(s) for s in scripts]
        self.requests: list[bytes] = []
        self.accepted = 0
        self.closed = 0
        self.url = ""
        self.got_request = anyio.Event()
        self._closed_events: list[anyio.Event] = []

    async def wait_closed(self, count: int) -> None:
        """Wait until the server has seen ``count`` connections end."""
        while self.closed < count:
            event = anyio.Event()
            self._closed_events.append(event)
            await event.wait()

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        self.accepted += 1
        try:
            async with stream:
                await self._serve(stream)
        finally:
            self.closed += 1
            events, self._closed_events = self._closed_events, []
            for event in events:
                event.set()

    async def _serve(self, stream: anyio.abc.ByteStream) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                try:
                    buf += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                buf += await stream.receive()
            self.requests.append(head + b"\r\n\r\n" + buf[:length])
            buf = buf[length:]
            self.got_request.set()
            script = self.scripts.pop(0) if self.scripts else [ok()]
            for step in script:
                if isinstance(step, bytes):
                    await stream.send(step)
                elif isinstance(step, anyio.Event):
                    await step.wait()
                elif step == CLOSE:
                    return
                else:  # HANG: never answer, but notice when the client gives up
                    assert step == HANG
                    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                        while True:
                            await stream.receive()
                    return


@contextlib.asynccontextmanager
async def scripted(*scripts: Sequence[Step]) -> AsyncIterator[Scripted]:
    """Serve ``scripts`` (one per request, then 200 "ok") on 127.0.0.1 until the block ends."""
    server = Scripted(scripts)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        server.url = f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        tg.start_soon(listener.serve, server.handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def client(transport: FastTransport, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=5.0, **kwargs)


# -- framing ----------------------------------------------------------------------------------


async def test_content_length_body_and_request_bytes() -> None:
    async with (
        scripted([ok(b'{"id": 1}', b"Content-Type: application/json")]) as srv,
        client(FastTransport(4)) as http,
    ):
        headers = {**HEADERS, "From": "me@example.com"}  # as long as "Host"
        r = await http.post(srv.url + "/v2/x?a=1&b=%20", json={"k": "v"}, headers=headers)
        assert r.status_code == 200
        assert r.json() == {"id": 1}
        assert r.http_version == "HTTP/1.1"
        assert r.reason_phrase == "OK"
        assert r.request.url == srv.url + "/v2/x?a=1&b=%20"
        assert r.headers["content-type"] == "application/json"
    head, _, body = srv.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v2/x?a=1&b=%20 HTTP/1.1"
    assert lines[1] == b"Host: " + srv.url.removeprefix("http://").encode()
    assert [line for line in lines if line.lower().startswith(b"host:")] == [lines[1]]
    assert b"Authorization: OAuth t" in lines
    assert b"X-Org-ID: 1" in lines
    assert b"Content-Length: %d" % len(body) in lines
    assert body == b'{"k":"v"}'


async def test_streamed_request_body_is_sent_with_content_length() -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cd"

    async with scripted() as srv, client(FastTransport(1)) as http:
        r = await http.put(srv.url + "/p", content=parts())
        assert r.text == "ok"
    head, _, body = srv.requests[0].partition(b"\r\n\r\n")
    assert body == b"abcd"
    assert b"Content-Length: 4" in head.split(b"\r\n")
    assert b"transfer-encoding" not in head.lower()


async def test_host_header_is_added_when_missing() -> None:
    async with scripted() as srv, client(FastTransport(1)) as http:
        request = http.build_request("GET", srv.url + "/h")
        del request.headers["Host"]
        assert (await http.send(request)).text == "ok"
    lines = srv.requests[0].split(b"\r\n")
    assert lines[:2] == [b"GET /h HTTP/1.1", b"Host: " + srv.url.removeprefix("http://").encode()]


async def test_header_injection_is_refused() -> None:
    async with scripted() as srv, client(FastTransport(1)) as http:
        with pytest.raises(httpx.LocalProtocolError):
            await http.get(srv.url, headers={"X-Evil": "a\r\nX-Injected: 1"})
        assert (await http.get(srv.url)).text == "ok"  # nothing was sent; the pool is fine
    assert len(srv.requests) == 1


async def test_chunked_body_with_extensions_and_trailers() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nWiki\r\n5;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n"
        b"0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n"
    )
    async with scripted([reply[:60], reply[60:]]) as srv, client(FastTransport(1)) as http:
        r = await http.get(srv.url)
        assert r.content == b"Wikipedia in\r\n\r\nchunks."
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 1  # the connection was reused after a chunked body


async def test_read_to_eof_body_is_not_reused() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, world"
    async with scripted([reply, CLOSE]) as srv, client(FastTransport(1)) as http:
        assert (await http.get(srv.url)).text == "hello, world"
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 2


async def test_http10_response_without_keep_alive_is_not_reused() -> None:
    reply = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    async with scripted([reply]) as srv, client(FastTransport(1)) as http:
        r = await http.get(srv.url)
        assert (r.text, r.http_version) == ("hi", "HTTP/1.0")
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 2


async def test_keep_alive_reuses_one_connection() -> None:
    async with scripted() as srv, client(FastTransport(4)) as http:
        for _ in range(5):
            assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 1
    assert len(srv.requests) == 5


async def test_connection_close_is_not_reused() -> None:
    # The server keeps its end open: the client must close it because of the header.
    async with (
        scripted([ok(b"bye", b"Connection: close")]) as srv,
        client(FastTransport(1)) as http,
    ):
        assert (await http.get(srv.url)).text == "bye"
        await srv.wait_closed(1)
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 2


async def test_request_with_connection_close_is_not_reused() -> None:
    async with scripted() as srv, client(FastTransport(1)) as http:
        assert (await http.get(srv.url, headers={"Connection": "close"})).text == "ok"
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 2


async def test_interim_1xx_responses_are_skipped() -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + ok(b"final")
    )
    async with scripted([reply]) as srv, client(FastTransport(1)) as http:
        r = await http.post(srv.url, content=b"x")
        assert (r.status_code, r.text) == (200, "final")
        assert "link" not in r.headers
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 1


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses(status: int) -> None:
    # A Content-Length on a 304 describes the resource, not a body that follows.
    reply = b"HTTP/1.1 %d Whatever\r\nContent-Length: 10\r\n\r\n" % status
    async with scripted([reply]) as srv, client(FastTransport(1)) as http:
        r = await http.get(srv.url)
        assert (r.status_code, r.content) == (status, b"")
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 1


async def test_head_response_has_no_body() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    async with scripted([reply]) as srv, client(FastTransport(1)) as http:
        r = await http.head(srv.url)
        assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "5")
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 1


async def test_gzip_body_is_decoded_by_httpx() -> None:
    text = b'{"hello": "world"}' * 50
    reply = ok(gzip.compress(text), b"Content-Encoding: gzip")
    async with scripted([reply]) as srv, client(FastTransport(1)) as http:
        r = await http.get(srv.url)
        assert r.content == text
    assert b"accept-encoding: gzip" in srv.requests[0].lower()


async def test_a_body_that_decodes_past_the_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A small gzip body may decode to gigabytes: the cap applies to the decoded size too, on
    # both paths (httpx's AsyncClient and send_raw) and through the library's client.
    monkeypatch.setattr(_wire, "MAX_BODY", 100_000)
    bomb = ok(gzip.compress(b"0" * 100_001), b"Content-Encoding: gzip")
    fits = ok(gzip.compress(b"0" * 100_000), b"Content-Encoding: gzip")
    assert len(bomb) < 1000
    transport = FastTransport(1)
    async with scripted([bomb], [fits], [bomb], [bomb]) as srv:
        async with client(transport) as http:
            with pytest.raises(httpx.RemoteProtocolError, match="once decoded"):
                await http.get(srv.url)
            r = await http.get(srv.url)
            assert r.content == b"0" * 100_000
            assert "content-encoding" not in r.headers  # decoded by the transport
            assert r.headers["content-length"] == "100000"
            with pytest.raises(httpx.RemoteProtocolError, match="once decoded"):
                await transport.send_raw(prepared(transport, srv.url), "GET", "/", None, TIMEOUTS)
        retry = RetryPolicy(attempts=1)
        async with TrackerClient("t", org_id="1", base_url=srv.url, retry=retry) as tracker:
            with pytest.raises(TransportError, match="once decoded"):
                await tracker.links.get("TEST-1")


async def test_streaming_api_reads_the_buffered_body() -> None:
    async with scripted([ok(b"x" * 100_000)]) as srv, client(FastTransport(1)) as http:
        async with http.stream("GET", srv.url) as r:
            assert b"".join([chunk async for chunk in r.aiter_bytes()]) == b"x" * 100_000
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 1


async def test_folded_and_repeated_headers() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    async with scripted([reply]) as srv, client(FastTransport(1)) as http:
        r = await http.get(srv.url)
        assert r.headers["x-folded"] == "a b"
        assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]


# -- incremental parsing: every response fed in pieces of every size ------------------------


class _Pieces(anyio.abc.ByteStream):
    """A stream that returns ``data`` ``size`` bytes at a time, then EOF."""

    def __init__(self, data: bytes, size: int) -> None:
        self._chunks = [data[i : i + size] for i in range(0, len(data), size)]

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.lowlevel.checkpoint()
        if not self._chunks:
            raise anyio.EndOfStream
        return self._chunks.pop(0)

    async def send(self, item: bytes) -> None:  # pragma: no cover - never called
        raise NotImplementedError

    async def send_eof(self) -> None:  # pragma: no cover - never called
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


CHUNKED = (
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"
)
FRAMINGS = [
    (ok(b"hello"), False, b"hello", True),
    (CHUNKED, False, b"abc0123456789abcdef", True),
    (CHUNKED.replace(b"0\r\n\r\n", b"0\r\nT: 1\r\n\r\n"), False, b"abc0123456789abcdef", True),
    (b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"x"), False, b"x", True),
    (b"HTTP/1.1 200 OK\r\n\r\nto the end", False, b"to the end", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", True, b"", True),
]


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
@pytest.mark.parametrize(("data", "head", "body", "reusable"), FRAMINGS)
async def test_framing_in_pieces(
    data: bytes, head: bool, body: bytes, reusable: bool, size: int
) -> None:
    transport = FastTransport(1)
    with anyio.CancelScope() as scope:
        answer = await transport._read_response(_Pieces(data, size), scope, None, head)
    assert answer.body == body
    assert answer.reusable is reusable


async def test_bytes_after_the_response_prevent_reuse() -> None:
    transport = FastTransport(1)
    with anyio.CancelScope() as scope:
        stream = _Pieces(ok(b"hello") + b"junk", 1000)
        answer = await transport._read_response(stream, scope, None, False)
    assert (answer.body, answer.reusable) == (b"hello", False)


MALFORMED = [
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/2 200 OK\r\n\r\n",
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw",
    b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20000 + b"\r\n",
]


@pytest.mark.parametrize("data", MALFORMED, ids=range(len(MALFORMED)))
async def test_malformed_responses(data: bytes) -> None:
    transport = FastTransport(1)
    with anyio.CancelScope() as scope, pytest.raises(httpx.RemoteProtocolError):
        await transport._read_response(_Pieces(data, 4096), scope, None, False)


# -- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "partial",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ],
    ids=["nothing", "mid-headers", "mid-body", "mid-chunk"],
)
async def test_server_closing_early_is_a_remote_protocol_error(partial: bytes) -> None:
    async with scripted([partial, CLOSE]) as srv, client(FastTransport(1)) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(srv.url)
        assert (await http.get(srv.url)).text == "ok"  # a fresh connection
    assert srv.accepted == 2


async def test_read_timeout() -> None:
    async with scripted([HANG]) as srv, client(FastTransport(1)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(srv.url, timeout=httpx.Timeout(5.0, read=0.05))
        await srv.wait_closed(1)  # the client closed the timed-out connection
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 2


async def test_read_timeout_applies_to_each_read_of_a_body() -> None:
    stall = anyio.Event()  # never set: the body stops half-way
    script: list[Step] = [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", stall]
    async with scripted(script) as srv, client(FastTransport(1)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(srv.url, timeout=httpx.Timeout(5.0, read=0.05))
        stall.set()


async def test_write_timeout() -> None:
    # A listening socket that never accepts: the kernel completes the handshake and buffers
    # what fits, then the client's write blocks.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        async with client(FastTransport(1)) as http:
            with pytest.raises(httpx.WriteTimeout):
                # Far more than the loopback socket buffers hold.
                await http.post(url, content=b"x" * 32_000_000, timeout=httpx.Timeout(5, write=0.1))


async def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        async with client(FastTransport(2)) as http:
            for _ in range(3):  # and each failure gives its slot back
                with pytest.raises(httpx.ConnectError):
                    await http.get(f"http://127.0.0.1:{port}/")


async def test_connect_timeout() -> None:
    async with scripted() as srv, client(FastTransport(1)) as http:
        with pytest.raises(httpx.ConnectTimeout):
            await http.get(srv.url, timeout=httpx.Timeout(5.0, connect=0))
        assert (await http.get(srv.url)).text == "ok"  # the slot came back


async def test_unsupported_scheme() -> None:
    async with client(FastTransport(1)) as http:
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.get("ftp://127.0.0.1/")


# -- the pool -------------------------------------------------------------------------------


async def test_full_pool_waits_for_a_returned_connection() -> None:
    release = anyio.Event()
    async with scripted([release, ok(b"first")]) as srv, client(FastTransport(1)) as http:
        results: list[str] = []

        async def get() -> None:
            results.append((await http.get(srv.url)).text)

        async with anyio.create_task_group() as tg:
            tg.start_soon(get)
            await srv.got_request.wait()
            tg.start_soon(get)
            await anyio.wait_all_tasks_blocked()  # the second one waits for the connection
            assert len(srv.requests) == 1
            release.set()
        assert results == ["first", "ok"]
    assert srv.accepted == 1


async def test_concurrent_requests_share_at_most_size_connections() -> None:
    async with scripted() as srv, client(FastTransport(8)) as http:
        texts: list[str] = []

        async def get() -> None:
            texts.append((await http.get(srv.url)).text)

        async with anyio.create_task_group() as tg:
            for _ in range(64):
                tg.start_soon(get)
        assert texts == ["ok"] * 64
    assert 1 <= srv.accepted <= 8


async def test_pool_timeout() -> None:
    async with scripted([HANG]) as srv, client(FastTransport(1)) as http:
        async with anyio.create_task_group() as tg:
            tg.start_soon(http.get, srv.url)
            await srv.got_request.wait()
            with pytest.raises(httpx.PoolTimeout):
                await http.get(srv.url, timeout=httpx.Timeout(5.0, pool=0.05))
            tg.cancel_scope.cancel()
        assert (await http.get(srv.url)).text == "ok"  # the cancelled one gave its slot back
    assert srv.accepted == 2


async def test_a_closed_connection_lets_a_waiter_open_another() -> None:
    release = anyio.Event()
    script: list[Step] = [
        release,
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n1",
    ]
    async with scripted(script) as srv, client(FastTransport(1)) as http:
        results: list[str] = []

        async def get() -> None:
            results.append((await http.get(srv.url)).text)

        async with anyio.create_task_group() as tg:
            tg.start_soon(get)
            await srv.got_request.wait()
            tg.start_soon(get)
            await anyio.wait_all_tasks_blocked()
            release.set()
        assert results == ["1", "ok"]
    assert srv.accepted == 2


async def test_cancelled_request_closes_its_connection() -> None:
    async with scripted([HANG]) as srv, client(FastTransport(1)) as http:
        async with anyio.create_task_group() as tg:
            tg.start_soon(http.get, srv.url)
            await srv.got_request.wait()
            tg.cancel_scope.cancel()
        await srv.wait_closed(1)  # not left half-read in the pool
        assert (await http.get(srv.url)).text == "ok"
        assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 2


async def test_cancelled_waiter_leaves_the_queue() -> None:
    release = anyio.Event()
    async with scripted([release, ok(b"first")]) as srv, client(FastTransport(1)) as http:
        results: list[str] = []

        async def first() -> None:
            results.append((await http.get(srv.url)).text)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await srv.got_request.wait()
            async with anyio.create_task_group() as waiting:
                waiting.start_soon(http.get, srv.url)
                await anyio.wait_all_tasks_blocked()  # it waits for the only connection
                waiting.cancel_scope.cancel()
            release.set()
        assert results == ["first"]
        with anyio.fail_after(5):  # had the cancelled waiter kept its place, this would hang
            assert (await http.get(srv.url)).text == "ok"
    assert srv.accepted == 1


async def test_expired_idle_connection_is_not_reused() -> None:
    async with scripted() as srv, client(FastTransport(1, keepalive_expiry=0)) as http:
        for _ in range(3):
            assert (await http.get(srv.url)).text == "ok"
        await srv.wait_closed(2)  # the expired ones were closed, not leaked
    assert srv.accepted == 3


async def test_idle_age_uses_the_clock() -> None:
    now = [0.0]
    transport = FastTransport(1, keepalive_expiry=10.0)
    transport._clock = lambda: now[0]
    async with scripted() as srv, client(transport) as http:
        await http.get(srv.url)
        now[0] = 9.0
        await http.get(srv.url)
        assert srv.accepted == 1
        now[0] = 19.5
        await http.get(srv.url)
        assert srv.accepted == 2


async def test_idle_connection_closed_by_the_server_is_not_reused() -> None:
    async with scripted([ok(), CLOSE]) as srv, client(FastTransport(1)) as http:
        assert (await http.get(srv.url)).text == "ok"
        await srv.wait_closed(1)  # the server dropped the idle connection, saying nothing
        assert (await http.get(srv.url)).text == "ok"  # not a RemoteProtocolError
    assert srv.accepted == 2


async def test_aclose_closes_every_connection() -> None:
    async with scripted() as srv:
        transport = FastTransport(4)
        async with client(transport) as http, anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(http.get, srv.url)
        assert srv.accepted >= 1
        await srv.wait_closed(srv.accepted)
        with pytest.raises(RuntimeError):
            await transport.handle_async_request(httpx.Request("GET", srv.url))
    gc.collect()


async def test_aclose_fails_requests_in_flight() -> None:
    async with scripted([HANG]) as srv:
        transport = FastTransport(1)
        async with client(transport) as http:
            errors: list[BaseException] = []

            async def get() -> None:
                try:
                    await http.get(srv.url)
                except httpx.TransportError as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(get)
                await srv.got_request.wait()
                await transport.aclose()
            assert [type(e) for e in errors] == [httpx.ReadError]


async def test_connections_use_tcp_nodelay() -> None:
    transport = FastTransport(1)
    async with scripted() as srv, client(transport) as http:
        await http.get(srv.url)
        (pool,) = transport._pools.values()
        (conn,) = pool.free
        assert conn.sock is not None
        assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


# -- TLS ------------------------------------------------------------------------------------


async def test_tls_with_a_self_signed_certificate() -> None:
    trustme = pytest.importorskip("trustme")
    from anyio.streams.tls import TLSListener

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    server = Scripted([])
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    listener = TLSListener(tcp, server_context, standard_compatible=False)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.handle)
        port = tcp.extra(SocketAttribute.local_port)
        async with client(FastTransport(2, verify=client_context)) as http:
            for host in ("localhost", "127.0.0.1"):  # SNI name and IP address check
                r = await http.get(f"https://{host}:{port}/secure")
                assert (r.status_code, r.text) == (200, "ok")
            assert (await http.get(f"https://localhost:{port}/")).text == "ok"
        assert server.accepted == 2  # one per origin, reused
        async with client(FastTransport(1)) as http:  # default trust: not this CA
            with pytest.raises(httpx.ConnectError):
                await http.get(f"https://localhost:{port}/")
        async with client(FastTransport(1, verify=False)) as http:
            assert (await http.get(f"https://localhost:{port}/")).text == "ok"
        tg.cancel_scope.cancel()


# -- the lean path: prepare() once, send_raw() per request ------------------------------------

TIMEOUTS = dict.fromkeys(("connect", "read", "write", "pool"), 5.0)


def prepared(transport: FastTransport, url: str, **headers: str) -> Any:
    return transport.prepare(httpx.URL(url), httpx.Headers({**HEADERS, **headers}))


async def test_send_raw_writes_the_prepared_head_and_body() -> None:
    transport = FastTransport(2)
    async with scripted([ok(b"[1]", b"X-Total-Count: 7")]) as srv:
        prep = prepared(transport, srv.url + "/api/", Accept="application/json")
        status, headers, body = await transport.send_raw(
            prep, "POST", "/v2/issues/TEST-1/links", b'{"a": 1}', TIMEOUTS
        )
        assert (status, body) == (200, b"[1]")
        assert (b"X-Total-Count", b"7") in headers
        assert (await transport.send_raw(prep, "GET", "/v2/x", None, TIMEOUTS))[2] == b"ok"
    await transport.aclose()
    post, get = srv.requests
    head, _, body = post.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /api/v2/issues/TEST-1/links HTTP/1.1"
    assert lines[1] == b"Host: " + srv.url.removeprefix("http://").encode()
    assert {b"Authorization: OAuth t", b"X-Org-ID: 1", b"Accept: application/json"} <= set(lines)
    assert b"Content-Length: 8" in lines
    assert body == b'{"a": 1}'
    assert get.startswith(b"GET /api/v2/x HTTP/1.1\r\n")
    assert b"content-length" not in get.lower()  # no body, no length
    assert srv.accepted == 1  # one keep-alive connection for both


async def test_send_raw_decodes_gzip_and_reads_no_body_after_head() -> None:
    text = b'{"hello": "world"}' * 50
    replies = [
        ok(gzip.compress(text), b"Content-Encoding: gzip"),
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    ]
    transport = FastTransport(1)
    async with scripted(*([r] for r in replies)) as srv:
        prep = prepared(transport, srv.url)
        assert (await transport.send_raw(prep, "GET", "/z", None, TIMEOUTS))[2] == text
        status, headers, body = await transport.send_raw(prep, "HEAD", "/h", None, TIMEOUTS)
        assert (status, body, (b"Content-Length", b"5") in headers) == (200, b"", True)
        assert (await transport.send_raw(prep, "GET", "/z", None, TIMEOUTS))[2] == b"ok"
    await transport.aclose()
    assert srv.accepted == 1


async def test_send_raw_read_timeout_and_connection_close_header() -> None:
    transport = FastTransport(1)
    async with scripted([HANG]) as srv:
        prep = prepared(transport, srv.url)
        with pytest.raises(httpx.ReadTimeout):
            await transport.send_raw(prep, "GET", "/", None, {**TIMEOUTS, "read": 0.05})
        await srv.wait_closed(1)
        closing = prepared(transport, srv.url, Connection="close")
        assert (await transport.send_raw(closing, "GET", "/", None, TIMEOUTS))[2] == b"ok"
        await srv.wait_closed(2)  # not kept: the request said "close"
    await transport.aclose()


def test_prepared_repr_names_headers_without_their_values() -> None:
    prep = prepared(FastTransport(1), "http://127.0.0.1/", Authorization="OAuth s3cret-token")
    assert "s3cret" not in repr(prep)
    assert "authorization" in repr(prep).lower()
    assert b"Authorization: OAuth s3cret-token\r\n" in prep.block


def test_prepare_refuses_header_injection_and_other_schemes() -> None:
    transport = FastTransport(1)
    with pytest.raises(httpx.LocalProtocolError):
        prepared(transport, "http://127.0.0.1/", **{"X-Evil": "a\r\nX-Injected: 1"})
    with pytest.raises(httpx.UnsupportedProtocol):
        prepared(transport, "ftp://127.0.0.1/")


@pytest.mark.parametrize(
    ("path", "safe"),
    [
        ("/v2/issues/TEST-1/links", True),
        ("/v2/issues/5f1e0123456789abcdefABCD/links/42", True),
        ("/v2/linktypes", True),
        ("/v2/issues/a b/links", False),
        ("/v2/x?y=1", False),
        ("/v2/%zz", False),
        ("/v2/\u043a\u043b\u044e\u0447", False),
        ("/v2/x\r\nX: 1", False),
        ("v2/x", False),
    ],
)
def test_safe_path(path: str, safe: bool) -> None:
    assert safe_path(path) is safe


async def test_client_sends_other_paths_through_httpx() -> None:
    # Paths the lean path would have to quote (none the library builds today) go through
    # httpx, which quotes them, and the same pool of connections.
    async with scripted([b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"]) as srv:
        retry = RetryPolicy(attempts=1)
        async with TrackerClient("t", org_id="1", base_url=srv.url, retry=retry) as tracker:
            with pytest.raises(ServerError):
                await tracker._transport.send(Request("GET", "/v2/odd path"))
            resp = await tracker._transport.send(Request("GET", "/v2/issues/TEST-1/links"))
            assert resp.content == b"ok"
    assert srv.requests[0].startswith(b"GET /v2/odd%20path HTTP/1.1\r\n")
    assert srv.requests[1].startswith(b"GET /v2/issues/TEST-1/links HTTP/1.1\r\n")
    assert srv.accepted == 1


async def test_client_maps_an_undecodable_body_to_a_transport_error() -> None:
    bad = ok(b"this is not gzip", b"Content-Encoding: gzip")
    async with scripted([bad]) as srv:
        retry = RetryPolicy(attempts=1)
        async with TrackerClient("t", org_id="1", base_url=srv.url, retry=retry) as tracker:
            with pytest.raises(TransportError, match="DecodingError"):
                await tracker.links.get("TEST-1")


# -- the fake Tracker and the library -------------------------------------------------------


async def test_fake_tracker_over_loopback() -> None:
    fake = FakeTracker(queues={"TEST": 10}, seed=1)
    with fake.serve() as base_url:
        async with client(FastTransport(8), base_url=base_url, headers=HEADERS) as http:
            r = await http.post(
                "/v2/issues/TEST-1/links", json={"relationship": "depends on", "issue": "TEST-2"}
            )
            assert r.status_code == 201
            link_id = r.json()["id"]
            r = await http.get("/v2/issues/TEST-1/links")
            assert [link["id"] for link in r.json()] == [link_id]

            statuses: list[int] = []

            async def get() -> None:
                statuses.append((await http.get("/v2/issues/TEST-1/links")).status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(64):
                    tg.start_soon(get)
            assert statuses == [200] * 64

            r = await http.delete(f"/v2/issues/TEST-1/links/{link_id}")
            assert (r.status_code, r.content) == (204, b"")
            assert (await http.get("/v2/issues/TEST-1/links")).json() == []
    assert not fake.has_link("TEST-1", "TEST-2", "depends on")


async def test_fake_tracker_drops_are_remote_protocol_errors() -> None:
    fake = FakeTracker(queues={"TEST": 10}, drop_rate=1.0, seed=1)
    with fake.serve() as base_url:
        async with client(FastTransport(2), base_url=base_url, headers=HEADERS) as http:
            for _ in range(3):
                with pytest.raises(httpx.RemoteProtocolError):
                    await http.get("/v2/issues/TEST-1/links")


async def test_tracker_client_through_fast_transport() -> None:
    fake = FakeTracker(queues={"TEST": 20}, seed=2)
    with fake.serve() as base_url:
        async with TrackerClient(
            "t", org_id="1", base_url=base_url, transport=FastTransport(16)
        ) as tracker:
            link = await tracker.links.create("TEST-1", "TEST-2", "depends on")
            assert link.target.key == "TEST-2"
            (seen,) = await tracker.links.get("TEST-2")
            assert (seen.id, seen.target.key) == (link.id, "TEST-1")

            async def create(n: int) -> None:
                await tracker.links.create("TEST-3", f"TEST-{n}", "relates")

            async with anyio.create_task_group() as tg:
                for n in range(4, 20):
                    tg.start_soon(create, n)
            assert len(await tracker.links.get("TEST-3")) == 16
    assert fake.has_link("TEST-2", "TEST-1", "is dependent by")


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \x0bchunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ],
    ids=["bare-lf", "status-99", "vt-chunked"],
)
async def test_client_maps_a_protocol_violation_to_a_transport_error_at_once(reply: bytes) -> None:
    # The server keeps the connection open after its bad head: the error must come from the
    # bytes, not from the 30 s read timeout.
    hold = anyio.Event()
    async with scripted([reply, hold]) as srv:
        retry = RetryPolicy(attempts=1)
        async with TrackerClient("t", org_id="1", base_url=srv.url, retry=retry) as tracker:
            with anyio.fail_after(10), pytest.raises(TransportError, match="RemoteProtocolError"):
                await tracker.links.get("TEST-1")
        hold.set()


async def test_interim_responses_are_capped_over_a_socket() -> None:
    hint = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    hold = anyio.Event()  # never answers finally: the cap, not the timeout, ends the request
    async with scripted([hint * 101, hold]) as srv, client(FastTransport(1)) as http:
        with anyio.fail_after(10), pytest.raises(httpx.RemoteProtocolError, match="interim"):
            await http.get(srv.url)
        hold.set()
        assert (await http.get(srv.url)).text == "ok"  # on a new connection
    assert srv.accepted == 2
