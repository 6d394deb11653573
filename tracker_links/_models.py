"""The data model: frozen, slotted attrs classes and the two enums. Pure: no I/O here."""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import attrs

from ._errors import InvalidInputError
from ._history import check_history, format_stamp, parse_login, parse_stamp

__all__ = [
    "Direction",
    "IssueRef",
    "Link",
    "LinkSpec",
    "LinkType",
    "Relationship",
    "StatusRef",
    "UserRef",
    "register_link_type",
]


class Direction(enum.Enum):
    """Which side of a link the requested issue is on (JSON ``direction``)."""

    INWARD = "inward"
    OUTWARD = "outward"


class Relationship(enum.Enum):
    """The relationships of a link: the nine ``POST /v2/issues/<key>/links`` accepts, and the
    two clone ones.

    Each value is the exact API string, read from the issue in the URL towards the linked one:
    ``Relationship("depends on")`` means "the source issue depends on the target".

    ``CLONE`` ("the linked issue is a clone of the current one") and ``ORIGINAL`` ("the current
    issue is a clone of the linked one") are documented for the import endpoint only
    (:meth:`LinkService.import_link`); they may be sent to create, but the service may refuse
    them there (the error then says to use the import).

    >>> Relationship.DEPENDS_ON.inverse
    <Relationship.IS_DEPENDENT_BY: 'is dependent by'>
    """

    RELATES = "relates"
    DEPENDS_ON = "depends on"
    IS_DEPENDENT_BY = "is dependent by"
    IS_SUBTASK_FOR = "is subtask for"
    IS_PARENT_TASK_FOR = "is parent task for"
    DUPLICATES = "duplicates"
    IS_DUPLICATED_BY = "is duplicated by"
    IS_EPIC_OF = "is epic of"
    HAS_EPIC = "has epic"
    CLONE = "clone"
    ORIGINAL = "original"

    @property
    def inverse(self) -> Relationship:
        """The same link read from the other issue (``relates`` is its own inverse)."""
        return _INVERSE[self]

    @property
    def type_id(self) -> str:
        """The link type id the service files this relationship under (``depends``, ...)."""
        return _TYPE_OF[self][0]

    @property
    def direction(self) -> Direction:
        """The ``direction`` the source issue's ``GET …/links`` shows for this relationship."""
        return _TYPE_OF[self][1]

    @classmethod
    def parse(cls, value: Relationship | str) -> Relationship:
        """Return ``value`` as a :class:`Relationship`, or raise :class:`InvalidInputError`.

        Accepts the enum itself, its API string (``"depends on"``), or its name in any case
        (``"DEPENDS_ON"``, ``"depends_on"``). Surrounding blanks are ignored.
        """
        if isinstance(value, Relationship):
            return value
        if isinstance(value, str):
            found = _BY_TEXT.get(value.strip().lower())
            if found is not None:
                return found
        raise InvalidInputError(
            f"unknown relationship {value!r}; expected one of: "
            + ", ".join(repr(r.value) for r in Relationship)
        )


_INVERSE: Final[dict[Relationship, Relationship]] = {}
for _a, _b in (
    (Relationship.RELATES, Relationship.RELATES),
    (Relationship.DEPENDS_ON, Relationship.IS_DEPENDENT_BY),
    (Relationship.IS_SUBTASK_FOR, Relationship.IS_PARENT_TASK_FOR),
    (Relationship.DUPLICATES, Relationship.IS_DUPLICATED_BY),
    (Relationship.IS_EPIC_OF, Relationship.HAS_EPIC),
    (Relationship.CLONE, Relationship.ORIGINAL),
):
    _INVERSE[_a], _INVERSE[_b] = _b, _a

_BY_TEXT: Final[dict[str, Relationship]] = {}
for _r in Relationship:
    _BY_TEXT[_r.value] = _r
    _BY_TEXT[_r.name.lower()] = _r

# (type.id, direction) as seen from the requested issue -> relationship of that issue to
# `object`. Source: ../shared/tracker-api.md section 8. `relates` comes back either way.
_RELATIONSHIP_OF: dict[tuple[str, Direction], Relationship] = {}
_TYPE_OF: dict[Relationship, tuple[str, Direction]] = {}


