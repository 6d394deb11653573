"""Undo a bulk create: read its journal and delete exactly the links that run created.

A create journal (of ``bulk_create``, ``create_many`` or ``bulk-link --journal``, see
``_journal``) holds one outcome line per item. Only the ``created`` ones are undone, never
``exists`` (a link the run found already there):

- a line with ``link_id`` (and ``link_issue``, the issue it was created on; journals written
  before ``link_issue`` existed name the spec's source, where creates are sent) is deleted by
  that id, after the issue's listing shows the id still joining the same two issues with the
  same relationship: a link re-created later between the same pair has another id and stays;
- a line without ``link_id`` (a journal from before ids were recorded) falls back to
  delete-by-triple: whatever link of that relationship joins the pair now is deleted;
- an **intent** left open (the create was in flight when the run died, and no later run
  settled it) is read back: the link found is deleted only if the service says this token made
  it after the intent (``createdAt`` / ``createdBy``, as a resume decides).

The items go to the delete engine (``_bulk_delete``) in the journal's order (a pending intent
at the end), so the undo has the engine's concurrency, progress, journal and resume.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Final

import attrs

from ._bulk_delete import BadItem, LinkToDelete, bulk_delete
from ._errors import InvalidInputError
from ._models import LinkSpec
from ._ops import Ops
from ._reports import BulkReport, Outcome

__all__ = ["UndoItems", "check_journals", "read_undo", "undo"]

logger: Final = logging.getLogger("tracker_links")


def _open(path: str | os.PathLike[str]) -> Any:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read the journal {os.fspath(path)!r}: {exc.strerror or exc}"
        ) from None


def _item(data: dict[str, Any], number: int) -> LinkToDelete | BadItem:
    """The undo of one ``created`` line."""
    try:
        spec = LinkSpec(data["source"], data["target"], data["relationship"])
    except (KeyError, TypeError, ValueError) as exc:
        return BadItem(data, f"journal line {number}: not a link spec ({exc})", number)
    link_id = data.get("link_id")
    if link_id is None:
        return LinkToDelete(spec, line=number)  # an older journal: by triple
    issue = data.get("link_issue", spec.source)
    if issue == spec.target:
        spec = LinkSpec(spec.target, spec.source, spec.relationship.inverse)
    elif issue != spec.source:
        return BadItem(data, f"journal line {number}: link_issue {issue!r} is neither end", number)
    try:
        return LinkToDelete(spec, link_id, line=number)
    except InvalidInputError as exc:
        return BadItem(data, f"journal line {number}: {exc.message}", number)


@attrs.define
class UndoItems:
    """What undoing a create journal deletes, read lazily: iterate it for the items.

    ``garbled`` counts the lines that were not JSON records (a torn line: a crash mid-write;
    the intent written before each create covers the item). ``count()`` reads the whole
    journal once for the number of items (the progress bar's total).
    """

    path: str | os.PathLike[str]
    garbled: int = 0

    def __iter__(self) -> Iterator[LinkToDelete | BadItem]:
        # Intents still open at the end of the file: the create was in flight and no run
        # settled it. Keyed by the link's identity, as the journal matches them.
        pending: dict[bytes, tuple[LinkSpec, float, int]] = {}
        self.garbled = 0
        with _open(self.path) as f:
            for number, raw in enumerate(f, 1):
                try:
                    data = json.loads(raw)
                    if not isinstance(data, dict):
                        raise ValueError("not an object")
                except ValueError:
                    if raw.strip():
                        self.garbled += 1
                        logger.warning("undo: journal line %d is not a record; passed over", number)
                    continue
                if "intent" in data:
                    try:
                        spec = LinkSpec(data["source"], data["target"], data["relationship"])
                        at = datetime.fromisoformat(data["at"]).timestamp()
                    except (KeyError, TypeError, ValueError):
                        continue
                    pending[spec.digest] = (spec, at, number)
                    continue
                status = data.get("status")
                if pending:
                    try:
                        key = LinkSpec(data["source"], data["target"], data["relationship"])
                        pending.pop(key.digest, None)
                    except (KeyError, TypeError, ValueError):
                        pass
                if status == "created":
                    yield _item(data, number)
        for spec, at, number in pending.values():
            yield LinkToDelete(spec, line=number, since=at)

    def count(self) -> int:
        return sum(1 for _ in self)


def read_undo(path: str | os.PathLike[str]) -> UndoItems:
    """The items undoing the create journal at ``path`` deletes (checked readable now)."""
    _open(path).close()
    return UndoItems(path)


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_journals(
    journal_path: str | os.PathLike[str], journal: str | os.PathLike[str] | None
) -> UndoItems:
    """The items of undoing ``journal_path``, once both paths are checked (before any request)."""
    if journal is not None and _same_file(journal, journal_path):
        raise InvalidInputError(
            "the undo's own journal must be another file than the journal it undoes"
        )
    return read_undo(journal_path)


async def undo(
    ops: Ops,
    journal_path: str | os.PathLike[str],
    *,
    journal: str | os.PathLike[str] | None = None,
    on_progress: Callable[[int, int | None, Outcome], object] | None = None,
) -> BulkReport:
    items = check_journals(journal_path, journal)
    total = items.count() if on_progress is not None else None
    return await bulk_delete(ops, items, on_progress=on_progress, journal=journal, total=total)
