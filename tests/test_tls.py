"""TLS over loopback with trustme certificates: verify=, and certificate failures fail at once."""

from __future__ import annotations

import contextlib
import datetime
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
import trustme
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSStream

from tracker_links import InvalidInputError, TrackerClient, TransportError

from .test_http11 import Scripted

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("error::ResourceWarning")]

LINKS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"


class Server:
    """A TLS (or plain) server on 127.0.0.1 that counts the TCP connections it accepted."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.context = context
        self.connections = 0
        self.app = Scripted([[LINKS]] * 20)
        self.port = 0

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        self.connections += 1
        if self.context is None:  # plain HTTP: answers whatever it gets with a 400
            async with stream:
                with contextlib.suppress(Exception):
                    await stream.receive()
                    await stream.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        async with stream:  # closed however the handshake ends (or the test, cancelling it)
            try:
                tls = await TLSStream.wrap(
                    stream, server_side=True, ssl_context=self.context, standard_compatible=False
                )
            except Exception:
                return
            await self.app.handle(tls)


@contextlib.asynccontextmanager
async def serving(context: ssl.SSLContext | None) -> AsyncIterator[Server]:
    server = Server(context)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        server.port = listener.extra(SocketAttribute.local_port)
        tg.start_soon(listener.serve, server.handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def server_context(ca: trustme.CA, *hosts: str, **cert: datetime.datetime) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hosts, **cert).configure_cert(context)
    return context


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_path(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def tracker(port: int, host: str = "localhost", **kwargs: object) -> TrackerClient:
    return TrackerClient("t0ken", org_id="1", base_url=f"https://{host}:{port}", **kwargs)  # type: ignore[arg-type]


async def test_verify_with_a_ca_bundle_path_works(ca: trustme.CA, ca_path: str) -> None:
    async with (
        serving(server_context(ca, "localhost")) as srv,
        tracker(srv.port, verify=ca_path) as client,
    ):
        assert await client.links.get("TEST-1") == []
        assert await client.links.get("TEST-2") == []
    assert srv.connections == 1


async def test_verify_with_an_ssl_context_leaves_it_unchanged(ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(["h2", "http/1.1"])  # the caller's choice, for other uses
    async with (
        serving(server_context(ca, "localhost")) as srv,
        tracker(srv.port, verify=context) as client,
    ):
        assert await client.links.get("TEST-1") == []
    h2_only = server_context(ca, "localhost")
    h2_only.set_alpn_protocols(["h2"])
    async with serving(h2_only) as srv:
        stream = await anyio.connect_tcp(
            "localhost", srv.port, ssl_context=context, tls_standard_compatible=False
        )
        async with stream:  # the context still offers h2: its ALPN was not overwritten
            assert stream.extra(TLSAttribute.alpn_protocol) == "h2"
        connections = srv.connections
        sleeps = Sleeps()
        async with tracker(srv.port, verify=context, sleep=sleeps) as client:
            with pytest.raises(TransportError, match="set_alpn_protocols") as info:
                await client.links.get("TEST-1")
        # A context that offers h2 is no hiccup: it fails at once, as a certificate does.
        assert srv.connections == connections + 1
        assert sleeps.calls == []
        assert info.value.connect_failed
        assert "localhost" in str(info.value)


async def test_verify_false_works_on_loopback_and_is_refused_elsewhere(ca: trustme.CA) -> None:
    async with (
        serving(server_context(ca, "localhost")) as srv,
        tracker(srv.port, verify=False) as client,
    ):
        assert await client.links.get("TEST-1") == []
    with pytest.raises(InvalidInputError, match="loopback"):
        TrackerClient("t", org_id="1", verify=False)


async def test_ssl_cert_file_is_honoured(
    ca: trustme.CA, ca_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", ca_path)
    async with serving(server_context(ca, "localhost")) as srv, tracker(srv.port) as client:
        assert await client.links.get("TEST-1") == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("untrusted", "self.signed|unable to get local issuer|not accepted"),
        ("wrong-host", "Hostname mismatch|not valid for|IP address mismatch"),
        ("expired", "expired"),
        ("plain-port", "does not speak TLS"),
    ],
)
async def test_a_certificate_failure_fails_at_once(
    ca: trustme.CA, ca_path: str, case: str, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    kwargs: dict[str, object] = {"verify": ca_path}
    context: ssl.SSLContext | None
    if case == "untrusted":
        context = server_context(ca, "localhost")
        kwargs = {}  # the system's trust store does not know this CA
    elif case == "wrong-host":
        context = server_context(ca, "tracker.example")
    elif case == "expired":
        now = datetime.datetime.now(datetime.timezone.utc)
        context = server_context(
            ca,
            "localhost",
            not_before=now - datetime.timedelta(days=10),
            not_after=now - datetime.timedelta(days=1),
        )
    else:
        context = None
    sleeps = Sleeps()
    caplog.set_level(logging.WARNING, logger="tracker_links")
    async with serving(context) as srv, tracker(srv.port, sleep=sleeps, **kwargs) as client:
        with pytest.raises(TransportError, match=expected) as info:
            await client.links.get("TEST-1")
    assert srv.connections == 1  # one attempt: no retry
    assert sleeps.calls == []
    assert not [r for r in caplog.records if "retry" in r.getMessage()]
    message = str(info.value)
    assert "localhost" in message
    assert info.value.method == "GET"
    assert info.value.connect_failed  # the service was not reached (a batch stops on it)
    assert "t0ken" not in message
    assert "t0ken" not in repr(info.value)
    if case != "plain-port":
        for hint in ("verify=", "--ca-bundle", "SSL_CERT_FILE"):
            assert hint in message


async def test_through_httpx_verify_applies_and_a_failure_fails_at_once(
    ca: trustme.CA, ca_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With proxy variables set the client sends through httpx's own transport (localhost is
    # exempted from the proxy here): verify= goes there, and a failure is as final.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "localhost")
    sleeps = Sleeps()
    async with (
        serving(server_context(ca, "localhost")) as srv,
        tracker(srv.port, verify=ca_path) as client,
    ):
        assert client._transport._direct is None
        assert await client.links.get("TEST-1") == []
        async with tracker(srv.port, sleep=sleeps) as client:
            with pytest.raises(TransportError, match="not accepted"):
                await client.links.get("TEST-1")
    assert srv.connections == 2
    assert sleeps.calls == []


def test_verify_is_checked_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such CA bundle"):
        TrackerClient("t", org_id="1", verify=str(tmp_path / "missing.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(InvalidInputError, match="not a PEM CA bundle"):
        TrackerClient("t", org_id="1", verify=bad)
    with pytest.raises(InvalidInputError, match="verify= must be"):
        TrackerClient("t", org_id="1", verify=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="http_client"):
        TrackerClient("t", org_id="1", verify=False, transport=httpx.MockTransport(print))  # type: ignore[arg-type]


async def test_a_bulk_run_against_an_untrusted_certificate_stops_early(ca: trustme.CA) -> None:
    sleeps = Sleeps()
    specs = [(f"TEST-{n}", f"TEST-{n + 1}", "relates") for n in range(1, 201)]
    async with (
        serving(server_context(ca, "localhost")) as srv,
        tracker(srv.port, sleep=sleeps, max_concurrency=4) as client,
    ):
        report = await client.links.bulk_create(specs)
    statuses = [outcome.status.value for outcome in report.outcomes]
    assert len(statuses) == 200  # every item accounted for
    assert statuses.count("skipped") >= 190
    assert srv.connections <= 10  # one handshake per item tried, no retries
    assert sleeps.calls == []
