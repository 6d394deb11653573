"""The demo's undo step: a second bulk-link run (a "migration"), then its undo from the journal.

The migration links new pairs and, on purpose, some links the first run made already (it finds
them: ``exists``). Undoing it must delete exactly the links it created and leave every other
link of the queue in place; the step checks that against the links read back from the fake.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
from collections.abc import Callable
from typing import Any

from .._client import TrackerClient
from .._models import LinkSpec
from .._reports import Outcome
from ._bulk_run import bulk_link, print_bulk
from ._input import FIELDS
from ._output import UI, n
from ._progress import Progress

__all__ = ["undo_step"]

Check = tuple[str, bool]


def _created(journal: str) -> list[LinkSpec]:
    """The links a journal says its run created."""
    out: list[LinkSpec] = []
    with open(journal, encoding="utf-8") as f:
        for line in f:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("status") == "created":
                out.append(LinkSpec(data["source"], data["target"], data["relationship"]))
    return out


def _migration(path: str, made: list[LinkSpec], issues: int, seed: int) -> tuple[int, int]:
    """Write the migration's CSV: new links and links the first run made; their counts."""
    rng = random.Random(seed + 1)
    taken = {frozenset((s.source, s.target)) for s in made}
    again = rng.sample(made, min(len(made), max(5, len(made) // 20)))
    new: list[tuple[str, str, str]] = []
    while len(new) < max(10, len(made) // 10):
        a, b = f"DEMO-{rng.randint(1, issues)}", f"DEMO-{rng.randint(1, issues)}"
        if a == b or frozenset((a, b)) in taken:
            continue
        taken.add(frozenset((a, b)))
        new.append((a, rng.choice(["relates", "depends on", "duplicates"]), b))
    rows = new + [(s.source, s.relationship.value, s.target) for s in again]
    rng.shuffle(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(FIELDS)
        writer.writerows(rows)
    return len(new), len(again)


async def undo_step(
    ui: UI,
    client: TrackerClient,
    workdir: str,
    first_journal: str,
    fake_stats: Callable[[], dict[str, Any]],
    *,
    issues: int,
    seed: int,
) -> list[Check]:
    """Run the migration and its undo; return the checks."""
    out = ui.out
    made = _created(first_journal)
    path = os.path.join(workdir, "migration.csv")
    journal = os.path.join(workdir, "migration.jsonl")
    undo_journal = os.path.join(workdir, "undo.jsonl")
    for stale in (journal, undo_journal):
        with contextlib.suppress(FileNotFoundError):
            os.remove(stale)
    new, again = _migration(path, made, issues, seed)
    out(
        f"  migration.csv: {n(new)} new links and {n(again)} the first run made already "
        "(found: exists)"
    )
    migration = await bulk_link(ui, client, path, journal=journal, description="migrating")
    print_bulk(ui, migration, title="migration")
    before = int(fake_stats()["links"])
    out("  undo migration.jsonl --journal undo.jsonl: delete what the migration created")
    with Progress(ui, "undoing", None, ["deleted", "absent", "failed"]) as progress:

        def advance(_done: int, _total: int | None, outcome: Outcome) -> None:
            progress.advance(outcome.status.value)

        report = await client.links.undo(journal, journal=undo_journal, on_progress=advance)
    out(f"  {report.summary()}")
    # Read every issue's links back: the queue holds exactly the first run's links again.
    keys = [f"DEMO-{i}" for i in range(1, issues + 1)]
    links = await client.links.bulk_get(keys)
    held = {
        LinkSpec(key, link.target.key, link.relationship).canonical
        for key, found in links.links.items()
        for link in found
        if link.relationship is not None and link.target.key
    }
    after = int(fake_stats()["links"])
    out(
        f"  the fake held {n(before)} links after the migration, {n(after)} after the undo; "
        f"the first run made {n(made_count := len(made))}"
    )
    return [
        (
            f"undo deleted exactly the {n(migration.counts['created'])} links the migration "
            "created",
            len(report.deleted) == migration.counts["created"] == new and report.ok,
        ),
        (
            f"the queue holds exactly the first run's {n(made_count)} links again (the "
            f"{n(again)} the migration found stayed)",
            links.ok and held == {s.canonical for s in made} and after == made_count,
        ),
    ]
