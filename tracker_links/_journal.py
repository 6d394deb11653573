"""The bulk journal: a write-ahead, append-only JSON Lines file of intents and outcomes.

Two kinds of line, each written whole and flushed before the step it records goes on:

- an **intent**, written just before a create is sent::

    {"intent": "create", "index": 4, "line": 6, "source": "A-1", "relationship": "relates",
     "target": "A-2", "at": "2026-12-01T17:05:01.250+00:00"}

- an **outcome** (:meth:`Outcome.to_json`), written when the item is settled::

    {"index": 4, "line": 6, "status": "created", "source": "A-1", ..., "link_id": 1048570,
     "link_issue": "A-1", "attempts": 1}

Reading it back gives the links done (``created``/``exists`` outcomes: not sent again) and the
**pending** intents (no outcome after them: the process died, or the read-back failed, while
the create was in flight), which a resume reads back (GET) before it sends anything. An outcome
whose issues had moved records ``"moved": {"OLD-3": "NEW-7"}``: its link is done under the old
keys and the new ones alike, and the moves are handed to the next run (``aliases``). Lines are
matched by the link's identity (:attr:`LinkSpec.digest`), not by position, so a resume may feed
the input in another order. A torn or garbled line (a crash mid-write) is skipped, never
merged with the next: a writer that finds the file not ending in a newline starts with one.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import IO, Any

from ._models import LinkSpec
from ._reports import Outcome

__all__ = ["Journal", "JournalState", "journal_done", "read_journal"]

_DONE = frozenset({"created", "exists"})


class JournalState:
    """What a journal records: the links done, and the intents still open (digest -> Unix
    time of the intent), and the moves of issues its outcomes saw (old key -> new key)."""

    __slots__ = ("aliases", "done", "pending", "torn")

    def __init__(self) -> None:
        self.done: set[bytes] = set()
        self.pending: dict[bytes, float] = {}
        self.torn = False  # the file does not end with a newline
        self.aliases: dict[str, str] = {}


def _spec_of(data: dict[str, Any]) -> LinkSpec:
    return LinkSpec(data["source"], data["target"], data["relationship"])


def read_journal(path: str | os.PathLike[str]) -> JournalState:
    r"""Read a journal; a missing file is an empty one. Garbled lines are passed over.

    ``OSError``\ s other than a missing file propagate.
    """
    state = JournalState()
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return state
    done, pending = state.done, state.pending
    raw = b"\n"
    with f:
        for raw in f:
            try:
                data = json.loads(raw)
                if not isinstance(data, dict):
                    continue
                spec = _spec_of(data)
                key = spec.digest
                if "intent" in data:
                    pending[key] = datetime.fromisoformat(data["at"]).timestamp()
                    continue
                status = data["status"]
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # torn, garbled, or not ours
            pending.pop(key, None)
            if status in _DONE:
                done.add(key)
                moved = data.get("moved")
                if moved and isinstance(moved, dict):
                    _done_moved(state, spec, moved)
    state.torn = not raw.endswith(b"\n")
    return state


def _done_moved(state: JournalState, spec: LinkSpec, moved: dict[str, Any]) -> None:
    """A done link whose issues had moved: done under their current keys as well."""
    for old, new in moved.items():
        if isinstance(old, str) and isinstance(new, str):
            state.aliases[old] = new
    try:
        current = LinkSpec(
            state.aliases.get(spec.source, spec.source),
            state.aliases.get(spec.target, spec.target),
            spec.relationship,
        )
    except ValueError:
        return
    state.done.add(current.digest)


def journal_done(path: str | os.PathLike[str]) -> set[bytes]:
    """The digests of the links a journal records as done (created or exists)."""
    return read_journal(path).done


class Journal:
    """An open journal: what it held when opened (``done``, ``pending``), and its writer."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        state = read_journal(path)
        self.done = state.done
        self.pending = state.pending
        self.aliases = state.aliases
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        if state.torn:
            self._write("\n")  # the torn line stays alone on its line, skipped when read

    def _write(self, text: str) -> None:
        # One write per line, flushed: a crash loses at most the line being written, and
        # what was flushed survives the process (SIGKILL included).
        self._file.write(text)
        self._file.flush()

    def intent(self, spec: LinkSpec, index: int, line: int | None, at: float) -> None:
        """Record that the create of ``spec`` is about to be sent (``at``: Unix time)."""
        record: dict[str, Any] = {"intent": "create", "index": index}
        if line is not None:
            record["line"] = line
        record.update(spec.as_dict())
        record["at"] = datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")
        self._write(json.dumps(record, ensure_ascii=False) + "\n")

    def write(self, outcome: Outcome) -> None:
        """Record an item's outcome."""
        self._write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._file.close()
