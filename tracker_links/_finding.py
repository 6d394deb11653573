"""Finding a link the service may have made, and what its answers say of moved issues.

After an unknown outcome the safe create lists the link's source and looks for it there: by its
target's key, or by the current key of a target that moved (asked of the service once, only
when a refused duplicate is nowhere to be seen). Every answer teaches the client's
:class:`Aliases`: the URL a redirect ended at, and the link answered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from . import _protocol
from ._exceptions import TrackerError
from ._models import Link, LinkSpec
from ._moves import Aliases, is_key, key_in_url
from ._transport import Response, Transport

__all__ = ["Finder"]

logger: Final = logging.getLogger("tracker_links")


class Finder:
    """The read-back of the safe create, aware of moved issues (one per :class:`LinkService`).

    ``get`` lists an issue's links; ``aliases`` is the client's map of moves, taught here.
    """

    def __init__(
        self,
        transport: Transport,
        version: str,
        aliases: Aliases,
        get: Callable[[str], Awaitable[list[Link]]],
    ) -> None:
        self._transport = transport
        self._version = version
        self.aliases = aliases
        self._get = get

    def learn(self, key: str, req: _protocol.Request, resp: Response) -> None:
        """Learn a move from the URL an answer finally came from (after a redirect)."""
        final = resp.url  # None when no redirect was followed
        if final is not None and not final.endswith(req.path):
            self.aliases.learn(key, key_in_url(final))

    def learn_made(self, spec: LinkSpec, link: Link, resp: Response) -> None:
        """Learn the moves of a create's two ends from its answer."""
        self.aliases.learn_from(spec, link, resp.url)

    async def find(self, spec: LinkSpec, resolve: bool = False) -> Link | None:
        """The link ``spec`` names among its source's links, if there.

        With ``resolve`` (the service says the link exists, yet it is not listed), a target
        that may have moved is asked its current key first (once per key and client).
        """
        links = await self._get(spec.source)
        aliases = self.aliases
        for link in links:
            if aliases.matches(spec, link):
                aliases.learn_from(spec, link)
                return link
        # Not there by its target's key: maybe the target moved and the link is listed under
        # its new key. Ask its current key once, and only when a link of the same kind exists.
        target = spec.target
        if not resolve or target in aliases or target in aliases.checked or not is_key(target):
            return None
        if not any(link.relationship is spec.relationship for link in links):
            return None
        if await self.current_key(target) == target:
            return None
        for link in links:
            if aliases.matches(spec, link):
                return link
        return None

    async def current_key(self, key: str) -> str:
        """The current key of issue ``key`` (``GET …/issues/<key>?fields=key``), learnt once.

        ``key`` itself when it has not moved or the service would not say.
        """
        aliases = self.aliases
        aliases.checked.add(key)
        req = _protocol.issue_key(key, self._version)
        try:
            resp = await self._transport.send(req)
            self.learn(key, req, resp)
            current = _protocol.issue_key_of(_protocol.decode_json(resp.content))
        except (TrackerError, ValueError) as exc:
            logger.warning("cannot tell whether issue %s moved (%s)", key, exc)
            return aliases.resolve(key)
        aliases.learn(key, current)
        return aliases.resolve(key)
