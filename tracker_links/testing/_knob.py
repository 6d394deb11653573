"""Knob: a public attribute of the fake that lives on one of its parts, read and written through."""

from __future__ import annotations

from typing import Generic, TypeVar, overload

__all__ = ["Knob"]

T = TypeVar("T")


class Knob(Generic[T]):
    """A knob of the fake that lives on one of its parts: read and written through."""

    def __init__(self, part: str) -> None:
        self.part = part
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
        setattr(getattr(obj, self.part), self.name, value)
