"""``tracker-links fake-server``: serve the embedded fake Tracker over HTTP, every knob a flag."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from typing import Any

from .._errors import EXIT_OK, PROG, UsageError
from .._output import UI, n
from .._parser import add_command, fraction, non_negative, port, positive_float, positive_int
from .._setup import need_fake

__all__ = ["register", "run"]


def queues(text: str) -> dict[str, int]:
    """``TEST=1000,DEMO=50`` -> ``{"TEST": 1000, "DEMO": 50}`` (argparse type)."""
    out: dict[str, int] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, count = part.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or not count.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected QUEUE=COUNT, such as TEST=1000 (queue keys in upper case)"
            )
        out[name] = int(count)
    if not out:
        raise argparse.ArgumentTypeError("expected QUEUE=COUNT[,QUEUE=COUNT...]")
    return out


def _users(text: str) -> dict[str, str]:
    """``tok1=alice,tok2=bob`` -> ``{"tok1": "alice", "tok2": "bob"}`` (argparse type)."""
    out: dict[str, str] = {}
    for part in text.split(","):
        token, sep, login = part.partition("=")
        if not sep or not token.strip() or not login.strip():
            raise argparse.ArgumentTypeError(f"{part!r}: expected TOKEN=LOGIN")
        out[token.strip()] = login.strip()
    return out


def _queue_names(text: str) -> frozenset[str]:
    names = {q.strip() for q in text.split(",") if q.strip()}
    if not names or not all(re.fullmatch(r"[A-Z][A-Z0-9_]*", q) for q in names):
        raise argparse.ArgumentTypeError(f"{text!r}: expected QUEUE[,QUEUE...] in upper case")
    return frozenset(names)


def _limit(text: str) -> Any:
    from ...testing import parse_limit

    try:
        return parse_limit(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _status_or_none(allowed: tuple[int, ...]) -> Callable[[str], int | None]:
    def parse(text: str) -> int | None:
        if text.lower() == "none":
            return None
        if not text.isdigit() or int(text) not in allowed:
            choices = ", ".join(map(str, allowed))
            raise argparse.ArgumentTypeError(f"{text!r}: expected one of {choices} or none")
        return int(text)

    return parse


def _seconds_or_none(text: str) -> float | None:
    if text.lower() == "none":
        return None
    value: float = non_negative(text)
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "fake-server",
        "serve the embedded fake Tracker",
        "Serve the embedded fake Tracker over HTTP, for trying things out (needs the 'fake'\n"
        "extra). Every knob of tracker_links.testing.FakeTracker is a flag. It accepts any\n"
        "token unless --token or --users is given. While it runs, GET URL/_fake/stats answers\n"
        "its statistics as JSON (requests by method and status, 429s, drops, duplicates...).",
        run=run,
        connect=False,
        speed=False,
        quiet_help="print only the line with the URL, and nothing when stopped",
        verbose_help="when stopped, print all the statistics, not only the total",
    )
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    p.add_argument("--port", type=port, default=8000, help="default 8000 (0: any free port)")
    p.add_argument(
        "--queues",
        type=queues,
        default={"TEST": 1000},
        metavar="Q=N,...",
        help="queues and their issue counts (default TEST=1000)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the injected faults")

    auth = p.add_argument_group("who may call")
    auth.add_argument(
        "--token",
        dest="fake_token",
        metavar="TOKEN",
        help="accept only this token (401 otherwise), to try a bad token",
    )
    auth.add_argument(
        "--users",
        type=_users,
        metavar="TOKEN=LOGIN,...",
        help="accept only these tokens (and --token), each as its user (GET /v2/myself)",
    )
    auth.add_argument(
        "--forbidden-queues",
        type=_queue_names,
        default=frozenset(),
        metavar="Q,...",
        help="writes touching issues of these queues answer 403",
    )
    auth.add_argument(
        "--import-forbidden", action="store_true", help="the import endpoint answers 403"
    )

    speed = p.add_argument_group("latency and limits")
    speed.add_argument("--latency", type=non_negative, metavar="S", help="seconds per answer")
    speed.add_argument("--jitter", type=non_negative, metavar="S", help="random extra seconds")
    speed.add_argument("--latency-ms", type=non_negative, metavar="MS", help="--latency in ms")
    speed.add_argument("--jitter-ms", type=non_negative, metavar="MS", help="--jitter in ms")
    speed.add_argument(
        "--rate-limit",
        dest="fake_rate_limit",
        type=positive_float,
        metavar="R",
        help="answer 429 beyond R requests/s (a token bucket)",
    )
    speed.add_argument(
        "--rate-burst", type=positive_int, default=20, metavar="N", help="its size (default 20)"
    )
    speed.add_argument(
        "--retry-after",
        type=_seconds_or_none,
        default=1.0,
        metavar="S",
        help="the Retry-After of a 429 in seconds (default 1; none: no header)",
    )
    speed.add_argument(
        "--limit",
        type=_limit,
        action="append",
        metavar="SHAPE",
        help="a limit shape, such as bucket:200,20 fixed:200,1 sliding:200,1 inflight:10 or "
        "schedule:0=bucket:200;20=none (repeat for several)",
    )
    speed.add_argument(
        "--max-inflight", type=positive_int, metavar="N", help="429 beyond N requests in flight"
    )

    faults = p.add_argument_group("faults")
    faults.add_argument("--fail-rate", type=fraction, default=0.0, help="share of injected 5xx")
    faults.add_argument(
        "--drop-rate", type=fraction, default=0.0, help="share of dropped connections"
    )
    faults.add_argument(
        "--drop-after-write",
        type=fraction,
        default=0.5,
        help="share of the drops that happen after the write took effect (default 0.5)",
    )
    faults.add_argument(
        "--malformed-search", type=fraction, default=0.0, help="share of malformed search pages"
    )

    links = p.add_argument_group("links")
    links.add_argument(
        "--duplicate-status",
        type=_status_or_none((409, 422)),
        default=422,
        metavar="{409,422,none}",
        help="the answer to creating a link that exists (default 422; none: store it, to "
        "catch clients that make duplicates)",
    )
    links.add_argument(
        "--list-lag",
        type=non_negative,
        default=0.0,
        metavar="S",
        help="a new link shows in GET .../links only S seconds later",
    )
    links.add_argument(
        "--clone-on-create",
        action="store_true",
        help="plain create accepts clone/original (422 otherwise)",
    )
    links.add_argument(
        "--redirect-status",
        type=_status_or_none((301, 302, 307, 308)),
        default=301,
        metavar="{301,302,307,308}",
        help="the answer to a moved issue's old key (default 301)",
    )
    links.add_argument(
        "--started-at", metavar="ISO", help="the wall time the fake starts at (links' createdAt)"
    )


def _seconds(seconds: float | None, ms: float | None, name: str) -> float:
    if seconds is not None and ms is not None:
        raise UsageError(f"give --{name} or --{name}-ms, not both")
    if ms is not None:
        return ms / 1000.0
    return seconds or 0.0


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``FakeTracker`` keyword arguments the flags stand for."""
    limit = args.limit
    return {
        "queues": args.queues,
        "latency": _seconds(args.latency, args.latency_ms, "latency"),
        "jitter": _seconds(args.jitter, args.jitter_ms, "jitter"),
        "rate_limit": args.fake_rate_limit,
        "rate_burst": args.rate_burst,
        "retry_after": args.retry_after,
        "max_inflight": args.max_inflight,
        "limit": limit[0] if limit and len(limit) == 1 else limit,
        "fail_rate": args.fail_rate,
        "drop_rate": args.drop_rate,
        "drop_after_write": args.drop_after_write,
        "list_lag": args.list_lag,
        "duplicate_status": args.duplicate_status,
        "token": args.fake_token,
        "users": args.users,
        "forbidden_queues": args.forbidden_queues,
        "import_forbidden": args.import_forbidden,
        "clone_on_create": args.clone_on_create,
        "malformed_search": args.malformed_search,
        "redirect_status": args.redirect_status,
        "started_at": args.started_at,
        "seed": args.seed,
    }


