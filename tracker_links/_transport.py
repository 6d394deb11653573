"""The only network I/O: one httpx client, admission (concurrency, rate, cool-down), retries.

Every exception the network can raise is mapped to the library's own here, in one place.
"""

from __future__ import annotations

import collections
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import anyio
import httpx

from . import _protocol, _redirects, _tls
from ._exceptions import RateLimitError, ServerError, TrackerError, TransportError
from ._http11 import FastTransport, safe_path
from ._policy import ConcurrencyWindow, RateGate, RetryPolicy
from ._quota_gate import _AHEAD_SLOTS, QuotaGate

__all__ = ["Redirected", "Response", "Transport"]

logger: Final = logging.getLogger("tracker_links")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

# Failures that leave no usable answer: the network's, and a body that its Content-Encoding
# does not decode (the request may have been applied: as uncertain as a dropped connection).
_NO_ANSWER: Final = (httpx.TransportError, httpx.DecodingError)
# Failures that prove the request never left: safe to re-send even a create.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Failures to make a connection at all (refused, DNS, TLS handshake): the service not reached.
_NOT_REACHED: Final = (httpx.ConnectError, httpx.ConnectTimeout)


class Response:
    """A successful answer: status, headers and the body (decoded from any Content-Encoding).

    ``headers`` is an ``httpx.Headers`` built on first use: most answers are never asked.
    """

    __slots__ = ("_headers", "_raw", "content", "status")

    def __init__(
        self, status: int, headers: httpx.Headers | list[tuple[bytes, bytes]], content: bytes
    ) -> None:
        self.status = status
        self.content = content
        self._headers = headers if isinstance(headers, httpx.Headers) else None
        self._raw = headers

    # Set on an answer that came after redirects (a moved issue), see :class:`Redirected`.
    path: str | None = None  # the path below the base URL that answered
    url: str | None = None  # the URL that answered
    redirected_from: tuple[str, ...] = ()  # the URLs redirected from, in order

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(self._raw)
        return self._headers

    def __repr__(self) -> str:
        return f"<Response {self.status}, {len(self.content)} bytes>"


class Redirected(Response):
    """An answer that came after following redirects: where from, and which URL answered."""

    __slots__ = ("path", "redirected_from", "url")

    def __init__(self, answer: Response, path: str, url: str, moved: list[str]) -> None:
        super().__init__(answer.status, answer._raw, answer.content)
        self.path = path
        self.url = url
        self.redirected_from = tuple(moved)

    def __repr__(self) -> str:
        return f"<Response {self.status} from {self.url}, {len(self.content)} bytes>"


