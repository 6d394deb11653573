"""Which redirects the client follows, and where to: a pure decision.

Tracker answers a request on a moved issue's old key with a redirect to the new key's URL
(not documented: 301, 302, 307 and 308 are all taken). The service applied nothing, so the
same request (method, body) is sent to the new URL: a POST or DELETE is never turned into a
GET. Only on the same origin (scheme, host, port) and below the base URL's path: the request
carries the credentials, which never leave for another host. At most ``MAX_REDIRECTS`` hops.
"""

from __future__ import annotations

from typing import Final

import attrs
import httpx

from ._exceptions import TrackerError
from ._protocol import Request

__all__ = ["FOLLOWED", "MAX_REDIRECTS", "follow"]

FOLLOWED: Final = frozenset({301, 302, 307, 308})
MAX_REDIRECTS: Final = 5
_PORTS: Final = {"http": 80, "https": 443}


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port if url.port is not None else _PORTS.get(url.scheme)


def follow(
    base_url: httpx.URL, req: Request, url: str, status: int, location: str | None, hops: int
) -> Request:
    """The request to send after ``req`` (sent to ``url``) got ``status`` with ``location``.

    ``hops``: redirects followed so far. Raises :class:`TrackerError` (naming the target, with
    the status) for a redirect that is not followed: a 3xx other than ``FOLLOWED`` (a 303 or
    a 300 is no answer to a write, never a success), no ``Location``, another origin, a path
    outside the base URL, or more than ``MAX_REDIRECTS`` hops.
    """

    def refuse(why: str) -> TrackerError:
        return TrackerError(
            f"{req.method} {url} was redirected ({status}) {why}",
            status_code=status,
            method=req.method,
            url=url,
        )

    if status not in FOLLOWED:
        where = f"to {location[:200]!r}, " if location else ""
        raise refuse(f"{where}not followed (only 301, 302, 307 and 308 are)")
    if not location:
        raise refuse("without a Location")
    try:
        target = httpx.URL(url).join(location.strip())
    except (httpx.InvalidURL, ValueError):
        raise refuse(f"to a malformed Location {location[:200]!r}") from None
    shown = str(target.copy_with(query=None, fragment=None))
    if _origin(target) != _origin(base_url):
        raise refuse(
            f"to {shown}, another host or scheme: not followed, the credentials are never sent "
            "there"
        )
    prefix = base_url.raw_path.rstrip(b"/")
    path = target.raw_path.partition(b"?")[0]
    if not path.startswith(prefix + b"/"):
        raise refuse(f"to {shown}, outside the API's base URL: not followed")
    if hops >= MAX_REDIRECTS:
        raise refuse(f"more than {MAX_REDIRECTS} times (last to {shown}): not followed")
    params = tuple(target.params.multi_items())
    return attrs.evolve(req, path=path[len(prefix) :].decode("ascii"), params=params)
