"""``tracker-links link SOURCE RELATIONSHIP TARGET``: create one link."""

from __future__ import annotations

import argparse

from ..._exceptions import ConflictError, InvalidInputError
from ..._models import Link, LinkSpec, Relationship
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
        "link",
        "create one link",
        "Create one link: SOURCE RELATIONSHIP TARGET, such as PROJ-12 'depends on' PROJ-7.\n"
        "RELATIONSHIP is one of: " + ", ".join(r.value for r in Relationship) + ".\n"
        "A link that exists already is not an error (exit 0).",
        run=run,
        usage=usage("link", "SOURCE RELATIONSHIP TARGET"),
        epilog=exit_statuses("the request failed (such as a missing issue: 404)"),
    )
    p.add_argument("words", nargs="+", metavar="SOURCE RELATIONSHIP TARGET", help=argparse.SUPPRESS)


def run(args: argparse.Namespace, ui: UI) -> int:
    words: list[str] = args.words
    if len(words) < 3:
        raise UsageError(
            "link needs SOURCE RELATIONSHIP TARGET, for example: "
            "tracker-links link PROJ-12 'depends on' PROJ-7"
        )
    source, target, relationship = words[0], words[-1], " ".join(words[1:-1])
    try:
        spec = LinkSpec(source, target, relationship)
    except InvalidInputError as exc:
        raise UsageError(exc.message) from None

    async def create() -> tuple[Link, bool]:
        async with make_client(args) as client:
            try:
                link = await client.links.create(spec.source, spec.target, spec.relationship)
            except ConflictError as exc:
                if exc.link is None:
                    raise
                return exc.link, False
            return link, True

    link, created = run_async(create)
    what = "created" if created else "already exists:"
    ui.out(f"{what} link {link.id}: {spec_text(spec)}")
    return EXIT_OK
