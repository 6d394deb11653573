"""The public results of the bulk calls: one :class:`Outcome` per item, and the reports.

Pure data: no I/O but :meth:`BulkReport.write_jsonl`.
"""

from __future__ import annotations

import enum
import json
import os
from typing import Any

import attrs

from ._exceptions import TrackerError
from ._models import Link, LinkSpec

__all__ = [
    "BulkReport",
    "IssueLinks",
    "LinksReport",
    "Outcome",
    "OutcomeStatus",
]


class OutcomeStatus(enum.Enum):
    """What happened to one item of a bulk create (or of a bulk delete, an undo)."""

    CREATED = "created"
    """The link was created by this run."""
    EXISTS = "exists"
    """The link was already there (on the service, in the journal, or earlier in the input)."""
    FAILED = "failed"
    """The item could not be done; ``Outcome.error`` says why."""
    SKIPPED = "skipped"
    """Not attempted: the batch stopped (a 401/403) before reaching it."""
    DELETED = "deleted"
    """The link was deleted by this run."""
    ABSENT = "absent"
    """No such link on the service (gone already): nothing to do, not a failure."""


@attrs.frozen
class Outcome:
    """The result for one input item of :meth:`LinkService.bulk_create` / ``create_many`` (or
    of ``bulk_delete`` / ``delete_many`` / ``undo``).

    ``spec`` is the :class:`LinkSpec`, or the raw input item when it could not be read as one
    (then ``error`` is an :class:`InvalidInputError`). ``link`` is the created or existing link
    when the service returned it (for a delete: the link deleted). ``attempts`` counts the POSTs
    (for a delete, the DELETEs) sent for this item (0 when none was needed). ``index`` is the
    item's position in the input (0-based); ``line`` is its line number when the caller gave one
    (an input item that is a mapping with a ``"line"`` key).
    ``repeat_of`` is the ``index`` of the earlier input item this one repeats (the same link,
    in either spelling), whose outcome it shares; ``None`` when it is not a repeat.
    ``verified_by`` is set when the outcome rests on a check instead of the service's answer:
    the answer to the create was lost (or the process died with it in flight) and the link
    was found by reading the issue's links; it names what decided between ``CREATED`` and
    ``EXISTS``: ``"created_at"`` (the link's ``createdAt`` against the first attempt),
    ``"created_by"`` (its ``createdBy`` against the token's own user), both joined by ``+``,
    or ``"read_back"`` (found, with neither field to check).
    ``moved`` maps the item's keys that belong to moved issues to their current keys
    (``{"OLD-3": "NEW-7"}``): the link is on the new keys. ``None`` when neither end moved.
    """

    spec: Any
    status: OutcomeStatus
    link: Link | None = None
    error: TrackerError | None = None
    attempts: int = 0
    index: int = 0
    note: str | None = None
    repeat_of: int | None = None
    line: int | None = None
    verified_by: str | None = None
    moved: dict[str, str] | None = attrs.field(default=None, hash=False)

    @property
    def ok(self) -> bool:
        """Whether the item is done: ``CREATED``/``EXISTS`` (``DELETED``/``ABSENT``: deletes)."""
        return self.status in (
            OutcomeStatus.CREATED,
            OutcomeStatus.EXISTS,
            OutcomeStatus.DELETED,
            OutcomeStatus.ABSENT,
        )

    @property
    def reason(self) -> str | None:
        """Why the item failed or was skipped, as one line (``None`` when it is ok)."""
        if self.error is not None:
            return f"{type(self.error).__name__}: {self.error}"
        return self.note if not self.ok else None

    def to_json(self) -> dict[str, Any]:
        """One JSON object: the line a journal or a report file holds for this item."""
        spec = self.spec
        out: dict[str, Any] = {"index": self.index}
        if self.line is not None:
            out["line"] = self.line
        out["status"] = self.status.value
        if isinstance(spec, LinkSpec):
            out.update(spec.as_dict())
        else:
            out["input"] = repr(spec)
        if self.link is not None:
            out["link_id"] = self.link.id
            if isinstance(spec, LinkSpec):
                # Where it was created (or found): undo's key; a moved source's new key.
                moved = self.moved
                out["link_issue"] = moved.get(spec.source, spec.source) if moved else spec.source
        out["attempts"] = self.attempts
        if self.repeat_of is not None:
            out["repeat_of"] = self.repeat_of
        if self.verified_by is not None:
            out["verified_by"] = self.verified_by
        if self.moved:
            out["moved"] = dict(self.moved)
        if self.error is not None:
            out["error"] = type(self.error).__name__
            out["status_code"] = self.error.status_code
        reason = self.reason
        if reason is not None:
            out["reason"] = reason
        elif self.note is not None:
            out["note"] = self.note
        return out


