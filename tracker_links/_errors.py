"""The root of the error tree: :class:`TrackerError` and :class:`InvalidInputError`.

These two are what the data model raises when it validates, so they sit below it; the rest of
the tree, drawn in ``_exceptions``, sits above the model (a :class:`ConflictError` carries a
:class:`Link`). Import every error from ``_exceptions`` (or the package), not from here.
"""

from __future__ import annotations

__all__ = ["InvalidInputError", "TrackerError"]


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
