"""The whole error tree of tracker-links.

::

    TrackerError                    every error the library raises
    ├── InvalidInputError           bad input caught before sending, or a 400 (also a ValueError)
    ├── AuthError                   401, 403: bad or expired token, no rights, no org header
    ├── NotFoundError               404: no such issue or link
    ├── ConflictError               409, 422: the link exists (``.link``) or the request was refused
    ├── RateLimitError              429 after every retry (``.retry_after``)
    ├── ServerError                 5xx after every retry
    └── TransportError              connect/read failures after every retry

No message, ``repr`` or attribute of these exceptions ever holds a token: the library sends
credentials only in headers, and headers are never copied into an error.
"""

from __future__ import annotations

from ._errors import InvalidInputError, TrackerError
from ._models import Link

__all__ = [
    "AuthError",
    "ConflictError",
    "InvalidInputError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "TrackerError",
    "TransportError",
]


class AuthError(TrackerError):
    """401 or 403: the token is missing, malformed, expired, or lacks the rights."""


class NotFoundError(TrackerError):
    """404: the issue (or the link) does not exist or is not visible to this token."""


class ConflictError(TrackerError):
    """409 or 422 on a write.

    On :meth:`LinkService.create`, ``link`` is the existing link when the service refused a
    duplicate (confirmed by reading the issue's links); it is ``None`` when the refusal was for
    another reason (an epic link on an issue that is not an epic, for instance).
    """

    def __init__(self, message: str, *, link: Link | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.link = link


class RateLimitError(TrackerError):
    """429, still answered after every retry the :class:`RetryPolicy` allowed.

    ``retry_after`` holds the service's last ``Retry-After`` in seconds, if it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(TrackerError):
    """5xx, still answered after every retry the :class:`RetryPolicy` allowed."""


class TransportError(TrackerError):
    """No answer (connection refused, reset or timed out), after every retry allowed.

    ``connect_failed`` is True when no connection could be made at all (refused, a DNS
    failure, a TLS handshake failure, a connect timeout): the service was not reached.
    """

    def __init__(self, message: str, *, connect_failed: bool = False, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.connect_failed = connect_failed