def register_link_type(type_id: str, *, outward: Relationship, inward: Relationship) -> None:
    """Teach the library which relationships a link type id stands for.

    The built-in table covers ``relates``, ``subtask``, ``depends``, ``duplicates``, ``epic``
    and ``clone``. Only ``relates`` and ``subtask`` are confirmed by the service's documentation; if
    your organization files a relationship under another id, register it here once, at start-up::

        register_link_type("blocker", outward=Relationship.DEPENDS_ON,
                           inward=Relationship.IS_DEPENDENT_BY)
    """
    _RELATIONSHIP_OF[(type_id, Direction.OUTWARD)] = outward
    _RELATIONSHIP_OF[(type_id, Direction.INWARD)] = inward
    _TYPE_OF[outward] = (type_id, Direction.OUTWARD)
    if inward is not outward:
        _TYPE_OF[inward] = (type_id, Direction.INWARD)


register_link_type("relates", outward=Relationship.RELATES, inward=Relationship.RELATES)
register_link_type(
    "subtask", outward=Relationship.IS_PARENT_TASK_FOR, inward=Relationship.IS_SUBTASK_FOR
)
register_link_type("depends", outward=Relationship.DEPENDS_ON, inward=Relationship.IS_DEPENDENT_BY)
register_link_type(
    "duplicates", outward=Relationship.DUPLICATES, inward=Relationship.IS_DUPLICATED_BY
)
register_link_type("epic", outward=Relationship.IS_EPIC_OF, inward=Relationship.HAS_EPIC)
# The clone type's id is not documented (tracker-api.md 1.1): "clone" is a guess, after the
# relationship names and the query language's "Clone"/"Original" filters. The original is "the
# main one" (outward), as the parent of a subtask is. register_link_type() corrects it.
register_link_type("clone", outward=Relationship.CLONE, inward=Relationship.ORIGINAL)

CLONE_RELATIONSHIPS: Final = frozenset({Relationship.CLONE, Relationship.ORIGINAL})
"""Relationships documented for the import endpoint only."""


def relationship_of(type_id: str, direction: Direction) -> Relationship | None:
    """The relationship a link of ``type_id`` read in ``direction`` stands for, if known."""
    return _RELATIONSHIP_OF.get((type_id, direction))


# --- validation ------------------------------------------------------------------------------

_KEY_RE: Final = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*|[0-9a-fA-F]{24}")
_LINK_ID_RE: Final = re.compile(r"[0-9]+")
_KEY_FORMS: Final = "an issue key like 'QUEUE-123' or a 24-hex issue id"


def validate_key(value: object, what: str = "issue key") -> str:
    """Return ``value`` if it is an issue key or a 24-hex issue id; raise otherwise.

    Nothing that could change the request path (``/``, ``..``, ``?``, blanks) gets through.
    """
    if isinstance(value, str) and _KEY_RE.fullmatch(value):
        return value
    raise InvalidInputError(f"invalid {what} {value!r}; expected {_KEY_FORMS}")


