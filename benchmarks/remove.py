"""The removal benchmarks (issue 13): ``python -m benchmarks.remove [--quick] [--n N]``.

Each measurement has its yardstick in the same run, ratios printed:

1. ``undo`` of a ``bulk_create`` journal of ``--n`` (10,000) created links at 20 ms latency,
   ``max_concurrency=64``, 20 links per source issue (a CSV of a migration: an epic and its
   tasks, a component and its issues): against the ideal ``N x latency / concurrency`` (one
   DELETE per link). Target: within 1.3x. The check that each id still joins the same pair
   costs one GET per source issue, shared by its links: 1/20 more requests here.
2. The same undo with one link per source issue (the worst case for that check: a GET and a
   DELETE per link), against ``2 x N x latency / concurrency``. Target: within 1.3x.
3. ``bulk_delete`` of ``--n`` triples (one per source issue): a GET of the source's links and
   a DELETE each, against ``2 x N x latency / concurrency``. Target: within 1.3x.

A ``bulk_create`` of as many links on the same server gives the scale (its ideal is
``N x latency / concurrency``). The fake Tracker runs in its own process, the client in this
one. On a shared machine the figures move by +-30% between runs: compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from typing import Any

from ._common import QUEUE
from ._latent import CONCURRENCY, LATENCY, TARGET, Timed, client, server


def fan(n: int, per_source: int, first_target: int) -> list[tuple[str, str, str]]:
    """``n`` links, ``per_source`` from each source issue ``1, 2, …`` to distinct targets."""
    return [
        (f"{QUEUE}-{1 + i // per_source}", f"{QUEUE}-{first_target + i}", "relates")
        for i in range(n)
    ]


async def measure(n: int) -> dict[str, Any]:
    ideal = n * LATENCY / CONCURRENCY
    first = n + 1  # targets after every source
    out: dict[str, Any] = {"n": n, "ideal s": ideal}
    with server(first + 2 * n) as url, tempfile.TemporaryDirectory() as tmp:
        async with client(url) as c:
            # The scale: a bulk_create, timed; its journal is what the first undo undoes.
            grouped = fan(n, 20, first)
            journal = os.path.join(tmp, "grouped.jsonl")
            with Timed() as t:
                made = await c.links.bulk_create(grouped, journal=journal)
            assert len(made.created) == n, made.summary()
            out["bulk_create"] = (t, t.wall / ideal)
            with Timed() as t:
                report = await c.links.undo(journal)
            assert len(report.deleted) == n, report.summary()
            out["undo grouped"] = (t, t.wall / ideal, report.summary())

            single = fan(n, 1, first)
            journal = os.path.join(tmp, "single.jsonl")
            made = await c.links.bulk_create(single, journal=journal)
            assert len(made.created) == n, made.summary()
            with Timed() as t:
                report = await c.links.undo(journal)
            assert len(report.deleted) == n, report.summary()
            out["undo single"] = (t, t.wall / (2 * ideal), report.summary())

            made = await c.links.bulk_create(single)
            assert len(made.created) == n, made.summary()
            with Timed() as t:
                report = await c.links.bulk_delete(single)
            assert len(report.deleted) == n, report.summary()
            out["bulk_delete"] = (t, t.wall / (2 * ideal), report.summary())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.remove", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--n", type=int, default=10_000, help="links per measurement")
    args = ap.parse_args(argv)
    n = 400 if args.quick else args.n
    r = asyncio.run(measure(n))
    ideal = r["ideal s"]
    scale, scale_ratio = r["bulk_create"]
    rows = []
    for key, name, yardstick, requests in (
        ("undo grouped", f"undo of {n:,} created links, 20 per source", "N x lat / conc", 1),
        ("undo single", f"undo of {n:,} created links, 1 per source", "2 x N x lat / conc", 2),
        ("bulk_delete", f"bulk_delete of {n:,} triples", "2 x N x lat / conc", 2),
    ):
        t, ratio, summary = r[key]
        # Against the bulk_create of the same run, per request: the load of the machine cancels.
        scaled = t.wall / (requests * scale.wall)
        rows.append(
            (
                name,
                ratio,
                f"{t.wall:.2f} s (cpu {t.cpu:.2f}) vs {yardstick}; {scaled:.2f}x bulk_create's "
                f"time per request; {summary}",
            )
        )
    print(f"### Removing links (latency {LATENCY * 1000:.0f} ms, max_concurrency={CONCURRENCY})\n")
    print(
        f"ideal N x latency / concurrency = {ideal:.2f} s; bulk_create of {n:,} in the same run: "
        f"{scale.wall:.2f} s ({scale_ratio:.2f}x)\n"
    )
    print("| measurement | ratio | target | result | details |")
    print("|---|---|---|---|---|")
    for name, ratio, details in rows:
        verdict = "PASS" if ratio <= TARGET else "MISS"
        print(f"| {name} | {ratio:.2f}x | < {TARGET}x | {verdict} | {details} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
