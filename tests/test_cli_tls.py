"""``--ca-bundle``: the command line against the fake behind TLS with a private CA (trustme)."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.abc
import anyio.from_thread
import pytest
import trustme
from anyio.streams.tls import TLSStream

from tracker_links._cli import main
from tracker_links.testing import FakeTracker

TOKEN = "y0_secret-token-for-the-tls-tests"


@contextlib.contextmanager
def tls_in_front(target_port: int, context: ssl.SSLContext) -> Iterator[int]:
    """A TLS terminator on 127.0.0.1 that forwards each connection to ``target_port``."""

    async def pipe(src: anyio.abc.ByteStream, dst: anyio.abc.ByteStream) -> None:
        with contextlib.suppress(Exception):
            async for chunk in src:
                await dst.send(chunk)
        with contextlib.suppress(Exception):
            await dst.send_eof()

    async def handle(client: anyio.abc.SocketStream) -> None:
        async with client:
            try:
                tls = await TLSStream.wrap(
                    client, server_side=True, ssl_context=context, standard_compatible=False
                )
            except Exception:
                return  # the client refused our certificate
            upstream = await anyio.connect_tcp("127.0.0.1", target_port)
            async with upstream, anyio.create_task_group() as tg:
                tg.start_soon(pipe, tls, upstream)
                await pipe(upstream, tls)
                tg.cancel_scope.cancel()

    async def serve(*, task_status: anyio.abc.TaskStatus[tuple[int, anyio.CancelScope]]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with listener:
            with anyio.CancelScope() as scope:
                task_status.started((listener.extra(anyio.abc.SocketAttribute.local_port), scope))
                await listener.serve(handle)

    with anyio.from_thread.start_blocking_portal() as portal:
        _, (port, scope) = portal.start_task(serve)
        try:
            yield port
        finally:
            portal.call(scope.cancel)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def served_over_tls(
    ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeTracker, str]]:
    """The fake behind TLS (a certificate for localhost from the test CA); the CLI's env set."""
    for name in list(os.environ):
        if name.startswith(("TRACKER_", "SSL_CERT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TRACKER_TOKEN", TOKEN)
    monkeypatch.setenv("TRACKER_ORG_ID", "1")
    fake = FakeTracker(queues={"TEST": 5}, token=TOKEN)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    with fake.serve() as url, tls_in_front(int(url.rsplit(":", 1)[1]), context) as port:
        monkeypatch.setenv("TRACKER_BASE_URL", f"https://localhost:{port}")
        yield fake, f"https://localhost:{port}"


def test_ca_bundle_trusts_a_private_ca(
    served_over_tls: tuple[FakeTracker, str],
    ca: trustme.CA,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake, _ = served_over_tls
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    # Without the bundle the certificate is not trusted: it fails at once, with the reason.
    assert main(["types"]) == 1
    err = capsys.readouterr().err
    assert "certificate" in err.lower()
    assert fake.stats.total == 0
    # With it, the command goes through TLS to the fake.
    assert main(["link", "TEST-1", "relates", "TEST-2", "--ca-bundle", str(bundle)]) == 0
    assert "created link" in capsys.readouterr().out
    assert fake.has_link("TEST-1", "TEST-2", "relates")
    assert main(["--ca-bundle", str(bundle), "get", "TEST-2"]) == 0  # before the command too


def test_a_missing_ca_bundle_is_exit_2_before_any_request(
    served_over_tls: tuple[FakeTracker, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, _ = served_over_tls
    assert main(["types", "--ca-bundle", str(tmp_path / "nope.pem")]) == 2
    assert "nope.pem" in capsys.readouterr().err
    assert fake.stats.total == 0
