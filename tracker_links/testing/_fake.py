"""FakeTracker: the public face of the fake. It holds its parts and ties them to its two ways in.

The parts, one job each: :mod:`._store` (issues, links, ids), :mod:`._faults` (latency, the
limits of :mod:`._limits`, injected failures and drops), :mod:`._auth` (tokens and users),
:mod:`._routes` (method + path to a handler), :mod:`._links` and :mod:`._search` (the
handlers), :mod:`._payloads` (the JSON). Every knob stays a public attribute of the fake,
read and written through to the part that uses it.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from ._auth import Auth
from ._context import Clock, Context
from ._faults import Faults, LimitSetting, check_inflight, check_retry_after
from ._knob import Knob as _Knob
from ._knob import check_seconds, check_share, check_status_4xx
from ._links import LinkRoutes
from ._payloads import FakeRelationship, Reply
from ._pipeline import Pipeline, Sleep
from ._routes import Router
from ._search import Search
from ._stats import FakeStats
from ._store import FakeIssue, Store, StoredLink

if TYPE_CHECKING:
    import httpx

    from .._client import TrackerClient
    from ._app import FakeASGIApp

__all__ = ["FakeTracker", "Sleep", "TrackerState"]


def _started_at(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


class FakeTracker:
    """A faithful fake of the Yandex Tracker links API, in process or over real loopback.

    It serves, under ``/v2/`` and ``/v3/`` alike, ``POST``/``GET …/issues/<key>/links``,
    ``POST …/links/_import``, ``GET``/``DELETE …/links/<id>``, ``GET …/linktypes``,
    ``GET …/issues/<key>``, ``GET …/myself``, ``POST …/issues/_search`` (page and scroll
    modes) and ``…/issues/_count``, with the service's JSON shapes and error bodies; and its own
    ``GET /_fake/stats`` (:meth:`snapshot` as JSON, no auth). ``queues={"TEST": 100}`` creates
    issues ``TEST-1`` … ``TEST-100``; :meth:`add_issue` adds more.

    The knobs, all seeded by ``seed`` through one ``random.Random``:

    - ``latency`` + uniform(0, ``jitter``) seconds, slept with ``sleep`` before each answer;
    - ``rate_limit`` requests/s (a token bucket of ``rate_burst``, refilled by ``clock``) and
      ``limit`` (a shape of :mod:`tracker_links.testing`: :class:`TokenBucket`,
      :class:`FixedWindow`, :class:`SlidingWindow`, :class:`InFlightCap`, :class:`Schedule`,
      several of them, or their text for :func:`parse_limit`): 429 with
      ``Retry-After: <retry_after>`` (no header if ``retry_after`` is ``None``). One fake is one
      limit, however many clients share it;
    - ``max_inflight``: 429 beyond that many requests in flight;
    - ``fail_rate``: an injected 500, 502 or 503, and nothing written;
    - ``drop_rate``: the connection is closed with no answer; a share ``drop_after_write`` of
      those happen *after* the request took effect (a naive retry then duplicates a link);
    - ``list_lag``: a link shows in ``GET …/links`` only that many seconds after its creation;
    - ``duplicate_status``: the answer (409 or 422) to creating a link that exists in either
      spelling; ``None`` stores the duplicate (counted in ``stats.duplicates_created``);
    - ``token``: if set, only that token is accepted (any ``OAuth``/``Bearer`` one otherwise);
      ``users``: a mapping token -> login; if set, only those tokens (and ``token``) are
      accepted, each as its user (``GET /v2/myself``, a link's ``createdBy``); the default user
      is ``robot``;
    - ``forbidden_queues``: writes (create, import, delete) touching an issue of these queues
      answer 403; ``import_forbidden``: the import endpoint answers 403 (not an administrator);
    - ``clone_on_create``: plain create accepts ``clone``/``original`` (422 otherwise: the
      service documents them for the import only);
    - ``malformed_search``: the share of search pages answered with a malformed body;
    - ``redirect_status``: the answer (301, 302, 307, 308) to a request on a moved issue's old
      key (:meth:`move_issue`);
    - ``started_at``: the wall time (aware ``datetime`` or ISO text) at which ``clock`` stood
      when the fake was made; links' ``createdAt`` follow ``clock`` from there (virtual time
      works). Now, by default.

    Knobs are plain attributes and may be changed between requests. Example::

        fake = FakeTracker(queues={"TEST": 10}, seed=1)
        async with fake.client() as client:
            await client.links.create("TEST-1", "TEST-2", "depends on")
        assert fake.has_link("TEST-2", "TEST-1", "is dependent by")
        assert fake.stats.count("POST", 201) == 1
    """

    latency: _Knob[float] = _Knob("_faults", check_seconds)
    jitter: _Knob[float] = _Knob("_faults", check_seconds)
    rate_limit: _Knob[float | None] = _Knob("_faults")
    rate_burst: _Knob[int] = _Knob("_faults")
    retry_after: _Knob[float | None] = _Knob("_faults", check_retry_after)
    max_inflight: _Knob[int | None] = _Knob("_faults", check_inflight)
    limit: _Knob[LimitSetting] = _Knob("_faults")
    fail_rate: _Knob[float] = _Knob("_faults", check_share)
    drop_rate: _Knob[float] = _Knob("_faults", check_share)
    drop_after_write: _Knob[float] = _Knob("_faults", check_share)
    list_lag: _Knob[float] = _Knob("_links", check_seconds)
    duplicate_status: _Knob[int | None] = _Knob("_links", check_status_4xx)
    forbidden_queues: _Knob[Iterable[str]] = _Knob("_links")
    import_forbidden: _Knob[bool] = _Knob("_links")
    clone_on_create: _Knob[bool] = _Knob("_links")
    malformed_search: _Knob[float] = _Knob("_search", check_share)
    redirect_status: _Knob[int] = _Knob("_router")
    sleep: _Knob[Sleep] = _Knob("_pipeline")
    """How the fake waits ``latency`` (``anyio.sleep`` unless given)."""
    token: _Knob[str | None] = _Knob("_auth")
    users: _Knob[Mapping[str, str] | None] = _Knob("_auth")

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
        limit: LimitSetting = None,
        fail_rate: float = 0.0,
        drop_rate: float = 0.0,
        drop_after_write: float = 0.5,
        list_lag: float = 0.0,
        duplicate_status: int | None = 422,
        token: str | None = None,
        users: Mapping[str, str] | None = None,
        forbidden_queues: Iterable[str] = frozenset(),
        import_forbidden: bool = False,
        clone_on_create: bool = False,
        malformed_search: float = 0.0,
        redirect_status: int = 301,
        seed: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
        started_at: datetime | str | None = None,
    ) -> None:
        self.seed = seed
        ctx = self._ctx = Context(clock, seed, _started_at(started_at))
        self._faults = Faults(
            ctx,
            latency=latency,
            jitter=jitter,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            retry_after=retry_after,
            max_inflight=max_inflight,
            limit=limit,
            fail_rate=fail_rate,
            drop_rate=drop_rate,
            drop_after_write=drop_after_write,
        )
        self._store = store = Store(ctx)
        self._links = LinkRoutes(
            store,
            ctx,
            duplicate_status=duplicate_status,
            list_lag=list_lag,
            forbidden_queues=forbidden_queues,
            import_forbidden=import_forbidden,
            clone_on_create=clone_on_create,
        )
        self._search = Search(store, ctx, malformed_search=malformed_search)
        self._router = Router(store, self._links, self._search, redirect_status=redirect_status)
        self._auth = Auth(token, users)
        self._pipeline = Pipeline(
            ctx,
            self._faults,
            self._auth,
            self._router,
            sleep if sleep is not None else anyio.sleep,
            self.snapshot,
        )
        self._app: FakeASGIApp | None = None
        self.links: Mapping[int, StoredLink] = store.links
        """The stored links, a live read-only mapping: link id -> :class:`StoredLink`."""
        self.issues: Mapping[str, FakeIssue] = store.issues
        """The issues, a live read-only mapping: key -> :class:`FakeIssue`."""
        for queue, count in (queues or {}).items():
            if count < 0:
                raise ValueError(f"queue {queue!r}: the issue count must be >= 0, got {count!r}")
            store.queue(queue)
            for _ in range(count):
                store.add_issue(queue=queue)

    def __repr__(self) -> str:
        return (
            f"<FakeTracker issues={len(self.issues)} links={len(self.links)} "
            f"requests={self.stats.total}>"
        )

    # --- shared state ---------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The fake's clock (limits, ``list_lag``, scroll expiry, ``createdAt``)."""
        return self._ctx.clock

    @clock.setter
    def clock(self, value: Clock) -> None:
        self._ctx.set_clock(value)

    @property
    def random(self) -> random.Random:
        """The one source of randomness of every knob (seeded by ``seed``)."""
        return self._ctx.random

    @random.setter
    def random(self, value: random.Random) -> None:
        self._ctx.random = value

    @property
    def stats(self) -> FakeStats:
        """Counters of what the fake saw: :class:`FakeStats`."""
        return self._ctx.stats

    @stats.setter
    def stats(self, value: FakeStats) -> None:
        self._ctx.stats = value

    @property
    def inflight(self) -> int:
        """Requests in flight right now (read only)."""
        return self._faults.inflight

    @property
    def _lock(self) -> Any:
        return self._ctx.lock

    # --- test set-up and assertions --------------------------------------------------------------

    def add_issue(
        self,
        key: str | None = None,
        *,
        queue: str | None = None,
        summary: str | None = None,
        assignee: str | None = None,
        status: str = "open",
        issue_id: str | None = None,
    ) -> str:
        """Add an issue and return its key.

        Give ``key`` (``"TEST-7"``), or only ``queue`` for the next free number in it. The
        defaults are deterministic: ``summary`` ``"<QUEUE> issue <n>"``, an ``assignee`` from a
        fixed list of names (``assignee=""`` leaves it unassigned), ``status`` ``"open"``, and
        an ``issue_id`` of 24 hex digits derived from the key.

        >>> fake.add_issue(queue="TEST")          # doctest: +SKIP
        'TEST-101'
        """
        return self._store.add_issue(
            key, queue=queue, summary=summary, assignee=assignee, status=status, issue_id=issue_id
        )

    def move_issue(self, old_key: str, new_queue_or_key: str) -> str:
        """Move an issue to another queue (or key) and return its new key, as Tracker's move.

        Given a queue (``"NEW"``), the issue takes the next free number there; given a key
        (``"NEW-7"``), that key. The old key stays an alias: requests on it answer
        ``redirect_status`` with ``Location`` on the new key, search results list it in
        ``aliases``, and the issue keeps its id and its links (which now name the new key).

        >>> fake.move_issue("TEST-3", "NEW")       # doctest: +SKIP
        'NEW-1'
        """
        return self._store.move_issue(old_key, new_queue_or_key)

    def add_link(
        self,
        source: str,
        target: str,
        relationship: FakeRelationship,
        *,
        created_by: str | None = None,
        created_at: datetime | None = None,
    ) -> StoredLink:
        """Store a link directly (test set-up: no HTTP, no knobs, no stats) and return it.

        ``created_by`` (a login; ``robot`` by default) and ``created_at`` (an aware datetime;
        the fake's time now by default) make a link that predates a run. Raises ``KeyError``
        for an unknown issue and ``ValueError`` for a self-link or, unless
        ``duplicate_status`` is ``None``, for a link that already exists in either spelling.
        """
        return self._store.add_link(
            source,
            target,
            relationship,
            refuse_duplicates=self.duplicate_status is not None,
            created_by=created_by,
            created_at=created_at,
        )

    def links_of(self, issue: str) -> list[StoredLink]:
        """The links of an issue (key or id), oldest first, whatever ``list_lag`` says."""
        return self._store.links_of(issue)

    def find_links(
        self, a: str, b: str, relationship: FakeRelationship | None = None
    ) -> list[StoredLink]:
        """The links between issues ``a`` and ``b``, oldest first.

        With ``relationship``, only the links meaning "``a`` *relationship* ``b``", however they
        were written: ``find_links("A", "B", "depends on")`` also finds a link created as
        ``B is dependent by A``. More than one is found only when duplicates were stored
        (``duplicate_status=None``).
        """
        return self._store.find_links(a, b, relationship)

    def has_link(self, a: str, b: str, relationship: FakeRelationship) -> bool:
        """Whether "``a`` *relationship* ``b``" is stored, in either spelling."""
        return bool(self.find_links(a, b, relationship))

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /_fake/stats`` answers: :meth:`FakeStats.as_dict` plus ``duplicates``
        (links stored although the same link was stored already), ``answered_429``,
        ``links``, ``issues`` and ``inflight``, read together under the fake's lock (safe
        while a server thread answers requests)."""
        with self._ctx.lock:
            stats = self.stats
            data = stats.as_dict()
            data["duplicates"] = self._store.duplicates()
            data["answered_429"] = stats.count(status=429)
            data["links"] = len(self.links)
            data["issues"] = len(self.issues)
            data["inflight"] = self.inflight
        return data

    # --- the request pipeline (see :class:`._pipeline.Pipeline`) ----------------------------------
    # admit/release/finish/answer are the steps, for a driver of one's own; respond() and
    # handle() run the pipeline's steps directly, so overriding these changes neither.

    def admit(self) -> tuple[Reply | None, float]:
        """A request arrives: count it in flight, apply ``max_inflight`` and the limits.

        Returns the 429 to send (or ``None``) and the delay to sleep before answering. Every
        call must be paired with :meth:`release` once the answer is out.
        """
        return self._pipeline.admit()

    def release(self) -> None:
        """The answer to an admitted request is out (or abandoned)."""
        self._pipeline.release()

    def finish(self, method: str, reply: Reply) -> Reply:
        """Count an answer that did not go through :meth:`answer` (an early 429)."""
        return self._pipeline.finish(method, reply)

    def answer(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        base_url: str = "http://localhost",
    ) -> Reply:
        """Answer an admitted request: faults, auth, then the route. Counts it in :attr:`stats`.

        ``headers`` must answer ``get()`` for lower-case names (``httpx.Headers`` does, for any
        case). ``base_url`` (``http://host:port``) is used for the ``Link`` and ``Location``
        headers a client follows; ``self`` URLs always name the real service's host.
        """
        return self._pipeline.answer(method, path, query, headers, body, base_url)

    def handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        base_url: str = "http://localhost",
    ) -> Reply:
        """The whole pipeline at once, without sleeping ``latency`` (a synchronous driver)."""
        return self._pipeline.handle(method, path, query, headers, body, base_url)

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
        Paths under ``/_fake/`` are the fake's own (``GET /_fake/stats``: :meth:`snapshot`).
        """
        return await self._pipeline.respond(method, path, query, headers, body, base_url)

    # --- ways in ---------------------------------------------------------------------------------

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
            token = self.token
            if token is None and self.users:
                token = next(iter(self.users))
            params["token"] = token if token is not None else "fake-token"
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

        with serve_in_thread(self.app, host, port) as base_url:
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
        the ``fake`` extra. ``GET /_fake/stats`` answers :meth:`snapshot` meanwhile.
        """
        from ._server import serve_blocking

        serve_blocking(self.app, host, port, on_ready=on_ready)


TrackerState = FakeTracker
"""The fake's former base class, now the fake itself (kept so that old imports still work)."""
