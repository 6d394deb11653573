"""The options every command shares, the argparse types, and how a command is registered."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Final, Protocol

from ._errors import PROG
from ._output import UI
from ._setup import DEFAULT_CONCURRENCY, DEMO_CONCURRENCY

__all__ = [
    "EPILOG",
    "Command",
    "exit_statuses",
    "add_command",
    "add_options",
    "fraction",
    "non_negative",
    "port",
    "positive_float",
    "positive_int",
    "usage",
]


class Command(Protocol):
    """A command's ``run``: the parsed arguments and the output; returns the exit status."""

    def __call__(self, args: argparse.Namespace, ui: UI, /) -> int: ...


def _number(
    kind: Callable[[str], float], noun: str, ok: Callable[[float], bool], expected: str
) -> Callable[[str], Any]:
    """An argparse ``type=``: parse with ``kind``, then check the range with ``ok``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value

    return parse


_INF: Final = float("inf")
positive_int = _number(int, "a whole number", lambda v: v >= 1, "1 or more")
port = _number(int, "a port number", lambda v: 0 <= v <= 65535, "0..65535")
positive_float = _number(float, "a number", lambda v: 0 < v < _INF, "a number > 0")
non_negative = _number(float, "a number", lambda v: 0 <= v < _INF, "a number >= 0")
fraction = _number(float, "a number", lambda v: 0 <= v <= 1, "a fraction between 0 and 1")


_ENVIRONMENT: Final = """\
credentials (environment):
  TRACKER_TOKEN or TRACKER_IAM_TOKEN        an OAuth token, or an IAM token
  TRACKER_ORG_ID or TRACKER_CLOUD_ORG_ID    a Yandex 360 or a Yandex Cloud organization
  TRACKER_BASE_URL                          default https://api.tracker.yandex.net
  TRACKER_API_VERSION                       v2 (default) or v3
"""

_USAGE_OR_AUTH: Final = "  2    bad usage, a missing credential, or a 401/403\n"


def exit_statuses(failed: str | None, usage: str = _USAGE_OR_AUTH) -> str:
    """The epilog of a command: the environment, then the exit statuses it can return."""
    one = f"  1    {failed}\n" if failed else ""
    return (
        f"{_ENVIRONMENT}\nexit status:\n  0    all done\n{one}{usage}  130  interrupted (Ctrl-C)\n"
    )


EPILOG: Final = exit_statuses(
    "some items failed (each is listed with its reason), or a request failed",
    "  2    bad usage, an unreadable input file, a missing credential, or a 401/403\n",
)


def _add_speed(parser: argparse.ArgumentParser, default: Callable[[object], object]) -> None:
    speed = parser.add_argument_group("speed")
    speed.add_argument(
        "--concurrency",
        metavar="N",
        type=positive_int,
        default=default(None),
        help=f"requests in flight at most (default {DEFAULT_CONCURRENCY}; demo {DEMO_CONCURRENCY})",
    )
    speed.add_argument(
        "--rate-limit",
        metavar="R",
        type=positive_float,
        default=default(None),
        help="requests per second at most (default: adaptive, finds the limit from 429s)",
    )
    speed.add_argument(
        "--quota",
        metavar="URL",
        default=default(None),
        help="share the pacing, the 429 cool-down and the learned rate with other processes "
        "using the same token: file:PATH (one machine) or redis://HOST:PORT[/DB][?key=K] "
        "(needs tracker-links[redis]); with --rate-limit, R is their total",
    )


def add_options(
    parser: argparse.ArgumentParser,
    *,
    sub: bool,
    connect: bool = True,
    speed: bool = True,
    quiet_help: str = "no progress bar (there is none anyway when stderr is not a terminal)",
    verbose_help: str = "log retries and rate changes (-vv: every request)",
) -> None:
    """The options every command shares; on a subcommand they do not reset the main ones."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if sub else value

    if connect:
        group = parser.add_argument_group("connection")
        group.add_argument(
            "--base-url",
            metavar="URL",
            default=default(None),
            help="the API's URL (default: TRACKER_BASE_URL, or https://api.tracker.yandex.net)",
        )
        group.add_argument(
            "--token",
            metavar="TOKEN",
            default=default(None),
            help="an OAuth token; visible to other users in the process list: prefer the "
            "TRACKER_TOKEN environment variable",
        )
        group.add_argument(
            "--org-id", metavar="ID", default=default(None), help="instead of TRACKER_ORG_ID"
        )
        group.add_argument(
            "--cloud-org-id",
            metavar="ID",
            default=default(None),
            help="instead of TRACKER_CLOUD_ORG_ID",
        )
        group.add_argument(
            "--api-version",
            choices=("v2", "v3"),
            default=default(None),
            help="the API version of every request (default: TRACKER_API_VERSION, or v2)",
        )
        group.add_argument(
            "--ca-bundle",
            metavar="PATH",
            default=default(None),
            help="trust the CAs of PATH (a PEM bundle, or a directory of hashed certificates): "
            "a corporate proxy or private CA (SSL_CERT_FILE works too)",
        )
        group.add_argument(
            "--timeout",
            metavar="S",
            type=positive_float,
            default=default(30.0),
            help="seconds per request (default 30)",
        )
    if speed:
        _add_speed(parser, default)
    out = parser.add_argument_group("output")
    out.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default(False),
        help=quiet_help,
    )
    out.add_argument(
        "-v",
        "--verbose",
        action="count",
        # A subcommand counts apart (argparse gives it a namespace of its own): main adds both,
        # so `tracker-links -v get -v` is -vv.
        dest="sub_verbose" if sub else "verbose",
        default=0,
        help=verbose_help,
    )


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    description: str,
    *,
    run: Command,
    connect: bool = True,
    speed: bool = True,
    usage: str | None = None,
    epilog: str | None = None,
    **option_help: str,
) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` with the shared options; ``run`` runs it."""
    p = commands.add_parser(
        name,
        help=help,
        description=description,
        usage=usage,
        epilog=epilog if epilog is not None else (EPILOG if connect else None),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    add_options(p, sub=True, connect=connect, speed=speed, **option_help)
    p.set_defaults(func=run)
    return p


def usage(command: str, words: str) -> str:
    """A usage line for ``command``."""
    return f"{PROG} {command} [options] {words}"