def validate_link_id(value: object) -> str:
    """Return a link id (digits only, int or str) as the string that goes into the path."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int) and value >= 0:
        return str(value)
    elif isinstance(value, str) and _LINK_ID_RE.fullmatch(value):
        return value
    raise InvalidInputError(f"invalid link id {value!r}; expected a number such as 1048570")


# --- references --------------------------------------------------------------------------


@attrs.frozen
class LinkType:
    """A link type (JSON ``type``; ``GET /v2/linktypes``).

    ``inward``/``outward`` are display labels and may be localized: never key on them.
    """

    id: str
    inward: str | None = None
    outward: str | None = None
    url: str | None = None


@attrs.frozen
class IssueRef:
    """A reference to an issue (JSON ``object`` of a link): ``display`` is its summary."""

    key: str | None = None
    id: str | None = None
    display: str | None = None
    url: str | None = None


@attrs.frozen
class UserRef:
    """A reference to a user. ``id`` is kept as served (a string, or a number in some pages)."""

    id: str | int | None = None
    display: str | None = None
    url: str | None = None


@attrs.frozen
class StatusRef:
    """A reference to an issue status (``key`` like ``"open"``)."""

    key: str | None = None
    display: str | None = None
    id: str | int | None = None
    url: str | None = None


@attrs.frozen
class Link:
    """One link, as read from one of its two issues.

    ``target`` is the *other* issue (JSON ``object``); ``relationship`` is how the issue whose
    links were read relates to ``target``, derived from ``type.id`` and ``direction``, never from
    the localized labels. It is ``None`` for a link type the library does not know.

    >>> link.relationship            # doctest: +SKIP
    <Relationship.DEPENDS_ON: 'depends on'>
    """

    id: int | str
    type: LinkType
    direction: Direction
    target: IssueRef
    url: str | None = None
    created_by: UserRef | None = None
    updated_by: UserRef | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    assignee: UserRef | None = None
    status: StatusRef | None = None

    @property
    def relationship(self) -> Relationship | None:
        """The relationship of the requested issue to :attr:`target`, or ``None`` if unknown."""
        return relationship_of(self.type.id, self.direction)

    def points_to(self, target: str) -> bool:
        """Whether :attr:`target` is the issue with this key or 24-hex id."""
        ref = self.target
        if target == ref.key:
            return True
        # Issue ids are hex: the service may write them in another case than the caller.
        return ref.id is not None and target.lower() == ref.id.lower()


def link_identity(
    source: str, target: str, relationship: Relationship
) -> tuple[str, str, str, str]:
    """:attr:`LinkSpec.canonical` of ``source`` *relationship* ``target``, for trusted keys.

    (Link listings read from the service need no validation: this skips building a spec.)
    """
    type_id, direction = _TYPE_OF[relationship]
    if relationship is Relationship.RELATES:
        a, b = sorted((source, target))
        return (type_id, a, b, "~")
    if direction is Direction.OUTWARD:
        return (type_id, source, target, ">")
    return (type_id, target, source, ">")


def identity_digest(canonical: tuple[str, str, str, str]) -> bytes:
    """A :attr:`LinkSpec.canonical` tuple as its 96-bit :attr:`LinkSpec.digest`."""
    return hashlib.blake2b("\x1f".join(canonical).encode(), digest_size=12).digest()


def _to_relationship(value: Relationship | str) -> Relationship:
    return Relationship.parse(value)


def _created_at(value: datetime | str | None) -> datetime | None:
    return None if value is None else parse_stamp(value, "created_at")


def _updated_at(value: datetime | str | None) -> datetime | None:
    return None if value is None else parse_stamp(value, "updated_at")


def _created_by(value: str | int | None) -> str | int | None:
    return None if value is None else parse_login(value, "created_by")


def _updated_by(value: str | int | None) -> str | int | None:
    return None if value is None else parse_login(value, "updated_by")


HISTORY_FIELDS: Final = ("created_at", "created_by", "updated_at", "updated_by")
"""The optional history of a :class:`LinkSpec`, in the order journals and CSV columns use."""


@attrs.frozen
class LinkSpec:
    """One link to create: ``source`` *relationship* ``target``, validated on construction.

    The argument order is that of :meth:`LinkService.create`::

        LinkSpec("PROJ-12", "PROJ-7", "depends on")   # PROJ-12 depends on PROJ-7

    Raises :class:`InvalidInputError` (a ``ValueError``) for a malformed key, a self-link or an
    unknown relationship, naming the bad value and what would be valid.

    The optional keyword fields are the link's history, for a migration: a spec with
    ``created_at`` is sent through the import endpoint (:meth:`LinkService.import_link`), which
    keeps them. ``created_at``/``updated_at`` are aware datetimes or the service's text
    ``YYYY-MM-DDThh:mm:ss.sss±hhmm`` (kept as datetimes); ``created_by``/``updated_by`` a login
    or a numeric user id. ``created_*`` go together, and so do ``updated_*``. The history is
    not part of the link's identity: :attr:`canonical` and :attr:`digest` ignore it::

        LinkSpec("PROJ-12", "PROJ-7", "depends on",
                 created_at="2019-03-01T10:00:00.000+0300", created_by="ivanov")
    """

    source: str
    target: str
    relationship: Relationship = attrs.field(converter=_to_relationship)
    created_at: datetime | None = attrs.field(default=None, kw_only=True, converter=_created_at)
    created_by: str | int | None = attrs.field(default=None, kw_only=True, converter=_created_by)
    updated_at: datetime | None = attrs.field(default=None, kw_only=True, converter=_updated_at)
    updated_by: str | int | None = attrs.field(default=None, kw_only=True, converter=_updated_by)

    def __attrs_post_init__(self) -> None:
        validate_key(self.source, "source issue key")
        validate_key(self.target, "target issue key")
        if self.source == self.target:
            raise InvalidInputError(f"a link needs two different issues; got {self.source!r} twice")
        if not (
            self.created_at is None
            and self.created_by is None
            and self.updated_at is None
            and self.updated_by is None
        ):
            check_history(self.created_at, self.created_by, self.updated_at, self.updated_by)

    @property
    def history(self) -> dict[str, str | int]:
        """The history as the import's body and journals write it (``{}`` when there is none):
        ``{"created_at": "2019-03-01T10:00:00.000+0300", "created_by": "ivanov", …}``."""
        if self.created_at is None:
            return {}
        assert self.created_by is not None
        out: dict[str, str | int] = {
            "created_at": format_stamp(self.created_at),
            "created_by": self.created_by,
        }
        if self.updated_at is not None and self.updated_by is not None:
            out["updated_at"] = format_stamp(self.updated_at)
            out["updated_by"] = self.updated_by
        return out

    @property
    def canonical(self) -> tuple[str, str, str, str]:
        """One key for a link however it is written.

        ``A depends on B`` and ``B is dependent by A`` give the same tuple, and so do
        ``A relates B`` and ``B relates A``: ``(type id, outward issue, inward issue, type id)``.
        """
        return link_identity(self.source, self.target, self.relationship)

    @property
    def digest(self) -> bytes:
        """:attr:`canonical` as a compact, collision-safe (96-bit) key: the link's identity.

        The one identity journals, de-duplication of repeats and ``--dry-run`` compare:
        ``LinkSpec("A-1", "A-2", "depends on").digest`` equals the ``digest`` of
        ``LinkSpec("A-2", "A-1", "is dependent by")``.
        """
        return identity_digest(self.canonical)

    def matches(self, link: Link) -> bool:
        """Whether ``link``, read from :attr:`source`, is this very link."""
        return link.points_to(self.target) and link.relationship is self.relationship

    def as_dict(self) -> dict[str, str | int]:
        """``{"source": …, "relationship": …, "target": …}``, as journals and reports write it;
        with the :attr:`history` keys after them when the spec has a history."""
        out: dict[str, str | int] = {
            "source": self.source,
            "relationship": self.relationship.value,
            "target": self.target,
        }
        if self.created_at is not None:
            out.update(self.history)
        return out

    @classmethod
    def coerce(
        cls, item: LinkSpec | tuple[str, str, Relationship | str] | Mapping[str, Any]
    ) -> LinkSpec:
        """A :class:`LinkSpec` from itself, a ``(source, target, relationship)`` tuple, or a
        mapping with those keys (and optionally the history's: ``created_at``, …)."""
        if isinstance(item, LinkSpec):
            return item
        if isinstance(item, tuple) and len(item) == 3:
            return cls(*item)
        if isinstance(item, Mapping):
            try:
                history = {name: item[name] for name in HISTORY_FIELDS if name in item}
                return cls(item["source"], item["target"], item["relationship"], **history)
            except KeyError as exc:
                raise InvalidInputError(
                    f"link spec {dict(item)!r} lacks {exc.args[0]!r}; "
                    "expected source, target, relationship"
                ) from None
        raise InvalidInputError(
            f"cannot read a link spec from {item!r}; "
            "expected a LinkSpec or a (source, target, relationship) tuple"
        )