@attrs.define
class BulkReport:
    """Every outcome of a bulk create (or delete, undo), in input order, with counts and a summary.

    ``created``, ``existing``, ``deleted``, ``absent``, ``failed`` and ``skipped`` are the
    outcomes of each status (lists:
    ``len(report.failed)`` counts them); ``ok`` is True when nothing failed or was skipped;
    ``elapsed`` is the wall time in seconds.
    """

    outcomes: list[Outcome]
    elapsed: float = 0.0

    def _of(self, status: OutcomeStatus) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is status]

    @property
    def created(self) -> list[Outcome]:
        """Outcomes whose link this run created."""
        return self._of(OutcomeStatus.CREATED)

    @property
    def existing(self) -> list[Outcome]:
        """Outcomes whose link was already there."""
        return self._of(OutcomeStatus.EXISTS)

    @property
    def failed(self) -> list[Outcome]:
        """Outcomes that failed, each with its ``error``."""
        return self._of(OutcomeStatus.FAILED)

    @property
    def skipped(self) -> list[Outcome]:
        """Outcomes not attempted because the batch stopped."""
        return self._of(OutcomeStatus.SKIPPED)

    @property
    def deleted(self) -> list[Outcome]:
        """Outcomes whose link this run deleted (bulk delete, undo)."""
        return self._of(OutcomeStatus.DELETED)

    @property
    def absent(self) -> list[Outcome]:
        """Outcomes whose link was not on the service: nothing to delete."""
        return self._of(OutcomeStatus.ABSENT)

    @property
    def ok(self) -> bool:
        """True when nothing failed or was skipped."""
        return all(o.ok for o in self.outcomes)

    @property
    def moved(self) -> dict[str, str]:
        """Every moved issue key the items named, with its current key (``{}`` if none)."""
        out: dict[str, str] = {}
        for o in self.outcomes:
            if o.moved:
                out.update(o.moved)
        return out

    def counts(self) -> dict[str, int]:
        """The outcomes of each status: ``{"created": n, "exists": n, "failed": n, …}``."""
        counts = dict.fromkeys((s.value for s in OutcomeStatus), 0)
        for o in self.outcomes:
            counts[o.status.value] += 1
        return counts

    def summary(self) -> str:
        """One line, such as ``10000 items in 51.2s (195/s): 9800 created, 150 exists, …``.

        A delete's report counts ``deleted`` and ``absent`` instead of ``created`` and
        ``exists`` (a report holding both kinds, such as a sync's, counts all six).
        """
        c = self.counts()
        n = len(self.outcomes)
        rate = f" ({n / self.elapsed:.0f}/s)" if self.elapsed > 0 else ""
        creates = c["created"] or c["exists"]
        deletes = c["deleted"] or c["absent"]
        shown = ["created", "exists"] if creates or not deletes else []
        if deletes:
            shown += ["deleted", "absent"]
        counted = ", ".join(f"{c[s]} {s}" for s in [*shown, "failed", "skipped"])
        moved = self.moved
        if moved:
            counted += f"; {len(moved)} moved issue keys followed"
        return f"{n} items in {self.elapsed:.1f}s{rate}: {counted}"

    def write_jsonl(self, path: str | os.PathLike[str]) -> None:
        """Write one JSON object per outcome (see :meth:`Outcome.to_json`) to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            for o in self.outcomes:
                f.write(json.dumps(o.to_json(), ensure_ascii=False) + "\n")


@attrs.frozen
class IssueLinks:
    """The links of one issue; ``error`` is set (and ``links`` empty) when reading failed.

    ``aliases`` are the issue's former keys (it was moved), when the search that found it
    says so (:meth:`LinkService.queue_links`); empty otherwise.
    """

    key: str
    links: list[Link]
    error: TrackerError | None = None
    aliases: tuple[str, ...] = ()


@attrs.define
class LinksReport:
    """The result of :meth:`LinkService.bulk_get`: links by key, and the keys that failed."""

    links: dict[str, list[Link]] = attrs.field(factory=dict)
    failed: dict[str, TrackerError] = attrs.field(factory=dict)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every key was read."""
        return not self.failed
