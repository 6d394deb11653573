"""``python -m benchmarks.shapes [--n N] [--seeds S] [--only a,b] [--each]``: issue 16's table.

Every rate-limit shape side by side: the adaptive rate (``rate_limit=None``), the fixed rate
``rate_limit=R`` and the ideal time of the shape, measured in the same run, in virtual time
(the library's client against the fake on trio's ``MockClock``; see :mod:`._shapes`), with
the share of requests answered 429. Clients that share one bucket without coordinating are
the next rows (``k`` clients, ``N / k`` creates each; fixed at ``R / k`` each); the last rows
are ``k`` clients sharing one quota (a ``FileQuota`` on the virtual clock; fixed at ``R``, the
total), then one client and the quota's again behind a server that stalls now and then (the
jitter of real runs: ``Stalling``). ``--each``: the clients of those rows make ``N`` creates
each (the issue's ``k x N / R``), not ``N`` in all. Each figure is the median of ``--seeds``
runs (trio randomizes its scheduling order).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ._shapes import RATE, SHAPES, Result, Shape, Stalling, TokenBucket, simulate

STALLS = "bucket, burst 20, server stalls 0.12 s ~1/min"


def _median(runs: list[Result]) -> Result:
    return sorted(runs, key=lambda r: r.ratio)[len(runs) // 2]


def table(n: int = 10_000, seeds: int = 3, only: tuple[str, ...] = (), each: bool = False) -> str:
    """The Markdown table (N creates, 50 ms latency, max_concurrency=16, R = 200/s; ``each``:
    N per client where there are several)."""
    per = " (each of k clients)" if each else ""
    rows = [
        f"N = {n:,}{per}, 50 ms latency, max_concurrency=16, R = {RATE:g}/s; wall / ideal "
        f"(share answered 429), median of {seeds}; virtual time.",
        "",
        "| limit shape | ideal | adaptive | fixed `rate_limit=R` |",
        "|---|---|---|---|",
    ]
    # (name, shape, Retry-After, clients, whether they share one quota)
    cases: list[tuple[str, Callable[[], Shape], float | None, int, bool]] = [
        (name, make, retry_after, 1, False) for name, (make, retry_after) in SHAPES.items()
    ]
    for k in (4, 8):
        name = f"{k} clients sharing one bucket"
        cases.append((name, lambda: TokenBucket(RATE, 20), 1.0, k, False))
    for k in (4, 8):  # the same, through one shared quota: fixed at R (the total)
        name = f"{k} clients sharing one quota (bucket, burst 20)"
        cases.append((name, lambda: TokenBucket(RATE, 20), 1.0, k, True))
    # A server that stalls about once a minute (see ``Stalling``): the jitter of real runs.
    cases.append((STALLS, lambda: Stalling(RATE, 20), 1.0, 1, False))
    for k in (4, 8):
        name = f"{k} clients sharing one quota ({STALLS})"
        cases.append((name, lambda: Stalling(RATE, 20), 1.0, k, True))
    for name, make, retry_after, k, quota in cases:
        if only and not any(o in name for o in only):
            continue
        cells = []
        ideal = 0.0
        for fixed in (None, RATE if quota else RATE / k):
            runs = [
                simulate(
                    make,
                    n=n if each else n // k,
                    clients=k,
                    rate_limit=fixed,
                    retry_after=retry_after,
                    seed=s,
                    quota=quota,
                )
                for s in range(seeds)
            ]
            mid = _median(runs)
            ideal = mid.ideal
            cell = f"{mid.ratio:.2f} ({100 * mid.refused_share:.2f}%)"
            if k > 1:
                cell += f", finish {min(mid.finished):.0f}-{max(mid.finished):.0f} s"
            cells.append(cell)
        rows.append(f"| {name} | {ideal:.1f} s | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.shapes", description=__doc__)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated parts of shape names")
    ap.add_argument("--out", type=Path, help="also write the table to this file")
    ap.add_argument("--each", action="store_true", help="N creates per client, not in all")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    text = table(args.n, args.seeds, only, args.each)
    text += f"\n\n(took {time.perf_counter() - started:.0f} s of wall time)"
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
