"""A link's history for the import endpoint: its dates and its users, validated. Pure.

The import (``POST …/links/_import``) takes ``createdAt``/``createdBy`` and optionally
``updatedAt``/``updatedBy``; dates are written ``YYYY-MM-DDThh:mm:ss.sss±hhmm``
(tracker-api.md 1.5), users are a login or a numeric user id.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Final

from ._errors import InvalidInputError, TrackerError

__all__ = [
    "check_history",
    "clone_refused",
    "format_stamp",
    "import_forbidden",
    "judge_import",
    "parse_login",
    "parse_stamp",
]

_STAMP_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}")
_STAMP_FORM: Final = "an aware datetime or a string 'YYYY-MM-DDThh:mm:ss.sss±hhmm'"
_LOGIN_MAX: Final = 256


def parse_stamp(value: datetime | str | None, name: str) -> datetime | None:
    """``value`` as an aware datetime: given as one, or as the service's date text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInputError(
                f"{name} {value!r} is a naive datetime: give it a timezone "
                "(datetime(..., tzinfo=timezone.utc)), the service needs the offset"
            )
        return value
    if isinstance(value, str) and _STAMP_RE.fullmatch(value):
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
        except ValueError as exc:
            raise InvalidInputError(
                f"invalid {name} {value!r}: {exc}; expected {_STAMP_FORM}"
            ) from None
    raise InvalidInputError(f"invalid {name} {value!r}; expected {_STAMP_FORM}")


def format_stamp(value: datetime) -> str:
    """The service's date text: ``2014-06-18T12:06:02.401+0000`` (milliseconds, ``±hhmm``)."""
    offset = value.utcoffset() or timedelta(0)
    if offset % timedelta(minutes=1):  # an offset with seconds has no ±hhmm form: say it in UTC
        value, offset = value.astimezone(timezone.utc), timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(offset) // timedelta(minutes=1)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
        f"{value.minute:02d}:{value.second:02d}.{value.microsecond // 1000:03d}"
        f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


def parse_login(value: str | int | None, name: str) -> str | int | None:
    """A user as the import takes it: a login, or a numeric user id (an int or digits).

    A login is 1 to 256 characters without blanks or control characters.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value > 0:
            return value
    elif (
        isinstance(value, str)
        and 0 < len(value) <= _LOGIN_MAX
        and value.isprintable()
        and not any(c.isspace() for c in value)
    ):
        return value
    raise InvalidInputError(
        f"invalid {name} {value!r}; expected a login (no blanks or control characters) "
        "or a numeric user id"
    )


def check_history(
    created_at: datetime | None,
    created_by: str | int | None,
    updated_at: datetime | None,
    updated_by: str | int | None,
) -> None:
    """Raise unless the four make a history: none, or both created_*, and updated_* together."""
    if (created_at is None) != (created_by is None):
        given, missing = ("created_at", "created_by")[:: 1 if created_by is None else -1]
        raise InvalidInputError(f"{given} needs {missing}: a link's history has both or neither")
    if (updated_at is None) != (updated_by is None):
        given, missing = ("updated_at", "updated_by")[:: 1 if updated_by is None else -1]
        raise InvalidInputError(f"{given} needs {missing}: give both or neither")
    if updated_at is not None:
        if created_at is None:
            raise InvalidInputError("updated_at/updated_by need created_at and created_by")
        if updated_at < created_at:
            raise InvalidInputError(
                f"updated_at {format_stamp(updated_at)} is before created_at "
                f"{format_stamp(created_at)}"
            )


def judge_import(asked: datetime, found: datetime | None) -> tuple[bool, str]:
    """Whether a link found after an import whose answer was lost is that import's work.

    An imported link's ``createdAt`` is its history, not the time of the call, so it says
    nothing about who made it when it is the one asked for (``"read_back"``: taken as made); a
    link with another ``createdAt`` was there before (``"created_at"``).
    """
    if found is not None and abs(found - asked) >= timedelta(milliseconds=1):
        return False, "created_at"
    return True, "read_back"


def _reworded(exc: TrackerError, message: str) -> TrackerError:
    return type(exc)(
        message,
        status_code=exc.status_code,
        messages=exc.messages,
        method=exc.method,
        url=exc.url,
    )


def clone_refused(exc: TrackerError) -> TrackerError:
    """The service's refusal of a clone link on create, saying to use the import."""
    return _reworded(
        exc,
        f"{exc.message}; the service may accept 'clone'/'original' only through the import "
        "endpoint: use client.links.import_link(...) (or give the spec created_at/created_by)",
    )


def import_forbidden(exc: TrackerError) -> TrackerError:
    """A 403 on the import (the same error class): newer docs let only an administrator."""
    return _reworded(
        exc,
        f"{exc.message}; importing links with their history (POST …/links/_import) needs an "
        "administrator of the organization (newer docs), not only the right to edit the issue: "
        "use an administrator's token, or create the links without history",
    )
