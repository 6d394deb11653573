"""``tracker-links unlink KEY LINK_ID`` or ``unlink SOURCE RELATIONSHIP TARGET``: delete links."""

from __future__ import annotations

import argparse

from ..._exceptions import InvalidInputError
from ..._models import Link, LinkSpec, validate_key, validate_link_id
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
        "delete a link",
        "Delete link LINK_ID (as `get` lists it) of KEY, or every link SOURCE RELATIONSHIP\n"
        "TARGET (in either spelling: PROJ-7 'is dependent by' PROJ-12 is PROJ-12 'depends on'\n"
        "PROJ-7). A link that is not there is not an error: it says there was nothing to\n"
        "delete (exit 0). A link of another relationship between the two issues stays.",
        run=run,
        usage=usage("unlink", "(KEY LINK_ID | SOURCE RELATIONSHIP TARGET)"),
        epilog=exit_statuses("the request failed (such as no such link id: 404)"),
    )
    p.add_argument(
        "words",
        nargs="+",
        metavar="KEY LINK_ID | SOURCE RELATIONSHIP TARGET",
        help="KEY: the issue the link is on, such as PROJ-12; LINK_ID: the link's id, as "
        "`tracker-links get KEY` lists it (such as 4709605); or the link as SOURCE "
        "RELATIONSHIP TARGET, such as PROJ-12 'depends on' PROJ-7",
    )


def run(args: argparse.Namespace, ui: UI) -> int:
    words: list[str] = args.words
    if len(words) == 2:
        return _by_id(args, ui, *words)
    if len(words) < 2:
        raise UsageError(
            "unlink needs KEY LINK_ID or SOURCE RELATIONSHIP TARGET, for example: "
            "tracker-links unlink PROJ-12 4709605, or tracker-links unlink PROJ-12 'depends on' "
            "PROJ-7"
        )
    source, target, relationship = words[0], words[-1], " ".join(words[1:-1])
    try:
        spec = LinkSpec(source, target, relationship)
    except InvalidInputError as exc:
        raise UsageError(exc.message) from None

    async def remove() -> list[Link]:
        async with make_client(args) as client:
            return await client.links.remove(spec.source, spec.target, spec.relationship)

    deleted: list[Link] = run_async(remove)
    if not deleted:
        ui.out(f"nothing to delete: there is no link {spec_text(spec)}")
    for link in deleted:
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
