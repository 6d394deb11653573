"""The sync benchmarks (issue 14): ``python -m benchmarks.sync [--quick] [--issues N]``.

Three measurements, each with its yardstick in the same run, ratios printed:

1. ``plan`` of a whole queue (``--issues``, 5,000) at 20 ms latency, ``max_concurrency=64``,
   against a desired list of as many links (a tenth of them drifted): against ``queue_links``
   of the same queue alone, interleaved, best of ``--rounds`` each. Target: within 1.3x.
2. The diff alone (:func:`tracker_links._plan.make_plan`, no I/O) for ``--diff-links``
   (100,000) current links and as many desired: CPU seconds, best of three. Target: < 1 s.
3. ``apply`` of a plan with ``--issues`` creates and as many deletes, at 20 ms latency and
   ``max_concurrency=64``: against the bulk targets, ``N x latency / concurrency`` for the
   creates (one POST each) and ``2 N x latency / concurrency`` for the deletes (the delete
   engine's GET of the issue's links and one DELETE). Target: within 1.3x. A ``bulk_create``
   of as many links in the same run gives the scale.

The fake Tracker runs in its own process (:class:`benchmarks._harness.FakeServer`), the
client in this one. On a shared machine the figures move by +-30% between runs: compare the
ratios, which come from one run.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from tracker_links import IssueLinks, Link, LinkType
from tracker_links._models import Direction, IssueRef, Relationship
from tracker_links._plan import make_plan

from ._common import QUEUE
from ._latent import CONCURRENCY, LATENCY, TARGET, Timed, client, server


def chain(n: int, step: int, rel: str) -> list[tuple[str, str, str]]:
    """``TEST-i rel TEST-(i+step)`` for i = 1..n: needs ``n + step`` issues; no cycle."""
    return [(f"{QUEUE}-{i}", f"{QUEUE}-{i + step}", rel) for i in range(1, n + 1)]


async def measure_plan(issues: int, rounds: int) -> dict[str, Any]:
    current = chain(issues - 2, 1, "depends on")
    # The desired list: the same links, but one in ten replaced by another one.
    desired = [
        link if i % 10 else (link[0], f"{QUEUE}-{i + 3}", "relates")
        for i, link in enumerate(current)
    ]
    with server(issues) as url:
        async with client(url) as c:
            seeded = await c.links.bulk_create(current)
            assert seeded.ok, seeded.summary()
            queue_runs, plan_runs = [], []
            plan = None
            for _ in range(rounds):
                with Timed() as t:
                    n = 0
                    async for item in c.links.queue_links(QUEUE):
                        assert item.error is None, item.error
                        n += 1
                assert n == issues
                queue_runs.append(t)
                with Timed() as t:
                    plan = await c.links.plan(desired, queue=QUEUE, prune=True)
                plan_runs.append(t)
    assert plan is not None
    q = min(queue_runs, key=lambda t: t.wall)
    p = min(plan_runs, key=lambda t: t.wall)
    return {
        "queue_links wall s": q.wall,
        "queue_links cpu s": q.cpu,
        "plan wall s": p.wall,
        "plan cpu s": p.cpu,
        "ratio": p.wall / q.wall,
        "plan": plan.summary(),
    }


def measure_diff(n: int) -> dict[str, Any]:
    keys = [f"{QUEUE}-{i}" for i in range(1, n + 2)]
    rel = Relationship.DEPENDS_ON
    by_key: dict[str, list[Link]] = {k: [] for k in keys}
    for i, (source, target, _) in enumerate(chain(n, 1, "depends on")):
        by_key[source].append(Link(i, LinkType("depends"), Direction.OUTWARD, IssueRef(key=target)))
        by_key[target].append(Link(i, LinkType("depends"), Direction.INWARD, IssueRef(key=source)))
    current = [IssueLinks(k, links) for k, links in by_key.items()]
    desired = [
        link if i % 10 else (link[0], link[1], "relates")
        for i, link in enumerate(chain(n, 1, rel.value))
    ]
    runs = []
    plan = None
    for _ in range(3):
        with Timed() as t:
            plan = make_plan(desired, keys, current, prune=True)
        runs.append(t.cpu)
    assert plan is not None
    return {"links": n, "cpu s": min(runs), "runs": runs, "plan": plan.summary()}


async def measure_apply(n: int) -> dict[str, Any]:
    current = chain(n, 1, "depends on")
    desired = chain(n, 2, "relates")
    with server(n + 3) as url:
        async with client(url) as c:
            seeded = await c.links.bulk_create(current)
            assert seeded.ok, seeded.summary()
            plan = await c.links.plan(desired, queue=QUEUE, prune=True)
            assert (len(plan.create), len(plan.delete)) == (n, n), plan.summary()
            with Timed() as t:
                report = await c.links.apply(plan)
            assert report.ok, report.summary()
            # The scale: a bulk_create of as many links, in the same run, on the same server.
            other = chain(n, 3, "relates")
            with Timed() as b:
                bulk = await c.links.bulk_create(other)
            assert bulk.ok, bulk.summary()
    # The bulk targets: one POST per create (bulk_create), and for the deletes a GET of each
    # issue's links plus one DELETE per link (bulk_delete, by id; 2 N when each link has its
    # own issue, as here).
    requests = len(plan.create) + len(plan.delete) + len({d.issue for d in plan.delete})
    ideal = requests * LATENCY / CONCURRENCY
    return {
        "apply wall s": t.wall,
        "apply cpu s": t.cpu,
        "ideal s": ideal,
        "ratio": t.wall / ideal,
        "bulk_create wall s": b.wall,
        "bulk_create ratio": b.wall / (n * LATENCY / CONCURRENCY),
        "vs bulk_create": t.wall / (requests / n * b.wall),
        "report": report.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sync", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument("--issues", type=int, default=5_000)
    ap.add_argument("--diff-links", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", default="plan,diff,apply", help="comma-separated parts")
    args = ap.parse_args(argv)
    if args.quick:
        args.issues, args.diff_links, args.rounds = 200, 2_000, 1
    parts = {p.strip() for p in args.only.split(",")}
    rows: list[tuple[str, str, float, float, str]] = []
    if "plan" in parts:
        r = asyncio.run(measure_plan(args.issues, args.rounds))
        rows.append(
            (
                f"plan of a {args.issues:,}-issue queue vs queue_links alone",
                f"plan {r['plan wall s']:.2f} s (cpu {r['plan cpu s']:.2f}), queue_links "
                f"{r['queue_links wall s']:.2f} s (cpu {r['queue_links cpu s']:.2f}); {r['plan']}",
                r["ratio"],
                TARGET,
                "x",
            )
        )
    if "diff" in parts:
        r = measure_diff(args.diff_links)
        runs = ", ".join(f"{x:.2f}" for x in r["runs"])
        rows.append(
            (
                f"the diff of {args.diff_links:,} current links (CPU s)",
                f"runs {runs}; {r['plan']}",
                r["cpu s"],
                1.0,
                "s",
            )
        )
    if "apply" in parts:
        r = asyncio.run(measure_apply(args.issues))
        rows.append(
            (
                f"apply of {args.issues:,} creates + {args.issues:,} deletes vs the bulk target",
                f"apply {r['apply wall s']:.2f} s (cpu {r['apply cpu s']:.2f}), ideal "
                f"{r['ideal s']:.2f} s; bulk_create of {args.issues:,}: "
                f"{r['bulk_create wall s']:.2f}"
                f" s, {r['bulk_create ratio']:.2f}x its ideal (apply per request: "
                f"{r['vs bulk_create']:.2f}x bulk_create's); {r['report']}",
                r["ratio"],
                TARGET,
                "x",
            )
        )
    print(f"### Sync (latency {LATENCY * 1000:.0f} ms, max_concurrency={CONCURRENCY})\n")
    print("| measurement | figure | target | result | details |")
    print("|---|---|---|---|---|")
    for name, details, value, target, unit in rows:
        verdict = "PASS" if value <= target else "MISS"
        print(f"| {name} | {value:.2f}{unit} | < {target}{unit} | {verdict} | {details} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
