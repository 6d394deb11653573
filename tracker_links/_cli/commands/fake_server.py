"""``tracker-links fake-server``: serve the embedded fake Tracker over HTTP."""

from __future__ import annotations

import argparse
import re
import sys

from .._errors import EXIT_OK, PROG, UsageError
from .._output import UI, n
from .._parser import add_command, fraction, non_negative, port, positive_float
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


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "fake-server",
        "serve the embedded fake Tracker",
        "Serve the embedded fake Tracker over HTTP, for trying things out (needs the 'fake'\n"
        "extra). It accepts any token.",
        run=run,
        connect=False,
        speed=False,
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
    p.add_argument("--latency-ms", type=non_negative, default=0.0, help="latency per request")
    p.add_argument("--jitter-ms", type=non_negative, default=0.0, help="random extra latency")
    p.add_argument(
        "--rate-limit",
        dest="fake_rate_limit",
        type=positive_float,
        metavar="R",
        help="answer 429 beyond R requests/s",
    )
    p.add_argument("--fail-rate", type=fraction, default=0.0, help="share of injected 5xx")
    p.add_argument("--drop-rate", type=fraction, default=0.0, help="share of dropped connections")
    p.add_argument("--seed", type=int, default=None, help="seed of the injected faults")


def run(args: argparse.Namespace, ui: UI) -> int:
    from ...testing import FakeTracker

    need_fake()
    try:
        fake = FakeTracker(
            queues=args.queues,
            latency=args.latency_ms / 1000.0,
            jitter=args.jitter_ms / 1000.0,
            rate_limit=args.fake_rate_limit,
            fail_rate=args.fail_rate,
            drop_rate=args.drop_rate,
            seed=args.seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ui.err(f"warning: serving the fake on {args.host}: it accepts any token")

    def ready(url: str) -> None:
        queues = ", ".join(f"{q}-1..{q}-{n}" for q, n in args.queues.items())
        ui.out(f"fake Tracker on {url} (issues {queues}); it accepts any token.")
        ui.out("try, in another shell:")
        ui.out(f"  export TRACKER_BASE_URL={url} TRACKER_TOKEN=anything TRACKER_ORG_ID=1")
        ui.out(f"  {PROG} types")
        ui.out("Ctrl-C stops it.")
        sys.stdout.flush()

    try:
        fake.serve_forever(args.host, args.port, on_ready=ready)
    except OSError as exc:
        raise UsageError(
            f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    ui.out(f"stopped; the fake answered {n(fake.stats.total)} requests")
    return EXIT_OK
