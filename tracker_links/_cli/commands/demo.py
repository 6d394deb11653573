"""``tracker-links demo``: the whole product against the fake, end to end."""

from __future__ import annotations

import argparse

from .._demo import run as run_demo
from .._parser import add_command, fraction, non_negative, positive_float, positive_int

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "demo",
        "the whole product against the fake, end to end",
        "Start the fake Tracker over loopback with realistic conditions (20-50 ms latency,\n"
        "300 req/s, a few injected faults), bulk-link 10,000 pairs with a journal, run again\n"
        "to show nothing is re-sent, then read the queue's links and draw a small picture.",
        run=run_demo,
        connect=False,
    )
    p.add_argument("--pairs", type=positive_int, help="input lines (default 10000; quick 300)")
    p.add_argument("--issues", type=positive_int, help="issues in the queue (default pairs / 2)")
    p.add_argument("--quick", action="store_true", help="small and with no latency: for tests")
    p.add_argument("--latency-ms", type=non_negative, help="the fake's latency (default 20)")
    p.add_argument("--jitter-ms", type=non_negative, help="random extra latency (default 30)")
    p.add_argument(
        "--fake-rate-limit", type=positive_float, metavar="R", help="the fake's limit (300)"
    )
    p.add_argument(
        "--adaptive",
        action="store_true",
        help="let the client find the rate limit itself (default: 90%% of the fake's limit)",
    )
    p.add_argument("--fail-rate", type=fraction, default=0.02, help="injected 5xx (0.02)")
    p.add_argument("--drop-rate", type=fraction, default=0.01, help="dropped connections (0.01)")
    p.add_argument("--seed", type=int, default=7, help="seed of the data and the faults")
    p.add_argument("--dir", metavar="PATH", help="keep the input, journal and report in PATH")
