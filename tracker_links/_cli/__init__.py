"""The command-line tool ``tracker-links`` (also ``python -m tracker_links``).

Commands: ``get``, ``link``, ``unlink``, ``types``, ``bulk-link``, ``bulk-unlink``, ``undo``,
``queue-links``, ``sync``, ``apply``, ``fake-server`` and ``demo``; ``tracker-links COMMAND
--help`` describes each one (``sync`` exits 3 when it planned changes it did not apply).

Exit status: 0 all done; 1 some items failed; 2 bad usage, an input file that cannot be read
or has no usable header, a missing credential, or an authentication failure (401/403);
130 interrupted.

Credentials come from the environment variables :meth:`TrackerClient.from_env` reads
(``TRACKER_TOKEN`` or ``TRACKER_IAM_TOKEN``, ``TRACKER_ORG_ID`` or ``TRACKER_CLOUD_ORG_ID``,
``TRACKER_BASE_URL``). A token is never printed: everything the tool writes to stdout and
stderr goes through a filter that masks the tokens it knows of.

The progress bar and the tables are drawn by rich (the ``cli`` extra) when it is installed;
without it the output is plain text. The progress bar goes to stderr and only when stderr is a
terminal (and ``--quiet`` is not given).

The layout: this module parses and dispatches; ``commands/`` holds one module per command
(each registers its parser and runs); ``_parser`` the shared options, ``_setup`` the client,
``_input`` the CSV/JSONL rows, ``_output`` and ``_progress`` what is printed, ``_bulk_run`` a
bulk run and its summary, ``_export`` a queue's export, ``_demo`` the demo.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO, cast

from .._exceptions import AuthError, InvalidInputError, TrackerError
from ._errors import (
    CREDENTIALS_HINT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    UsageError,
)
from ._output import UI, Redacting, logging_to_stderr
from ._parser import EPILOG, add_options
from ._setup import secrets
from .commands import COMMANDS

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command line, each command registered by its module."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Yandex Tracker issue links from the shell: create, list and delete them one\n"
        "at a time, link tens of thousands of pairs from a file, export a whole queue's links.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_options(parser, sub=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(commands)
    return parser


def _leaf(exc: BaseException) -> BaseException:
    """The interesting exception inside (nested) exception groups from task groups."""
    while True:
        inner = getattr(exc, "exceptions", None)
        if not isinstance(inner, tuple) or not inner:
            return exc
        exc = next((e for e in inner if isinstance(e, (TrackerError, UsageError))), inner[0])


def _dispatch(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    ui = UI(quiet=args.quiet)
    if getattr(args, "token", None):
        ui.err(
            "warning: a token given with --token is visible to other users in the process "
            "list; prefer the TRACKER_TOKEN environment variable"
        )
    with logging_to_stderr(args.verbose + getattr(args, "sub_verbose", 0)):
        try:
            code: int = args.func(args, ui)
            return code
        except KeyboardInterrupt:
            journal = getattr(args, "journal", None)
            hint = f"; run the same command with --journal {journal} to resume" if journal else ""
            ui.err(f"{PROG}: interrupted{hint}")
            return EXIT_INTERRUPTED
        except Exception as exc:
            error = _leaf(exc)
            if isinstance(error, UsageError):
                ui.err(f"{PROG}: error: {error}")
                return EXIT_USAGE
            if isinstance(error, AuthError):
                ui.err(f"{PROG}: authentication failed: {error}")
                ui.err(CREDENTIALS_HINT)
                return EXIT_USAGE
            if isinstance(error, InvalidInputError):
                ui.err(f"{PROG}: error: {error}")
                return EXIT_USAGE
            if isinstance(error, TrackerError):
                ui.err(f"{PROG}: {error}")
                return EXIT_FAILED
            if isinstance(error, BrokenPipeError):
                raise error from None
            raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    The console script ``tracker-links`` calls ``sys.exit(main())``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    stdout, stderr = sys.stdout, sys.stderr
    found = secrets(args)
    sys.stdout = cast(TextIO, Redacting(stdout, found))
    sys.stderr = cast(TextIO, Redacting(stderr, found))
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, and keep Python's own flush at
        # exit from complaining about the closed pipe.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stdout.fileno())
        return EXIT_FAILED
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = stdout, stderr
