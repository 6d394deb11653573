"""JSON <-> models: one private cattrs converter, configured once at import.

The service writes camelCase keys, calls the link's URL ``self`` and the other issue ``object``,
and writes dates as ``2014-06-18T12:06:02.401+0000``. The structuring functions are generated
once here (``make_dict_structure_fn``) and reused, so decoding a page of links does no
reflection. Unknown keys are ignored: the service adds fields without notice.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Final, TypeVar, Union, get_args, get_origin

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._models import Direction, IssueRef, Link, LinkType, StatusRef, UserRef

__all__ = [
    "converter",
    "parse_datetime",
    "structure_link",
    "structure_link_types",
    "structure_links",
]

T = TypeVar("T")


def parse_datetime(value: str) -> datetime:
    """Parse the service's timestamps; the result is always timezone-aware (UTC if unstated)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        # Python 3.10's fromisoformat does not read "+0000"; strptime does.
        for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
        else:
            raise
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def format_datetime(value: datetime) -> str:
    """The service's own timestamp format: ``2014-06-18T12:06:02.401+0000``."""
    return (
        value.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{value.microsecond // 1000:03d}"
        + (value.strftime("%z") or "+0000")
    )


def _id_value(value: Any, _: Any) -> int | str:
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return value
    raise ValueError(f"expected a number or a string id, got {value!r}")


def _optional_id(value: Any, _: Any) -> int | str | None:
    return None if value is None else _id_value(value, None)


def _optional_of(tp: Any) -> Any:
    """``X`` for ``X | None`` (or ``Optional[X]``); None for any other type."""
    if get_origin(tp) not in (Union, types.UnionType):
        return None
    args = get_args(tp)
    if len(args) != 2 or type(None) not in args:
        return None
    return args[0] if args[1] is type(None) else args[1]


def _make() -> cattrs.Converter:
    conv = cattrs.Converter()

    # ``X | None`` with X's hook looked up once (cattrs' own dispatches on every value: a
    # quarter of the time of structuring a link, which has seven optional fields).
    def optional_hook(tp: Any) -> Callable[[Any, Any], Any]:
        inner = _optional_of(tp)
        hook = conv.get_structure_hook(inner)

        def structure_optional(value: Any, _: Any) -> Any:
            return None if value is None else hook(value, inner)

        return structure_optional

    conv.register_structure_hook_factory(lambda tp: _optional_of(tp) is not None, optional_hook)
    conv.register_structure_hook(datetime, lambda v, _: parse_datetime(v))
    conv.register_unstructure_hook(datetime, format_datetime)
    conv.register_structure_hook(int | str, _id_value)
    conv.register_structure_hook(str | int | None, _optional_id)

    url = override(rename="self")
    renames: dict[type, dict[str, Any]] = {
        LinkType: {"url": url},
        IssueRef: {"url": url},
        UserRef: {"url": url},
        StatusRef: {"url": url},
        Link: {
            "url": url,
            "target": override(rename="object"),
            "created_by": override(rename="createdBy"),
            "updated_by": override(rename="updatedBy"),
            "created_at": override(rename="createdAt"),
            "updated_at": override(rename="updatedAt"),
        },
    }
    # Leaves first, so the Link function embeds the already-registered ones.
    for cls, names in renames.items():
        conv.register_structure_hook(cls, make_dict_structure_fn(cls, conv, **names))
        conv.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True, **names)
        )
    conv.register_unstructure_hook(Direction, lambda d: d.value)
    return conv


converter: Final[cattrs.Converter] = _make()

_structure_link: Final[Callable[[Any, Any], Link]] = converter.get_structure_hook(Link)


def structure_link(data: Any) -> Link:
    """One link from its decoded JSON object."""
    return _structure_link(data, Link)


def structure_links(data: Any) -> list[Link]:
    """A list of links from a decoded JSON array; anything else is a protocol error."""
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON array of links, got {type(data).__name__}")
    hook = _structure_link
    return [hook(item, Link) for item in data]


def structure_link_types(data: Any) -> list[LinkType]:
    """The link types from a decoded JSON array; anything else is a protocol error."""
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON array of link types, got {type(data).__name__}")
    return converter.structure(data, list[LinkType])


def structure(data: Any, cls: type[T]) -> T:
    """Any model from decoded JSON (for the rarely used endpoints)."""
    return converter.structure(data, cls)


def unstructure(obj: Any) -> Any:
    """A model back to the service's JSON shape (camelCase, ``self``, ``object``)."""
    return converter.unstructure(obj)
