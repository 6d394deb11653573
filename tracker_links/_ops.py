"""What the bulk engines are given: a few calls of one client, and nothing else.

The engines (``_bulk_create``, ``_bulk_read``) see a client through this narrow interface,
built by :class:`LinkService` from its own methods, instead of the service and its private
parts: they can be driven (and tested) by anything that fills it in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs

from ._models import Link, LinkSpec
from ._protocol import Request
from ._transport import Response

__all__ = ["Ops"]


@attrs.frozen
class Ops:
    """The calls a bulk engine makes.

    ``create`` makes one link safely (never a duplicate) and returns it with the number of
    POSTs sent, raising the library's errors (a refused duplicate: :class:`ConflictError` with
    ``.link``). ``get`` lists one issue's links. ``search`` sends one search page request and
    returns the raw answer (its headers drive paging). ``concurrency`` is how many requests the
    client lets run at once: the engines start that many workers. ``clock`` is the client's
    clock (monotonic seconds), for the reports' ``elapsed``. ``version`` is the client's API
    version (``"v2"``/``"v3"``), for the requests an engine builds itself (search pages).
    """

    create: Callable[[LinkSpec], Awaitable[tuple[Link, int]]]
    get: Callable[[str], Awaitable[list[Link]]]
    search: Callable[[Request], Awaitable[Response]]
    concurrency: int
    clock: Callable[[], float]
    version: str = "v2"
