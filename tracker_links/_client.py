"""TrackerClient: configuration, credentials, and ownership of the HTTP connection pool."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import ssl
import time
import urllib.request
from types import TracebackType
from typing import Any

import anyio
import httpx

from . import _tls
from ._exceptions import InvalidInputError
from ._http11 import FastTransport
from ._policy import DEFAULT_RETRY, AdaptiveRate, ConcurrencyWindow, RateGate, RetryPolicy
from ._protocol import check_version
from ._quota import Quota
from ._quota_gate import QuotaGate
from ._service import LinkService
from ._tls import Verify
from ._transport import Clock, Sleep, Transport
from ._version import __version__

__all__ = ["TrackerClient"]

DEFAULT_BASE_URL = "https://api.tracker.yandex.net"
#: Requests in flight at the start of an adaptive client (one more per answer, so twice as
#: many each round trip, up to ``max_concurrency``): clients that start together on one limit
#: do not each send a whole window into it (8 clients of 16 drew 108 429s in their first
#: second from a burst of 20).
_INITIAL_WINDOW = 1

_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _proxies_from_env() -> bool:
    """Whether proxy variables are set: then httpx's own transport, which honours them, is used."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def _check_base_url(base_url: str) -> str:
    try:
        url = httpx.URL(base_url)
    except Exception as exc:
        raise InvalidInputError(f"invalid base_url {base_url!r}: {exc}") from None
    if url.scheme == "https" and url.host:
        return base_url.rstrip("/")
    if url.scheme == "http" and url.host and _is_loopback(url.host):
        return base_url.rstrip("/")
    raise InvalidInputError(
        f"invalid base_url {base_url!r}: use https:// (plain http:// is allowed only for "
        "loopback hosts such as 127.0.0.1 or localhost, so a token never travels in clear text)"
    )


def _check_verify(verify: Verify, base_url: str, *, own: bool) -> ssl.SSLContext | bool:
    """``verify=`` checked: a bundle path read now; ``False`` only for a loopback host."""
    if verify is True:
        return True
    if not own:
        raise InvalidInputError(
            "verify= applies to the connections the client makes itself: with http_client= or "
            "transport=, configure TLS on that client or transport"
        )
    if verify is False and not _is_loopback(httpx.URL(base_url).host):
        raise InvalidInputError(
            "verify=False is allowed only for loopback hosts (tests): the token would go to a "
            "server whose certificate is not checked; pass verify='/path/to/ca.pem' instead"
        )
    return _tls.resolve(verify)


def _exactly_one(what: str, a: tuple[str, object], b: tuple[str, object]) -> str:
    given = [(name, value) for name, value in (a, b) if value]
    if len(given) != 1:
        raise InvalidInputError(
            f"give exactly one of {a[0]}= or {b[0]}= ({what}); got "
            + (" and ".join(name for name, _ in given) if given else "neither")
        )
    name, value = given[0]
    if isinstance(value, int) and not isinstance(value, bool) and name.endswith("org_id"):
        value = str(value)  # an organization id is a number; accept it as one
    if not isinstance(value, str) or not _HEADER_SAFE.fullmatch(value):
        # Never echo the value: it may be a secret.
        raise InvalidInputError(
            f"{name}= must be a string of printable ASCII without spaces "
            "(it goes into an HTTP header); check for a stray newline or a pasted ellipsis"
        )
    return value


