"""``tracker-links unlink KEY LINK_ID``: delete one link."""

from __future__ import annotations

import argparse

from ..._exceptions import InvalidInputError
from ..._models import validate_key, validate_link_id
from .._errors import EXIT_OK, UsageError
from .._output import UI
from .._parser import add_command, exit_statuses
from .._setup import make_client
from .._setup import run as run_async

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "unlink",
        "delete one link",
        "Delete link LINK_ID (as `get` lists it) of KEY.",
        run=run,
        epilog=exit_statuses("the request failed (such as no such link: 404)"),
    )
    p.add_argument("key", metavar="KEY", help="the issue the link is on, such as PROJ-12")
    p.add_argument(
        "link_id",
        metavar="LINK_ID",
        help="the link's id, as `tracker-links get KEY` lists it (such as 4709605)",
    )


def run(args: argparse.Namespace, ui: UI) -> int:
    try:
        key = validate_key(args.key)
        link_id = validate_link_id(args.link_id)
    except InvalidInputError as exc:
        raise UsageError(exc.message) from None

    async def delete() -> None:
        async with make_client(args) as client:
            await client.links.delete(key, link_id)

    run_async(delete)
    ui.out(f"deleted link {link_id} (from {key} and the issue it linked to)")
    return EXIT_OK
