"""The bulk journal: an append-only JSON Lines file of outcomes, what a re-run must not resend.

Each line is one :meth:`Outcome.to_json` object. Reading it back yields the identities
(:attr:`LinkSpec.digest`) of the links it records as done.
"""

from __future__ import annotations

import json
import os
from typing import IO

from ._models import LinkSpec
from ._reports import Outcome

__all__ = ["Journal", "journal_done"]


def journal_done(path: str | os.PathLike[str]) -> set[bytes]:
    r"""The digests of the links a journal records as done (created or exists).

    A missing file is an empty journal; a torn last line (a crash mid-write) and the lines of
    failed items are passed over. Other ``OSError``\ s propagate.
    """
    done: set[bytes] = set()
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except FileNotFoundError:
        return done
    with f:
        for line in f:
            try:
                data = json.loads(line)
                if data.get("status") not in ("created", "exists"):
                    continue
                spec = LinkSpec(data["source"], data["target"], data["relationship"])
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            done.add(spec.digest)
    return done


class Journal:
    """An append-only JSON Lines file of outcomes: what a re-run must not send again."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.done = journal_done(path)
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, outcome: Outcome) -> None:
        # One write per line, flushed: a crash loses at most the line being written.
        self._file.write(json.dumps(outcome.to_json(), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
