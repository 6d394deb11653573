"""``tracker-links get KEY...``: the links of issues."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..._exceptions import AuthError, InvalidInputError
from ..._models import Link, validate_key
from ..._reports import LinksReport
from .._errors import CREDENTIALS_HINT, EXIT_FAILED, EXIT_OK, EXIT_USAGE, PROG, UsageError
from .._export import target_key
from .._output import UI
from .._parser import add_command, exit_statuses
from .._setup import make_client
from .._setup import run as run_async

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "get",
        "the links of issues",
        "Print the links of each issue.",
        run=run,
        epilog=exit_statuses("an issue could not be read (such as a 404; each is listed)"),
    )
    p.add_argument("keys", nargs="+", metavar="KEY", help="an issue key such as PROJ-12")
    p.add_argument("--json", action="store_true", help="JSON Lines: one link per line")


def _relationship_text(link: Link) -> str:
    rel = link.relationship
    return rel.value if rel is not None else f"{link.type.id} ({link.direction.value})"


def run(args: argparse.Namespace, ui: UI) -> int:
    keys = list(dict.fromkeys(args.keys))
    for key in keys:
        try:
            validate_key(key)
        except InvalidInputError as exc:
            raise UsageError(exc.message) from None

    async def fetch() -> LinksReport:
        async with make_client(args) as client:
            return await client.links.bulk_get(keys)

    report: LinksReport = run_async(fetch)
    if args.json:
        for key in keys:
            for link in report.links.get(key, []):
                row: dict[str, Any] = {
                    "source": key,
                    "relationship": link.relationship.value if link.relationship else None,
                    "target": target_key(link),
                    "link_id": link.id,
                    "type": link.type.id,
                    "direction": link.direction.value,
                    "summary": link.target.display,
                    "status": link.status.key if link.status else None,
                }
                ui.out(json.dumps(row, ensure_ascii=False))
    else:
        rows: list[list[str]] = []
        for key in keys:
            links = report.links.get(key)
            if links is None:
                continue
            if not links:
                rows.append([key, "", "(no links)", "", ""])
            for link in links:
                rows.append(
                    [
                        key,
                        str(link.id),
                        _relationship_text(link),
                        target_key(link),
                        link.target.display or "",
                    ]
                )
        if rows:
            ui.table(["issue", "link id", "relationship", "target", "summary"], rows)
    auth = None
    for key in keys:
        error = report.failed.get(key)
        if error is not None:
            ui.err(f"{key}: {error}")
            if isinstance(error, AuthError):
                auth = error
    if auth is not None:
        ui.err(f"{PROG}: authentication failed: {CREDENTIALS_HINT}")
        return EXIT_USAGE
    return EXIT_FAILED if report.failed else EXIT_OK
