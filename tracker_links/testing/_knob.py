"""Knob: a public attribute of the fake that lives on one of its parts, read and written through.

A knob may carry a check, the same one its part applies at construction, so that a value set
between requests is refused as clearly as one given to the constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

__all__ = ["Knob", "check_seconds", "check_share", "check_status_4xx"]

T = TypeVar("T")


def check_seconds(name: str, value: Any) -> None:
    """A duration in seconds: a number >= 0."""
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")


def check_share(name: str, value: Any) -> None:
    """A share of the requests: a number between 0 and 1."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


def check_status_4xx(name: str, value: Any) -> None:
    """An answer status that is a 4xx, or None."""
    if value is not None and not 400 <= value <= 499:
        raise ValueError(f"{name} must be a 4xx (409, 422) or None, got {value!r}")


class Knob(Generic[T]):
    """A knob of the fake that lives on one of its parts: read and written through."""

    def __init__(self, part: str, check: Callable[[str, Any], None] | None = None) -> None:
        self.part = part
        self.check = check
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Knob[T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> T: ...
    def __get__(self, obj: object | None, owner: type) -> T | Knob[T]:
        if obj is None:
            return self
        value: T = getattr(getattr(obj, self.part), self.name)
        return value

    def __set__(self, obj: object, value: T) -> None:
        if self.check is not None:
            self.check(self.name, value)
        setattr(getattr(obj, self.part), self.name, value)