class Slots:
    """A counting limiter whose fast path does not yield to the event loop.

    anyio's ``CapacityLimiter`` and ``Semaphore`` pass through a checkpoint on every acquire
    (measured: 8-10 µs an acquire/release on asyncio, against 0.5 µs here). Under the limit
    this takes a slot at once; at the limit it queues (FIFO) on an ``anyio.Event`` and a
    release hands the slot straight to the first waiter. A waiter cancelled after it was handed
    a slot passes it on, so no slot is ever lost.
    """

    __slots__ = ("_free", "_waiters", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._waiters: collections.deque[anyio.Event] = collections.deque()

    @property
    def busy(self) -> int:
        """The slots taken now."""
        return self.total - self._free

    def resize(self, total: int) -> None:
        """Allow ``total`` at once from now on (a smaller total takes effect as slots free)."""
        self._free += total - self.total
        self.total = total
        while self._free > 0 and self._waiters:
            self._free -= 1
            self._waiters.popleft().set()

    async def requeue(self) -> None:
        """Give a held slot back and queue for one again (the total shrank meanwhile)."""
        self.release()
        try:
            await self.acquire()
        except BaseException:
            self._free -= 1  # the caller still releases the slot it held: keep the count
            raise

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # handed a slot, then cancelled: pass it on
            else:
                self._waiters.remove(event)
            raise

    def release(self) -> None:
        if self._waiters and self._free >= 0:
            self._waiters.popleft().set()
        else:
            self._free += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Counts:
    """What a transport has sent so far, for a progress line: attempts, retries, 429s.

    Plain integers bumped on the send path (no lock: one event loop); read them any time.
    """

    __slots__ = ("rate_limited", "requests", "retries")

    def __init__(self) -> None:
        self.requests = 0  # attempts sent (each retry counts again)
        self.retries = 0  # attempts that are retries of an earlier one
        self.rate_limited = 0  # answers of 429


class UncertainError(TrackerError):
    """A write that may or may not have been applied (5xx, read timeout, dropped connection).

    Raised only for requests sent with ``retry_uncertain=False`` (the writes); the link
    service turns it into a read-then-maybe-resend.
    """

    def __init__(self, cause: TrackerError) -> None:
        super().__init__(
            cause.message,
            status_code=cause.status_code,
            messages=cause.messages,
            method=cause.method,
            url=cause.url,
        )
        self.cause = cause


class Transport:
    """Sends :class:`_protocol.Request` objects with admission control and retries."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        headers: Mapping[str, str] | None,
        max_concurrency: int,
        rate: RateGate,
        retry: RetryPolicy,
        sleep: Sleep = anyio.sleep,
        clock: Clock = time.monotonic,
        rand: Callable[[], float] = random.random,
        direct: FastTransport | None = None,
        timeout: float | None = None,
        quota: QuotaGate | None = None,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        # The library's own transport, called without the AsyncClient layer and without
        # httpx.Request/Response objects (URL parsing, header and stream objects, request
        # merging, auth and redirect flows: together about a quarter of the CPU per request).
        # The owned AsyncClient's headers are turned into bytes once, here.
        self._direct = direct
        self._prepared = (
            direct.prepare(httpx.URL(self.base_url), httpx.Headers(http.headers))
            if direct is not None
            else None
        )
        self._base = httpx.URL(self.base_url)
        self._timeouts = dict.fromkeys(("connect", "read", "write", "pool"), timeout)
        self._headers = dict(headers) if headers else None
        self.limiter = Slots(max_concurrency)
        self.on_wire = 0
        """Requests sent and not yet answered (a limiter slot also covers the pacing wait)."""
        self.gate = rate
        self.counts = Counts()
        self.retry = retry
        self.sleep = sleep
        self.clock = clock
        self.rand = rand
        self.quota = quota
        # Through a quota, the requests that may ask for a slot or wait for one booked (see
        # QuotaGate.ahead); the others wait their turn in the process.
        self._ahead = Slots(_AHEAD_SLOTS)

    async def _admit_shared(self, req: _protocol.Request, deadline: float) -> tuple[int, int]:
        """:meth:`_admit` through a shared quota: one round trip per try; returns its epoch
        and which of the epoch's slots it booked."""
        quota, limiter = self.quota, self.limiter
        assert quota is not None
        while True:
            if limiter._free < 0:
                # Not while holding a slot of ``_ahead``: the requests that hold the rest of
                # the limiter may be waiting for one.
                await limiter.requeue()
            async with self._ahead:
                admitted = await self._ask_quota(req, deadline, quota)
            if admitted is not None:
                return admitted

    async def _ask_quota(
        self, req: _protocol.Request, deadline: float, quota: QuotaGate
    ) -> tuple[int, int] | None:
        """One admission through the quota and its wait: the epoch of a slot still good after
        it (and which of the epoch's slots it is), or ``None`` to ask again (a cool-down waited
        out, a slot a 429 voided)."""
        answer = await quota.admit()
        ahead = quota.ahead()
        if ahead != self._ahead.total:
            self._ahead.resize(ahead)
        if answer.booked:
            admitted = answer.epoch, answer.slot
            if answer.wait <= 0:
                return admitted
            await self.sleep(answer.wait)
            # The booked slot is still good, unless a 429 voided it meanwhile: then ask again
            # (the cool-down, most likely).
            return admitted if quota.epoch == answer.epoch else None
        if self.clock() + answer.wait > deadline:
            raise RateLimitError(
                f"the shared quota is cooling down after a 429 for {answer.wait:.1f}s "
                "more, past this call's retry deadline",
                method=req.method,
                url=self.base_url + req.path,
                retry_after=answer.wait,
            )
        await self.sleep(answer.wait)
        return None

    async def _admit(self, req: _protocol.Request, deadline: float) -> tuple[int, int]:
        """Wait for the shared cool-down and a paced slot; refuse a wait past ``deadline``.

        Returns the epoch the request was admitted in (a 429 of a later epoch is not news),
        and through a quota which of the epoch's slots it booked (0 without one)."""
        if self.quota is not None:
            return await self._admit_shared(req, deadline)
        gate, clock, limiter = self.gate, self.clock, self.limiter
        while True:
            if limiter._free < 0:
                await limiter.requeue()  # the learned window shrank while this one waited
            now = clock()
            epoch = gate.epoch
            wait = gate.reserve(now)
            if wait <= 0:
                return epoch, 0
            cooling = now < gate.cooldown_until
            if cooling and now + wait > deadline:
                raise RateLimitError(
                    f"the client is cooling down after a 429 for {wait:.1f}s more, "
                    "past this call's retry deadline",
                    method=req.method,
                    url=self.base_url + req.path,
                    retry_after=wait,
                )
            await self.sleep(wait)
            if not cooling and gate.epoch == epoch:
                return epoch, 0  # the booked slot is still good

    async def send(self, req: _protocol.Request, *, retry_uncertain: bool = True) -> Response:
        """Send ``req`` and return a 2xx answer, or raise the library's exception.

        With ``retry_uncertain=False`` (creates, deletes), an answer whose effect is unknown
        (5xx, a dropped connection, a read timeout) is raised at once as :class:`UncertainError`
        instead of being re-sent; 429s and failures to connect are still retried, as they
        prove nothing was written.
        """
        retry, clock, counts = self.retry, self.clock, self.counts
        started = clock()
        attempt = 0
        url = self.base_url + req.path
        debug = logger.isEnabledFor(logging.DEBUG)
        moved: list[str] | None = None  # the URLs redirected from (a moved issue)
        while True:
            attempt += 1
            counts.requests += 1
            status: int | None = None
            error: TrackerError
            retry_after: float | None = None
            window = self.gate.window
            opening = False
            if window is not None:
                self._fit(window)
                opening = window.opening
            async with self.limiter:
                epoch, slot = await self._admit(req, started + retry.deadline)
                sent_at = clock()
                self.on_wire += 1
                inflight = self.on_wire
                try:
                    direct, prepared = self._direct, self._prepared
                    if (
                        direct is not None
                        and prepared is not None
                        and not req.params
                        and safe_path(req.path)
                    ):
                        status, raw, content = await direct.send_raw(
                            prepared, req.method, req.path, req.body, self._timeouts
                        )
                        resp = Response(status, raw, content)
                    else:
                        answer = await self.http.request(
                            req.method,
                            url,
                            params=req.params or None,
                            content=req.body,
                            headers=self._headers,
                            follow_redirects=False,  # followed here, same origin only
                        )
                        resp = Response(answer.status_code, answer.headers, answer.content)
                except _NO_ANSWER as exc:
                    if isinstance(exc, httpx.ConnectError):
                        tls = _tls.permanent_failure(exc)
                        if tls is not None:  # no retry fixes a certificate: fail at once
                            message = _tls.describe(tls, httpx.URL(url).host)
                            raise TransportError(
                                message, method=req.method, url=url, connect_failed=True
                            ) from exc
                    error = TransportError(
                        f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                        method=req.method,
                        url=url,
                        connect_failed=isinstance(exc, _NOT_REACHED),
                    )
                    proven_unsent = isinstance(exc, _NOT_SENT)
                    if debug:
                        logger.debug(
                            "%s %s -> no answer: %s (attempt %d, %.3fs)",
                            req.method,
                            req.path,
                            type(exc).__name__,
                            attempt,
                            clock() - sent_at,
                        )
                else:
                    status = resp.status
                    now = clock()
                    if debug:
                        logger.debug(
                            "%s %s -> %d (attempt %d, %.3fs)",
                            req.method,
                            req.path,
                            status,
                            attempt,
                            now - sent_at,
                        )
                    if status < 400:
                        self._accepted(now, inflight, sent_at)
                        if status >= 300:  # a moved issue (or a 3xx that is refused)
                            moved = moved or []
                            location = resp.headers.get("location")
                            req = _redirects.follow(
                                self._base, req, url, status, location, len(moved)
                            )
                            moved.append(url)
                            url = self.base_url + req.path
                            logger.info(
                                "%s %s moved (%d): sending to %s",
                                req.method,
                                moved[-1],
                                status,
                                url,
                            )
                            attempt = 0  # the same request, to the new URL: its own tries
                            continue
                        if moved:
                            return Redirected(resp, req.path, url, moved)
                        return resp
                    if status == 429:
                        counts.rate_limited += 1
                        retry_after = _protocol.parse_retry_after(
                            resp.headers.get("retry-after"), time.time()
                        )
                        # Without Retry-After the gate guesses the cool-down (and learns it).
                        if self.quota is not None:
                            await self.quota.rate_limited(
                                epoch, now, sent_at, retry_after, inflight, slot
                            )
                        else:
                            self.gate.on_rate_limited(now, sent_at, retry_after, inflight)
                    else:
                        self._accepted(now, inflight, sent_at)
                    error = _protocol.error_for(
                        status, resp.content, method=req.method, url=url, retry_after=retry_after
                    )
                    if status not in _protocol.RETRYABLE_STATUSES:
                        raise error
                    proven_unsent = status == 429
                finally:
                    self.on_wire -= 1
                    if opening and window is not None:
                        # The window opens by one per round trip that ended without a 429
                        # (a failure to connect too: it is no sign of a limit).
                        if status is None:
                            window.grow()
                        self._fit(window)
            if not proven_unsent and not retry_uncertain:
                raise UncertainError(error)
            delay = retry.next_delay(attempt, clock() - started, retry_after, self.rand)
            if delay is None:
                raise final_error(error, attempt)
            counts.retries += 1
            logger.warning(
                "%s %s failed (%s), retry %d/%d in %.2fs",
                req.method,
                req.path,
                status if status is not None else type(error).__name__,
                attempt,
                retry.attempts - 1,
                delay,
            )
            # A 429 waits in the shared cool-down inside _admit, unless it started none.
            if status != 429 or (self.quota is None and clock() >= self.gate.cooldown_until):
                await self.sleep(delay)

    def _accepted(self, now: float, inflight: int, sent_at: float) -> None:
        """An answer other than 429: the gate learns from it, a shared quota counts it."""
        self.gate.on_accepted(now, inflight, now - sent_at)
        if self.quota is not None:
            self.quota.accepted += 1

    def _fit(self, window: ConcurrencyWindow) -> None:
        """Give the slots the size the learned window allows now."""
        allowed = window.current(self.clock())
        if allowed != self.limiter.total:
            self.limiter.resize(allowed)

    async def aclose(self) -> None:
        await self.http.aclose()


def final_error(error: TrackerError, attempts: int) -> TrackerError:
    """The error to raise once retries are spent, saying how many tries were made."""
    if isinstance(error, (RateLimitError, ServerError, TransportError)) and attempts > 1:
        error.message = f"{error.message} (after {attempts} attempts)"
    return error
