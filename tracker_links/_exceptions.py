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

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


class TrackerError(Exception):
    """Base class of every error raised by tracker-links.

    Attributes:
        status_code: the HTTP status the service answered, or ``None`` when no answer came
            (bad input caught locally, a dropped connection).
        messages: the service's ``errorMessages`` plus its per-field ``errors``, or the
            library's own explanation.
        method: the HTTP method of the failed request, if one was sent.
        url: the URL of the failed request, if one was sent (never holds credentials).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        messages: tuple[str, ...] | list[str] = (),
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.messages: tuple[str, ...] = tuple(messages)
        self.method = method
        self.url = url

    def __str__(self) -> str:
        where = f"{self.method} {self.url}: " if self.method and self.url else ""
        status = f"HTTP {self.status_code}: " if self.status_code is not None else ""
        return f"{where}{status}{self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Keep keyword-only attributes through pickling (multiprocessing, report files).
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[TrackerError], message: str, state: dict[str, object]) -> TrackerError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


class InvalidInputError(TrackerError, ValueError):
    """Bad input: caught before any request was sent, or refused by the service with a 400.

    Also a :class:`ValueError`, so ``except ValueError`` works as for any bad argument.
    """


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
    """No answer (connection refused, reset or timed out), after every retry allowed."""