class TrackerClient:
    """An async client for the Yandex Tracker issue-links API.

    Give exactly one credential (``token``: an OAuth token, sent as ``Authorization: OAuth …``;
    or ``iam_token``: sent as ``Bearer …``) and exactly one organization (``org_id`` for a
    Yandex 360 org, ``cloud_org_id`` for a Yandex Cloud one)::

        async with TrackerClient(token, org_id="123456") as client:
            link = await client.links.create("PROJ-12", "PROJ-7", "depends on")

    Every call on one client shares its limits: at most ``max_concurrency`` requests in
    flight; ``rate_limit`` requests per second if given, otherwise an adaptive rate that finds
    the service's limit from its 429 answers; and a shared cool-down: a 429 pauses all new
    requests until its ``Retry-After``. ``retry`` is the :class:`RetryPolicy` for each call;
    ``timeout`` is httpx's per-request timeout in seconds.

    ``http_client``: an ``httpx.AsyncClient`` of yours, used as is and not closed by the
    library. ``transport``: an ``httpx.AsyncBaseTransport`` for the client the library creates
    and owns (the fake Tracker's in-process transport, for instance). ``sleep`` and ``clock``
    replace ``anyio.sleep`` and ``time.monotonic``, for tests that must not wait.

    ``quota``: a :class:`FileQuota` or :class:`RedisQuota` shared with other clients and
    processes: the pacing, the 429 cool-down and the learned rate are then theirs together
    (with ``rate_limit=R``, R is the total of all of them). Enter a ``RedisQuota`` with
    ``async with`` before the client uses it.

    ``verify``: how the server's TLS certificate is checked. ``True`` (the default): against
    the system's trust store (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` override its location) and
    certifi's bundle. A path: a PEM CA bundle (a corporate CA) or a directory of them. An
    ``ssl.SSLContext`` of yours, used as is. ``False``: no check, for loopback hosts only. A
    certificate that fails the check fails the call at once, without retries.

    ``api_version``: ``"v2"`` (the default) or ``"v3"`` (the service's current version); every
    endpoint the library calls follows it (``/v3/issues/…/links``, ``/v3/linktypes``, the
    search).
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        iam_token: str | None = None,
        org_id: str | int | None = None,
        cloud_org_id: str | int | None = None,
        base_url: str = DEFAULT_BASE_URL,
        rate_limit: float | None = None,
        max_concurrency: int = 16,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        api_version: str = "v2",
        verify: Verify = True,
        quota: Quota | None = None,
    ) -> None:
        secret = _exactly_one("the credential", ("token", token), ("iam_token", iam_token))
        org = _exactly_one("the organization", ("org_id", org_id), ("cloud_org_id", cloud_org_id))
        self.base_url = _check_base_url(base_url)
        self.api_version = check_version(api_version)
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise InvalidInputError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        if max_concurrency < 1:
            raise InvalidInputError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        if rate_limit is not None and not rate_limit > 0:
            raise InvalidInputError(
                f"rate_limit must be > 0 requests/s or None, got {rate_limit!r}"
            )
        if http_client is not None and transport is not None:
            raise InvalidInputError("give http_client= or transport=, not both")
        tls = _check_verify(verify, self.base_url, own=http_client is None and transport is None)
        self.max_concurrency = max_concurrency
        self.rate_limit = rate_limit
        self.retry = retry if retry is not None else DEFAULT_RETRY
        self._auth_scheme = "OAuth" if token else "Bearer"
        self._org_header = "X-Org-ID" if org_id else "X-Cloud-Org-ID"
        headers = {
            "Authorization": f"{self._auth_scheme} {secret}",
            self._org_header: org,
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": f"tracker-links/{__version__}",
        }
        self._owns_http = http_client is None
        direct: FastTransport | None = None
        if http_client is None:
            if transport is None and not _proxies_from_env():
                transport = direct = FastTransport(max_concurrency, verify=tls)
            http_client = httpx.AsyncClient(
                verify=_tls.make_context(tls) if transport is None else True,
                headers=headers,
                timeout=timeout,
                transport=transport,
                limits=httpx.Limits(
                    max_connections=max_concurrency,
                    max_keepalive_connections=max_concurrency,
                    keepalive_expiry=30.0,
                ),
                follow_redirects=False,
            )
            per_request: dict[str, str] | None = None
        else:
            per_request = headers
        adaptive = None
        if not rate_limit:
            adaptive = AdaptiveRate(concurrency=max_concurrency)
            adaptive.opening = math.log2(max(1.0, max_concurrency / _INITIAL_WINDOW))
        gate = RateGate(
            rate=rate_limit,
            adaptive=adaptive,
            window=ConcurrencyWindow(
                max_concurrency, initial=None if rate_limit else _INITIAL_WINDOW
            ),
        )
        kwargs: dict[str, Any] = {}
        if sleep is not None:
            kwargs["sleep"] = sleep
        if clock is not None:
            kwargs["clock"] = clock
        if quota is not None:
            kwargs["quota"] = QuotaGate(quota, gate, clock if clock is not None else time.monotonic)
        self.quota = quota
        self._transport = Transport(
            http_client,
            base_url=self.base_url,
            headers=per_request,
            max_concurrency=max_concurrency,
            rate=gate,
            retry=self.retry,
            direct=direct,
            timeout=timeout,
            **kwargs,
        )
        self.links = LinkService(self._transport, self.api_version)
        """The links API: :class:`LinkService`."""

    @classmethod
    def from_env(cls, **overrides: Any) -> TrackerClient:
        """A client configured from the environment; keyword arguments override it.

        Reads ``TRACKER_TOKEN`` or ``TRACKER_IAM_TOKEN``, ``TRACKER_ORG_ID`` or
        ``TRACKER_CLOUD_ORG_ID``, ``TRACKER_BASE_URL`` and ``TRACKER_API_VERSION`` (``v2`` or
        ``v3``). A credential (or organization) given
        as an override replaces both of the environment's.
        """
        env = os.environ
        kwargs: dict[str, Any] = {}
        if "token" not in overrides and "iam_token" not in overrides:
            kwargs["token"] = env.get("TRACKER_TOKEN") or None
            kwargs["iam_token"] = env.get("TRACKER_IAM_TOKEN") or None
        if "org_id" not in overrides and "cloud_org_id" not in overrides:
            kwargs["org_id"] = env.get("TRACKER_ORG_ID") or None
            kwargs["cloud_org_id"] = env.get("TRACKER_CLOUD_ORG_ID") or None
        if env.get("TRACKER_BASE_URL") and "base_url" not in overrides:
            kwargs["base_url"] = env["TRACKER_BASE_URL"]
        if env.get("TRACKER_API_VERSION") and "api_version" not in overrides:
            kwargs["api_version"] = env["TRACKER_API_VERSION"].strip()
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def rate_limiter(self) -> RateGate:
        """The shared admission state (read it to see the adaptive rate the client settled on)."""
        return self._transport.gate

    async def aclose(self) -> None:
        """Close the connection pool (not an ``http_client`` you passed in)."""
        if self._owns_http:
            with anyio.CancelScope(shield=True):
                await self._transport.aclose()

    async def __aenter__(self) -> TrackerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        limit = f"{self.rate_limit:g}/s" if self.rate_limit else "adaptive"
        return (
            f"<TrackerClient {self.base_url} auth={self._auth_scheme} *** "
            f"org={self._org_header} max_concurrency={self.max_concurrency} rate={limit}>"
        )
