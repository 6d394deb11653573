"""Moved issues: the old key -> new key of every move a client has seen. Pure: no I/O here.

An issue moved to another queue gets a new key; the old one stays an alias, which the service
answers with a redirect to the new key (followed by the transport on the same origin). What a
request on an old key touched is learnt from the URL finally used and from the link answered
(its ``self`` names the issue it is on, its ``object`` the other issue). The map then lets a
moved key and its new key be one issue: in the safe create's read-back, in the de-duplication
of repeats, in the journal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Final

from ._models import Link, LinkSpec, identity_digest, link_identity

__all__ = ["Aliases", "is_key", "key_in_url"]

_KEY_RE: Final = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*")
_ISSUE_IN_URL: Final = re.compile(r"/issues/([A-Z][A-Z0-9_]*-[1-9][0-9]*)(?:[/?#]|$)")
_CHAIN: Final = 16  # moves of moves followed at most (a cycle in bad data must not hang)


def is_key(value: str) -> bool:
    """Whether ``value`` is an issue key (``QUEUE-12``), not a 24-hex issue id."""
    return _KEY_RE.fullmatch(value) is not None


def key_in_url(url: str | None) -> str | None:
    """The issue key in an API URL (``…/v2/issues/NEW-3/links/7`` -> ``NEW-3``), if any."""
    if not url:
        return None
    found = _ISSUE_IN_URL.search(url)
    return found.group(1) if found else None


class Aliases(Mapping[str, str]):
    """Old key -> current key of the moved issues seen so far (a chain of moves resolved).

    ``checked`` holds the keys whose current key was asked of the service (moved or not), so
    that each is asked at most once.
    """

    __slots__ = ("_new", "checked")

    def __init__(self, moves: Mapping[str, str] | None = None) -> None:
        self._new: dict[str, str] = {}
        self.checked: set[str] = set()
        for old, new in (moves or {}).items():
            self.learn(old, new)

    def __getitem__(self, key: str) -> str:
        new = self._new[key]
        for _ in range(_CHAIN):
            further = self._new.get(new)
            if further is None or further == key:
                break
            new = further
        return new

    def __iter__(self) -> Iterator[str]:
        return iter(self._new)

    def __len__(self) -> int:
        return len(self._new)

    def __repr__(self) -> str:
        return f"Aliases({dict(self.items())!r})"

    def resolve(self, key: str) -> str:
        """The current key of ``key`` (itself when no move of it is known)."""
        return self[key] if key in self._new else key

    def learn(self, old: str, new: str | None) -> bool:
        """Record that ``old`` is now ``new``; only keys count (an id never moves)."""
        if new is None or old == new or not (is_key(old) and is_key(new)):
            return False
        if self._new.get(old) == new:
            return False
        self._new[old] = new
        self._new.pop(new, None)  # moved back: the new key is current again
        return True

    def learn_from(self, spec: LinkSpec, link: Link, final_url: str | None = None) -> None:
        """What a request for ``spec`` touched: the final URL and the link's two ends."""
        source = key_in_url(final_url) if final_url else None
        if source is None:
            url = link.url  # the link's self: on the issue that answered (cheap test first)
            if url is not None and f"/issues/{spec.source}/" not in url:
                source = key_in_url(url)
        if source is not None:
            self.learn(spec.source, source)
        target = link.target.key
        if target is not None and target != spec.target and link.target.id != spec.target:
            self.learn(spec.target, target)

    def moved(self, spec: LinkSpec) -> dict[str, str] | None:
        """``{old: new}`` for the ends of ``spec`` known to have moved; ``None`` if neither."""
        new = self._new
        if not new or (spec.source not in new and spec.target not in new):
            return None
        return {k: self[k] for k in (spec.source, spec.target) if k in new}

    def identity(self, spec: LinkSpec) -> bytes:
        """:attr:`LinkSpec.digest` of ``spec`` with its ends at their current keys."""
        new = self._new
        if spec.source not in new and spec.target not in new:
            return spec.digest
        source, target = self.resolve(spec.source), self.resolve(spec.target)
        return identity_digest(link_identity(source, target, spec.relationship))

    def matches(self, spec: LinkSpec, link: Link) -> bool:
        """:meth:`LinkSpec.matches`, with a moved target found under its current key."""
        if spec.matches(link):
            return True
        new = self._new
        if spec.target not in new or link.relationship is not spec.relationship:
            return False
        return link.points_to(self[spec.target])
