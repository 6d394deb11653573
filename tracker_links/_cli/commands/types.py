"""``tracker-links types``: the organization's link types."""

from __future__ import annotations

import argparse
import json

from ..._models import Direction, LinkType, relationship_of
from .._errors import EXIT_OK
from .._output import UI
from .._parser import add_command, exit_statuses
from .._setup import make_client
from .._setup import run as run_async

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "types",
        "the link types",
        "List the organization's link types.",
        run=run,
        epilog=exit_statuses("the request failed (the service did not answer after retries)"),
    )
    p.add_argument("--json", action="store_true", help="JSON Lines")


def run(args: argparse.Namespace, ui: UI) -> int:
    async def fetch() -> list[LinkType]:
        async with make_client(args) as client:
            return await client.links.types()

    types: list[LinkType] = run_async(fetch)
    rows = []
    for t in types:
        out_rel = relationship_of(t.id, Direction.OUTWARD)
        in_rel = relationship_of(t.id, Direction.INWARD)
        rels = [r.value for r in dict.fromkeys((out_rel, in_rel)) if r is not None]
        if args.json:
            data = {"id": t.id, "outward": t.outward, "inward": t.inward, "relationships": rels}
            ui.out(json.dumps(data, ensure_ascii=False))
        rows.append([t.id, t.outward or "", t.inward or "", " / ".join(rels) or "(unknown)"])
    if not args.json:
        ui.table(["type id", "outward label", "inward label", "relationship (create)"], rows)
    return EXIT_OK
