"""The safe delete: a DELETE whose outcome is unknown is looked at before it is sent again.

A DELETE answered by a 5xx, a timeout or a dropped connection may have been applied. The issue's
links are read before a retry: a link no longer listed was deleted by that attempt (and nothing
is re-sent). A 404 to a re-sent DELETE means the same, unless the issue itself is gone (then the
read raises :class:`NotFoundError`). A 404 to the first attempt is :class:`NotFoundError`, or
"not there" for a caller that has just listed the issue (``missing_ok``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from ._exceptions import NotFoundError
from ._models import Link
from ._protocol import Request
from ._transport import Transport, UncertainError

__all__ = ["safe_delete"]

logger: Final = logging.getLogger("tracker_links")


async def safe_delete(
    transport: Transport,
    get: Callable[[str], Awaitable[list[Link]]],
    req: Request,
    issue: str,
    link_id: int | str,
    missing_ok: bool = False,
) -> tuple[bool, int]:
    """Delete link ``link_id`` of ``issue``: whether this call deleted it, and the DELETEs sent.

    ``req`` is the DELETE (:func:`_protocol.delete_link`); ``get`` lists an issue's links. With
    ``missing_ok``, a 404 to the first attempt returns
    ``(False, 1)`` instead of raising.
    """
    wanted = str(link_id)
    retry = transport.retry
    uncertain = False
    attempts = 0
    started = transport.clock()
    while True:
        attempts += 1
        try:
            await transport.send(req, retry_uncertain=False)
        except UncertainError as exc:
            # The DELETE may have been applied: look before sending it again.
            uncertain = True
            delay = retry.next_delay(attempts, transport.clock() - started, None, transport.rand)
            if delay is not None:
                logger.warning(
                    "delete link %s of %s: outcome unknown (%s); checking before a retry",
                    wanted,
                    issue,
                    exc.cause,
                )
                await transport.sleep(delay)
            if all(str(link.id) != wanted for link in await get(issue)):
                return True, attempts  # the attempt landed
            if delay is None:
                cause = exc.cause
                if attempts > 1:
                    cause.message = f"{cause.message} (after {attempts} attempts)"
                raise cause from None
            continue
        except NotFoundError:
            if uncertain:
                # An earlier attempt landed, unless the issue itself is gone (then the read
                # raises NotFoundError).
                await get(issue)
                return True, attempts
            if missing_ok:
                return False, attempts
            raise
        return True, attempts
