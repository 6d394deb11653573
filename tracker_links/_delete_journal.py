"""The journal of a bulk delete (or an undo): an append-only JSON Lines file of outcomes.

Each line is one :meth:`Outcome.to_json` object, plus ``"by_id"`` for an item that named its
link by id. Reading it back yields the identities of the items recorded ``deleted`` or
``absent``: what a re-run does not send again. A delete needs no intent line (unlike a create):
re-sending it is safe, since the safe delete looks before it re-sends.
"""

from __future__ import annotations

import json
import os
from typing import IO

from ._models import LinkSpec, validate_link_id
from ._reports import Outcome

__all__ = ["DeleteJournal", "identity", "read_removed"]


def identity(spec: LinkSpec, link_id: str | None) -> bytes:
    """An item's identity: the link's digest (either spelling), and its id when by id."""
    return spec.digest if link_id is None else spec.digest + b"#" + link_id.encode()


def read_removed(path: str | os.PathLike[str]) -> tuple[set[bytes], bool]:
    """The identities a delete journal records as done (``deleted`` or ``absent``), and
    whether its last line is torn. A missing file is an empty journal."""
    done: set[bytes] = set()
    torn = False
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except FileNotFoundError:
        return done, torn
    with f:
        for line in f:
            torn = not line.endswith("\n")
            try:
                data = json.loads(line)
                if data.get("status") not in ("deleted", "absent"):
                    continue
                spec = LinkSpec(data["source"], data["target"], data["relationship"])
                by_id = data.get("by_id")
                key = identity(spec, None if by_id is None else validate_link_id(by_id))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            done.add(key)
    return done, torn


class DeleteJournal:
    """An append-only JSON Lines file of delete outcomes: what a re-run must not send again.

    Each line is :meth:`Outcome.to_json` plus ``"by_id"`` for an item named by id. ``done``
    holds the identities of the items recorded ``deleted`` or ``absent``. A torn last line (a
    crash mid-write) is passed over, and the next line starts on a line of its own.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.done, torn = read_removed(path)
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        if torn:
            self._file.write("\n")

    def write(self, outcome: Outcome, by_id: str | None) -> None:
        data = outcome.to_json()
        if by_id is not None:
            data["by_id"] = by_id
        # One write per line, flushed: a crash loses at most the line being written.
        self._file.write(json.dumps(data, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
