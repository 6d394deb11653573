"""Who made a link found after a lost answer: the decision behind an honest ``CREATED``.

When a create's answer is lost (5xx, timeout, dropped connection) and the link is then found,
it was made by that attempt unless its ``createdAt`` predates the attempt (on the service's
clock as this client's answered creates place it: :class:`ServiceClock`; a fixed allowance
for the skew until one is answered) or another user made it (``createdBy`` against
``GET /v2/myself``, fetched once per client, when first needed).
"""

from __future__ import annotations

import logging
from typing import Final

import anyio

from . import _protocol
from ._exceptions import TrackerError
from ._models import Link
from ._service_clock import ServiceClock
from ._transport import Transport

__all__ = ["CLOCK_SKEW", "Provenance"]

logger: Final = logging.getLogger("tracker_links")

# How far the service's clock may run behind ours before any create was answered: a link whose
# createdAt is earlier than the first attempt by more than this was there before it.
CLOCK_SKEW: Final = 2.0


class Provenance:
    """Judges links found after lost answers, for one client (it caches the token's user)."""

    def __init__(self, transport: Transport, version: str = "v2") -> None:
        self._transport = transport
        self._version = version
        self.service_clock = ServiceClock(CLOCK_SKEW)
        self._myself: frozenset[str] | None = None
        self._lock = anyio.Lock()

    async def judge(self, link: Link, since: float) -> tuple[bool, str]:
        """Whether ``link``, found after an attempt begun at Unix time ``since`` whose answer
        was lost, was made by that attempt; and what the decision rests on (``verified_by``:
        ``"created_at"``, ``"created_by"``, both joined by ``+``, or ``"read_back"``)."""
        created_at = link.created_at
        if created_at is not None and self.service_clock.predates(created_at.timestamp(), since):
            return False, "created_at"
        checked = ["created_at"] if created_at is not None else []
        by = link.created_by
        if by is not None and by.id is not None:
            me = await self.me()
            if me:
                if str(by.id) not in me:
                    return False, "created_by"
                checked.append("created_by")
        return True, "+".join(checked) or "read_back"

    def learn(self, sent: float, received: float, created_at: float) -> None:
        """A create answered: sent and answered at these Unix times, the link stamped
        ``created_at`` (it bounds the offset of the service's clock)."""
        self.service_clock.learn(sent, received, created_at)

    async def me(self) -> frozenset[str]:
        """The ids of the token's own user (``GET /v2/myself``), fetched once.

        Empty when the service would not say: then ``createdBy`` is not checked.
        """
        if self._myself is None:
            async with self._lock:
                if self._myself is None:
                    transport = self._transport
                    req = _protocol.myself(self._version)
                    try:
                        resp = await transport.send(req)
                        self._myself = _protocol.decode_answer(
                            req, resp.status, resp.content, _protocol.user_ids, "user",
                            transport.base_url,
                        )  # fmt: skip
                    except TrackerError as exc:
                        logger.warning(
                            "cannot tell the token's user (%s): createdBy unchecked", exc
                        )
                        self._myself = frozenset()
        return self._myself

    async def _fetch(self) -> frozenset[str]:
        transport = self._transport
        req = _protocol.myself(self._version)
        resp = await transport.send(req)
        return _protocol.decode_answer(
            req, resp.status, resp.content, _protocol.user_ids, "user", transport.base_url
        )
