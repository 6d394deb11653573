"""FakeTracker: the public face of the fake, tying the core to its two ways in."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from ._state import Clock, Reply, TrackerState

if TYPE_CHECKING:
    import httpx

    from .._client import TrackerClient
    from ._app import FakeASGIApp

__all__ = ["FakeTracker"]

Sleep = Callable[[float], Awaitable[Any]]


class FakeTracker(TrackerState):
    """A faithful fake of the Yandex Tracker links API, in process or over real loopback.

    It serves ``POST``/``GET /v2/issues/<key>/links``, ``DELETE …/links/<id>``,
    ``GET /v2/linktypes``, ``GET /v2/issues/<key>`` and ``POST /v2/issues/_search`` (page and
    scroll modes) with the service's JSON shapes and error bodies. ``queues={"TEST": 100}``
    creates issues ``TEST-1`` … ``TEST-100``; :meth:`add_issue` adds more.

    The knobs, all seeded by ``seed`` through one ``random.Random``:

    - ``latency`` + uniform(0, ``jitter``) seconds, slept with ``sleep`` before each answer;
    - ``rate_limit`` requests/s (a token bucket of ``rate_burst``, refilled by ``clock``): 429
      with ``Retry-After: <retry_after>`` (no header if ``retry_after`` is ``None``);
    - ``max_inflight``: 429 beyond that many requests in flight;
    - ``fail_rate``: an injected 500, 502 or 503, and nothing written;
    - ``drop_rate``: the connection is closed with no answer; a share ``drop_after_write`` of
      those happen *after* the request took effect (a naive retry then duplicates a link);
    - ``list_lag``: a link shows in ``GET …/links`` only that many seconds after its creation;
    - ``duplicate_status``: the answer (409 or 422) to creating a link that exists in either
      spelling; ``None`` stores the duplicate (counted in ``stats.duplicates_created``);
    - ``token``: if set, only that token is accepted (any ``OAuth``/``Bearer`` one otherwise).

    Knobs are plain attributes and may be changed between requests. Example::

        fake = FakeTracker(queues={"TEST": 10}, seed=1)
        async with fake.client() as client:
            await client.links.create("TEST-1", "TEST-2", "depends on")
        assert fake.has_link("TEST-2", "TEST-1", "is dependent by")
        assert fake.stats.count("POST", 201) == 1
    """

    def __init__(
        self,
        queues: Mapping[str, int] | None = None,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        rate_limit: float | None = None,
        rate_burst: int = 20,
        retry_after: float | None = 1,
        max_inflight: int | None = None,
        fail_rate: float = 0.0,
        drop_rate: float = 0.0,
        drop_after_write: float = 0.5,
        list_lag: float = 0.0,
        duplicate_status: int | None = 422,
        token: str | None = None,
        seed: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        super().__init__(
            queues,
            latency=latency,
            jitter=jitter,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            retry_after=retry_after,
            max_inflight=max_inflight,
            fail_rate=fail_rate,
            drop_rate=drop_rate,
            drop_after_write=drop_after_write,
            list_lag=list_lag,
            duplicate_status=duplicate_status,
            token=token,
            seed=seed,
            clock=clock,
        )
        self.sleep: Sleep = sleep if sleep is not None else anyio.sleep
        """How the fake waits ``latency`` (``anyio.sleep`` unless given)."""
        self._app: FakeASGIApp | None = None

    def __repr__(self) -> str:
        return (
            f"<FakeTracker issues={len(self.issues)} links={len(self.links)} "
            f"requests={self.stats.total}>"
        )

    async def respond(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        base_url: str = "http://localhost",
    ) -> Reply:
        """Answer one request as the service would, sleeping ``latency`` first.

        The one entry point of both the in-process transport and the ASGI app. A
        :class:`Reply` with ``dropped`` set means: close the connection without an answer.
        """
        early, delay = self.admit()
        try:
            if delay > 0:
                await self.sleep(delay)
            if early is not None:
                return self.finish(method, early)
            return self.answer(method, path, query, headers, body, base_url)
        finally:
            self.release()

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that calls the fake directly: no sockets, asyncio or trio.

        A dropped connection raises ``httpx.RemoteProtocolError``::

            async with httpx.AsyncClient(transport=fake.transport(),
                                         base_url="http://localhost") as http:
                r = await http.get("/v2/linktypes", headers={...})
        """
        from ._transport import FakeTransport

        return FakeTransport(self)

    @property
    def app(self) -> FakeASGIApp:
        """The fake as an ASGI application (what :meth:`serve` runs under uvicorn)."""
        if self._app is None:
            from ._app import FakeASGIApp

            self._app = FakeASGIApp(self)
        return self._app

    def client(self, **kwargs: Any) -> TrackerClient:
        """A ready :class:`tracker_links.TrackerClient` wired to this fake, in process.

        Defaults: ``token="fake-token"`` (or the fake's ``token``), ``org_id="1"``,
        ``base_url="http://localhost"``, ``transport=self.transport()``; keyword arguments
        override them (pass ``http_client=`` to use your own ``httpx.AsyncClient``)::

            async with fake.client(max_concurrency=8) as client:
                links = await client.links.get("TEST-1")
        """
        from tracker_links import TrackerClient

        params: dict[str, Any] = {"base_url": "http://localhost"}
        if "token" not in kwargs and "iam_token" not in kwargs:
            params["token"] = self.token if self.token is not None else "fake-token"
        if "org_id" not in kwargs and "cloud_org_id" not in kwargs:
            params["org_id"] = "1"
        if "http_client" not in kwargs and "transport" not in kwargs:
            params["transport"] = self.transport()
        params.update(kwargs)
        return TrackerClient(**params)

    @contextlib.contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve the fake over real loopback HTTP, in a background thread; yield its base URL.

        Runs uvicorn with its own asyncio loop in a thread, so it works whatever event loop
        (if any) the caller runs. Returns once the server accepts connections; stops it and
        joins the thread on exit. Port 0 picks a free port. Needs the ``fake`` extra
        (``pip install 'tracker-links[fake]'``)::

            with fake.serve() as base_url:      # "http://127.0.0.1:54321"
                ...

        Over loopback a drop really closes the connection mid-answer: clients see an
        ``httpx.RemoteProtocolError`` (an ``httpx.TransportError``), never a response.
        """
        from ._server import serve_in_thread

        with serve_in_thread(self, host, port) as base_url:
            yield base_url

    def serve_forever(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        on_ready: Callable[[str], object] | None = None,
    ) -> None:
        """Serve the fake over HTTP in the calling thread until Ctrl+C or SIGTERM.

        Blocking; call it from synchronous code (a command-line tool). ``on_ready`` is called
        with the base URL once the server accepts connections (useful with ``port=0``). Needs
        the ``fake`` extra.
        """
        from ._server import serve_blocking

        serve_blocking(self, host, port, on_ready=on_ready)
