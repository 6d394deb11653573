"""Who made a link found after a lost answer: the decision behind an honest ``CREATED``.

When a create's answer is lost (5xx, timeout, dropped connection) and the link is then found,
it was made by that attempt unless its ``createdAt`` predates the attempt (allowing for the
service's clock to lag) or another user made it (``createdBy`` against ``GET /v2/myself``,
fetched once per client, when first needed).
"""

from __future__ import annotations

import logging
from typing import Final

import anyio

from . import _protocol
from ._exceptions import TrackerError
from ._models import Link
from ._transport import Transport

__all__ = ["CLOCK_SKEW", "Provenance"]

logger: Final = logging.getLogger("tracker_links")

# How far the service's clock may run behind ours: a link whose createdAt is earlier than the
# first attempt by more than this was there before it.
CLOCK_SKEW: Final = 2.0


class Provenance:
    """Judges links found after lost answers, for one client (it caches the token's user)."""

    def __init__(self, transport: Transport, version: str = "v2") -> None:
        self._transport = transport
        self._version = version
        self._myself: frozenset[str] | None = None
        self._lock = anyio.Lock()

    async def judge(self, link: Link, since: float) -> tuple[bool, str]:
        """Whether ``link``, found after an attempt begun at Unix time ``since`` whose answer
        was lost, was made by that attempt; and what the decision rests on (``verified_by``:
        ``"created_at"``, ``"created_by"``, both joined by ``+``, or ``"read_back"``)."""
        created_at = link.created_at
        if created_at is not None and created_at.timestamp() < since - CLOCK_SKEW:
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