def run(args: argparse.Namespace, ui: UI) -> int:
    from ...testing import FakeTracker

    need_fake()
    try:
        fake = FakeTracker(**settings(args))
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    open_door = args.fake_token is None and not args.users
    if args.host not in ("127.0.0.1", "localhost", "::1") and open_door:
        ui.err(f"warning: serving the fake on {args.host}: it accepts any token")

    def ready(url: str) -> None:
        issues = ", ".join(f"{q}-1..{q}-{count}" for q, count in args.queues.items())
        door = "it accepts any token" if open_door else "it accepts only the tokens given"
        ui.out(f"fake Tracker on {url} (issues {issues}); {door}.")
        if not args.quiet:
            token = "anything" if open_door else "TOKEN"
            ui.out("try, in another shell:")
            ui.out(f"  export TRACKER_BASE_URL={url} TRACKER_TOKEN={token} TRACKER_ORG_ID=1")
            ui.out(f"  {PROG} types")
            ui.out(f"its statistics meanwhile: curl {url}/_fake/stats")
            ui.out("Ctrl-C stops it.")
        sys.stdout.flush()

    try:
        fake.serve_forever(args.host, args.port, on_ready=ready)
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        raise UsageError(f"cannot serve on {where}: {exc.strerror or exc}") from None
    if not args.quiet:
        ui.out(f"stopped; the fake answered {n(fake.stats.total)} requests")
        if args.verbose + args.sub_verbose:
            ui.out(json.dumps(fake.snapshot(), indent=2, sort_keys=True))
    return EXIT_OK
