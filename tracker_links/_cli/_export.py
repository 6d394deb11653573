"""Exporting a queue's links: each link once, in one spelling, written as it arrives."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from typing import Any, Final, TextIO

import attrs

from .._client import TrackerClient
from .._exceptions import AuthError, InvalidInputError, TrackerError
from .._graph import natural_key
from .._models import Direction, Link, Relationship
from .._reports import IssueLinks
from ._errors import UsageError
from ._input import FIELDS
from ._output import n
from ._progress import Progress
from ._setup import aclose

__all__ = [
    "FORMATS",
    "LinkRow",
    "LinkWriter",
    "QueueExport",
    "cycle_lines",
    "export_queue",
    "mermaid_id",
    "target_key",
]

FORMATS: Final = ("jsonl", "csv", "dot", "mermaid")


def target_key(link: Link) -> str:
    """The key of the issue at the other end of ``link``."""
    return link.target.key or link.target.id or "?"


@attrs.frozen
class LinkRow:
    """One link of an export, read the way the service files it (``A depends on B``)."""

    source: str
    relationship: str
    target: str
    link_id: int | str
    type: str
    direction: str  # as the source issue's links show it (outward for every known type)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "relationship": self.relationship,
            "target": self.target,
            "link_id": self.link_id,
            "type": self.type,
            "direction": self.direction,
        }
        return out


def _export_row(key: str, link: Link) -> tuple[tuple[str, str, str], LinkRow]:
    """The link in one spelling whichever issue it was read from, and its identity.

    ``B is dependent by A`` read from B becomes ``A depends on B``; ``relates`` puts the smaller
    key first. So the same link read from both of its issues is written once.
    """
    other = target_key(link)
    rel = link.relationship
    if rel is None:
        row = LinkRow(key, "", other, link.id, link.type.id, link.direction.value)
        return ("?" + link.type.id, str(link.id), ""), row
    source, target = key, other
    if rel.direction is Direction.INWARD:
        source, target, rel = other, key, rel.inverse
    if rel is Relationship.RELATES and natural_key(target) < natural_key(source):
        source, target = target, source
    row = LinkRow(source, rel.value, target, link.id, rel.type_id, rel.direction.value)
    return (rel.type_id, source, target), row


def mermaid_id(key: str) -> str:
    """A Mermaid node id for an issue key."""
    return re.sub(r"[^A-Za-z0-9_]", "_", key)


class LinkWriter:
    """Writes links as JSON Lines, CSV (re-importable by bulk-link), DOT or Mermaid."""

    def __init__(self, fmt: str, stream: TextIO) -> None:
        self.fmt = fmt
        self.stream = stream
        self._csv = None
        if fmt == "csv":
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow([*FIELDS, "link_id", "type", "direction"])
        elif fmt == "dot":
            stream.write("digraph links {\n  rankdir=LR;\n  node [shape=box];\n")
        elif fmt == "mermaid":
            stream.write("graph LR\n")

    def write(self, row: LinkRow) -> None:
        fmt, stream = self.fmt, self.stream
        label = row.relationship or f"{row.type} ({row.direction})"
        if fmt == "jsonl":
            stream.write(json.dumps(row.as_dict(), ensure_ascii=False) + "\n")
        elif self._csv is not None:
            self._csv.writerow(
                [row.source, row.relationship, row.target, row.link_id, row.type, row.direction]
            )
        elif fmt == "dot":
            extra = ", dir=none" if row.relationship == Relationship.RELATES.value else ""
            stream.write(
                f"  {json.dumps(row.source)} -> {json.dumps(row.target)} "
                f"[label={json.dumps(label)}{extra}];\n"
            )
        else:
            arrow = "---" if row.relationship == Relationship.RELATES.value else "-->"
            text = label.replace("|", "/").replace('"', "'")
            stream.write(
                f'  {mermaid_id(row.source)}["{row.source}"] {arrow}|{text}| '
                f'{mermaid_id(row.target)}["{row.target}"]\n'
            )

    def close(self) -> None:
        if self.fmt == "dot":
            self.stream.write("}\n")
        self.stream.flush()


class QueueExport:
    """Takes the links of each issue as they arrive: de-duplicates, writes, counts, graphs."""

    def __init__(self, writer: LinkWriter | None, progress: Progress) -> None:
        self.writer = writer
        self.progress = progress
        self.seen: set[tuple[str, str, str]] = set()
        self.issues = 0
        self.by_relationship: Counter[str] = Counter()
        self.degree: Counter[str] = Counter()
        self.depends: dict[str, set[str]] = {}  # A -> {B}: A depends on B
        self.failed: list[tuple[str, TrackerError]] = []
        self.auth: TrackerError | None = None

    @property
    def links(self) -> int:
        return len(self.seen)

    def add(self, item: IssueLinks) -> None:
        self.issues += 1
        if item.error is not None:
            self.failed.append((item.key, item.error))
            if isinstance(item.error, AuthError) and self.auth is None:
                self.auth = item.error
            self.progress.advance("failed")
            return
        new = 0
        for link in item.links:
            key, row = _export_row(item.key, link)
            if key in self.seen:
                continue
            self.seen.add(key)
            new += 1
            self.by_relationship[row.relationship or f"{row.type} ({row.direction})"] += 1
            self.degree[row.source] += 1
            self.degree[row.target] += 1
            if row.relationship == Relationship.DEPENDS_ON.value:
                self.depends.setdefault(row.source, set()).add(row.target)
            if self.writer is not None:
                self.writer.write(row)
        self.progress.advance("links", new)


async def export_queue(
    client: TrackerClient, queue: str | None, query: str | None, export: QueueExport
) -> None:
    """Read every issue's links of ``queue`` (or ``query``) into ``export``."""
    try:
        items = client.links.queue_links(queue, query=query)
    except InvalidInputError as exc:
        raise UsageError(exc.message) from None
    try:
        async for item in items:
            export.add(item)
            if export.auth is not None:
                break  # no hammering with a bad token
    finally:
        await aclose(items)


def cycle_lines(cycles: list[tuple[list[str], int]]) -> list[str]:
    """The dependency cycles, for people."""
    if not cycles:
        return ["no dependency cycles ('depends on' loops)"]
    issues = sum(size for _, size in cycles)
    lines = [
        f"{len(cycles)} dependency cycle(s) ('depends on' loops) among {n(issues)} issues "
        "(A -> B: A depends on B):"
    ]
    for i, (path, size) in enumerate(cycles, 1):
        note = "" if size == len(path) - 1 else f"  (one loop of a knot of {n(size)} issues)"
        lines.append(f"  {i}. {' -> '.join(path)}{note}")
    return lines
