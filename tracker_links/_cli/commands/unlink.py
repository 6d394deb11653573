"""``tracker-links unlink KEY LINK_ID`` or ``unlink SOURCE RELATIONSHIP TARGET``: delete a link."""

from __future__ import annotations

import argparse

from ..._exceptions import InvalidInputError
from ..._models import Link, LinkSpec, Relationship, validate_key, validate_link_id
from .._bulk_run import spec_text
from .._errors import EXIT_OK, UsageError
from .._output import UI
from .._parser import add_command, exit_statuses, usage
from .._setup import make_client
from .._setup import run as run_async

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "unlink",
        "delete one link",
        "Delete link LINK_ID (as `get` lists it) of KEY, such as: unlink PROJ-12 4709605.\n"
        "Or delete by what the link joins: SOURCE RELATIONSHIP TARGET, such as\n"
        "unlink PROJ-12 'depends on' PROJ-7 (the same link written from the other side,\n"
        "PROJ-7 'is dependent by' PROJ-12, is the same); a link of another relationship between\n"
        "the two stays. No such link there is not an error: it says so (exit 0).\n"
        "RELATIONSHIP is one of: " + ", ".join(r.value for r in Relationship) + ".",
        run=run,
        usage=usage("unlink", "KEY LINK_ID | SOURCE RELATIONSHIP TARGET"),
        epilog=exit_statuses("the request failed (such as no link LINK_ID on KEY: 404)"),
    )
    p.add_argument(
        "key",
        metavar="KEY",
        help="the issue the link is on, such as PROJ-12 (SOURCE in the other form)",
    )
    p.add_argument(
        "link_id",
        metavar="LINK_ID",
        help="the link's id, as `tracker-links get KEY` lists it (such as 4709605); "
        "RELATIONSHIP in the other form",
    )
    p.add_argument(
        "target",
        nargs="*",
        metavar="TARGET",
        help="only in the form SOURCE RELATIONSHIP TARGET: the other issue",
    )


def run(args: argparse.Namespace, ui: UI) -> int:
    words: list[str] = [args.key, args.link_id, *args.target]
    if len(words) == 2:
        return _by_id(args, ui, *words)
    source, target, relationship = words[0], words[-1], " ".join(words[1:-1])
    try:
        spec = LinkSpec(source, target, relationship)
    except InvalidInputError as exc:
        raise UsageError(exc.message) from None

    async def remove() -> list[Link]:
        async with make_client(args) as client:
            return await client.links.remove(spec.source, spec.target, spec.relationship)

    gone: list[Link] = run_async(remove)
    if not gone:
        ui.out(f"nothing to delete: no link {spec_text(spec)}")
    for link in gone:
        ui.out(f"deleted link {link.id}: {spec_text(spec)}")
    return EXIT_OK


def _by_id(args: argparse.Namespace, ui: UI, key_text: str, id_text: str) -> int:
    try:
        key = validate_key(key_text)
        link_id = validate_link_id(id_text)
    except InvalidInputError as exc:
        raise UsageError(exc.message) from None

    async def delete() -> None:
        async with make_client(args) as client:
            await client.links.delete(key, link_id)

    run_async(delete)
    ui.out(f"deleted link {link_id} (from {key} and the issue it linked to)")
    return EXIT_OK
