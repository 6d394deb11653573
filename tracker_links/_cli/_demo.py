"""The demo: the fake Tracker in a process of its own, a bulk run, its resume, an export.

``make demo`` runs it; ``tracker-links demo --quick`` is the small version the tests run.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import itertools
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from .._client import TrackerClient
from .._graph import find_cycles, natural_key
from .._models import LinkSpec, Relationship
from ._bulk_run import bulk_link, print_bulk, undo_run
from ._errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG, UsageError
from ._export import LinkWriter, QueueExport, cycle_lines, export_queue, mermaid_id
from ._input import FIELDS
from ._output import UI, n
from ._progress import Progress
from ._setup import DEMO_CONCURRENCY, need_fake, service_counts
from ._setup import run as run_async

__all__ = ["run"]

# The demo's own token, and someone else's (who made a few links before the run).
_DEMO_TOKEN: Final = "demo-token-not-a-secret"
_OTHER_TOKEN: Final = "someone-elses-token"
_DEMO_USERS: Final = ((_DEMO_TOKEN, "demo"), (_OTHER_TOKEN, "alice"))

# Relationships of the generated demo links, with weights (no epic links: they need epics).
_DEMO_MIX: Final = (
    (Relationship.RELATES, 30),
    (Relationship.DEPENDS_ON, 25),
    (Relationship.IS_DEPENDENT_BY, 10),
    (Relationship.IS_SUBTASK_FOR, 12),
    (Relationship.IS_PARENT_TASK_FOR, 8),
    (Relationship.DUPLICATES, 10),
    (Relationship.IS_DUPLICATED_BY, 5),
)


@attrs.frozen
class _DemoInput:
    lines: int
    distinct: int  # distinct links that can be created
    repeats: int  # the same link again, as written or the other way round
    bad: int  # lines that are not valid link specs (they fail without a request)
    links: tuple[tuple[str, str, str], ...] = ()  # the distinct links, in input order


def _demo_input(path: str, *, pairs: int, issues: int, queue: str, seed: int) -> _DemoInput:
    """Write the demo's CSV: distinct links, a few repeats and a few bad lines, shuffled."""
    rng = random.Random(seed)
    n_bad = max(5, pairs // 200)
    n_repeat = max(4, pairs // 100)
    n_distinct = max(3, pairs - n_bad - n_repeat)

    def key(i: int) -> str:
        return f"{queue}-{i}"

    rels = [r for r, _ in _DEMO_MIX]
    weights = [w for _, w in _DEMO_MIX]
    # A deliberate dependency cycle, for queue-links --cycles to find.
    used: set[frozenset[int]] = {frozenset(p) for p in ((1, 2), (2, 3), (3, 1))}
    distinct: list[tuple[str, str, str]] = [
        (key(1), "depends on", key(2)),
        (key(2), "depends on", key(3)),
        (key(3), "depends on", key(1)),
    ]
    while len(distinct) < n_distinct:
        a, b = rng.randint(1, issues), rng.randint(1, issues)
        pair = frozenset((a, b))
        if a == b or pair in used:
            continue
        used.add(pair)
        distinct.append((key(a), rng.choices(rels, weights)[0].value, key(b)))
    repeats: list[tuple[str, str, str]] = []
    for i in range(n_repeat):
        s, r, t = rng.choice(distinct)
        repeats.append((s, r, t) if i % 2 else (t, Relationship(r).inverse.value, s))
    bad: list[tuple[str, str, str]] = []
    for i in range(n_bad):
        a, b = rng.randint(1, issues), rng.randint(1, issues)
        bad.append(
            [
                (key(a).lower(), "relates", key(b)),  # a malformed key
                (key(a), "blocks", key(b)),  # an unknown relationship
                (key(a), "depends on", key(a)),  # a self-link
                (key(a), "depends on", ""),  # a missing field
                (f"{queue}-0", "relates", key(b)),  # no issue number 0
            ][i % 5]
        )
    rows = distinct + repeats + bad
    rng.shuffle(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(FIELDS)
        writer.writerows(rows)
    order = {row: i for i, row in enumerate(rows)}
    links = tuple(sorted(distinct, key=order.__getitem__))
    return _DemoInput(len(rows), len(distinct), len(repeats), len(bad), links)


def _part_of_journal(path: str, part: str, sources: Callable[[str], bool]) -> int:
    """Copy the lines of the journal whose source passes ``sources`` to ``part``; return how
    many of them record a link created (what undoing ``part`` deletes)."""
    created = 0
    with open(path, encoding="utf-8") as f, open(part, "w", encoding="utf-8") as out:
        for line in f:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and sources(str(data.get("source", ""))):
                out.write(line)
                created += data.get("status") == "created"
    return created


def _mermaid_snippet(
    cycles: list[tuple[list[str], int]], graph: Mapping[str, set[str]], limit: int = 12
) -> list[str]:
    """A few ``depends on`` edges around the first cycle, as Mermaid."""
    if not cycles:
        return []
    path = cycles[0][0]
    edges: list[tuple[str, str]] = list(itertools.pairwise(path))
    around = set(path)
    for node in path[:-1]:
        for nxt in sorted(graph.get(node, ()), key=natural_key):
            if (node, nxt) not in edges:
                edges.append((node, nxt))
    for src in sorted(graph, key=natural_key):
        for dst in graph[src]:
            if dst in around and (src, dst) not in edges:
                edges.append((src, dst))
    lines = ["graph LR"]
    for src, dst in edges[:limit]:
        lines.append(f'  {mermaid_id(src)}["{src}"] -->|depends on| {mermaid_id(dst)}["{dst}"]')
    return lines


def _count(stats: Mapping[str, Any], method: str, status: int | None = None) -> int:
    """Answered requests of ``method`` (and ``status``) in a ``FakeStats.as_dict()``."""
    total = 0
    for key, count in stats["requests"].items():
        m, _, st = key.partition(" ")
        if m == method and (status is None or st == str(status)):
            total += int(count)
    return total


def run(args: argparse.Namespace, ui: UI) -> int:
    """``tracker-links demo``: check the settings, start the fake, run the demo."""
    from ..testing import FakeTracker
    from ..testing._process import FakeProcess

    need_fake()
    quick = args.quick
    pairs = args.pairs if args.pairs is not None else (300 if quick else 10_000)
    issues = args.issues if args.issues is not None else max(50, pairs // 2)
    if pairs < 20:
        raise UsageError("demo: --pairs must be at least 20")
    if issues * (issues - 1) // 2 < 2 * pairs:
        raise UsageError(f"demo: {issues} issues are too few for {pairs} distinct pairs")

    def pick(value: float | None, full: float | None, small: float | None) -> float | None:
        return value if value is not None else (small if quick else full)

    latency = pick(args.latency_ms, 20.0, 0.0) or 0.0
    jitter = pick(args.jitter_ms, 30.0, 0.0) or 0.0
    fake_rate = pick(args.fake_rate_limit, 300.0, None)
    settings: dict[str, Any] = {
        "latency": latency / 1000.0,
        "jitter": jitter / 1000.0,
        "rate_limit": fake_rate,
        "fail_rate": args.fail_rate,
        "drop_rate": args.drop_rate,
    }
    with contextlib.ExitStack() as stack:
        workdir = args.dir
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="tracker-links-demo-"))
        else:
            os.makedirs(workdir, exist_ok=True)
        t0 = time.perf_counter()
        try:
            FakeTracker(**settings)  # check the settings here, before starting a process
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        settings.update(queues={"DEMO": issues}, seed=args.seed, users=dict(_DEMO_USERS))
        try:
            fake = stack.enter_context(FakeProcess(**settings))
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None
        demo = functools.partial(
            _demo, ui, args, settings, fake.stats, fake.url, workdir, pairs=pairs, issues=issues,
            t0=t0,
        )  # fmt: skip
        code: int = run_async(demo)
    return code


async def _demo(
    ui: UI,
    args: argparse.Namespace,
    settings: Mapping[str, Any],
    fake_stats: Callable[[], dict[str, Any]],
    base_url: str,
    workdir: str,
    *,
    pairs: int,
    issues: int,
    t0: float,
) -> int:
    out = ui.out
    csv_path = os.path.join(workdir, "pairs.csv")
    journal = os.path.join(workdir, "journal.jsonl")
    report = os.path.join(workdir, "report.jsonl")
    report2 = os.path.join(workdir, "report-2.jsonl")
    export_path = os.path.join(workdir, "links.csv")
    for stale in (journal, report, report2):
        with contextlib.suppress(FileNotFoundError):
            os.remove(stale)
    made = _demo_input(csv_path, pairs=pairs, issues=issues, queue="DEMO", seed=args.seed)
    lat_lo = settings["latency"] * 1000
    lat_hi = lat_lo + settings["jitter"] * 1000
    latency = f"latency {lat_lo:.0f}-{lat_hi:.0f} ms" if lat_hi else "no latency"
    limit = f"{settings['rate_limit']:g} req/s" if settings["rate_limit"] else "none"
    out(f"{PROG} demo: the fake Tracker on {base_url}")
    out(
        f"  queue DEMO with {n(issues)} issues; {latency}; "
        f"rate limit {limit}; injected faults: {settings['fail_rate']:.0%} 5xx, "
        f"{settings['drop_rate']:.0%} dropped connections"
    )
    out(
        f"  input {csv_path}: {n(made.lines)} lines: {n(made.distinct)} distinct links, "
        f"{n(made.repeats)} repeats (half of them written the other way round), "
        f"{n(made.bad)} bad lines"
    )
    concurrency = args.concurrency or DEMO_CONCURRENCY
    # The admin knows the organization's limit: pace a little under it (each 429 costs the
    # whole client a one-second pause). --adaptive lets the client find the limit itself.
    rate: float | None = args.rate_limit
    if rate is None and not args.adaptive and settings["rate_limit"]:
        rate = round(0.9 * settings["rate_limit"])
    client_rate = f"{rate:g} req/s" if rate else "adaptive"

    def make_client(token: str = _DEMO_TOKEN) -> TrackerClient:
        return TrackerClient(
            token=token,
            org_id="1",
            base_url=base_url,
            max_concurrency=concurrency,
            rate_limit=rate,
        )

    client = make_client()
    checks: list[tuple[str, bool]] = []
    # The undo of step 4 takes back the links of the first tenth of the issues; a few of them
    # are made beforehand (by "someone else"): the run finds them, and the undo leaves them.
    tenth = max(10, issues // 10)

    def in_tenth(key: str) -> bool:
        number = key.rpartition("-")[2]
        return number.isdigit() and int(number) <= tenth

    before = [link for link in made.links[3:] if in_tenth(link[0])][:10]
    async with make_client(_OTHER_TOKEN) as other:
        for source, relationship, target in before:
            await other.links.create(source, target, relationship)
    async with client:
        out(
            f"  {n(len(before))} of those links made beforehand by alice (another token): the "
            "run finds them there, and the undo of step 4 must leave them"
        )
        # 1. the bulk run
        out("")
        out(
            f"[1/4] bulk-link pairs.csv --journal journal.jsonl --report report.jsonl "
            f"(concurrency {concurrency}, rate {client_rate})"
        )
        first = await bulk_link(
            ui, client, csv_path, journal=journal, report=report, description="linking"
        )
        print_bulk(ui, first, title="first run")
        if first.interrupted:
            return EXIT_INTERRUPTED
        stats = fake_stats()
        out(
            f"  the fake saw {n(stats['total'])} requests: {n(_count(stats, 'POST', 201))} "
            f"answered 201 Created, {n(stats['injected_failures'])} injected 5xx, "
            f"{n(stats['dropped'])} connections dropped (half of them after the write: the "
            f"client reads before it sends again), {n(stats['rate_limited'])} answered 429, "
            f"{n(stats['duplicates_created'])} duplicates stored"
        )
        stored = int(stats["links"])
        checks.append(
            (
                f"the fake holds {n(stored)} links: one per distinct valid pair "
                f"({n(made.distinct)})",
                stored == made.distinct and stats["duplicates_created"] == 0,
            )
        )
        checks.append(
            (
                f"{n(made.bad)} failures: the bad lines, caught before sending",
                first.counts["failed"] == made.bad,
            )
        )

        # 2. the same again: nothing is re-sent
        out("")
        out("[2/4] the same command again, with the same journal")
        posts, total = _count(stats, "POST"), stats["total"]
        second = await bulk_link(
            ui, client, csv_path, journal=journal, report=report2, description="resuming"
        )
        print_bulk(ui, second, title="second run", list_failures=False)
        stats = fake_stats()
        sent = stats["total"] - total
        out(
            f"  requests sent: {n(sent)} (POST count {n(posts)} -> "
            f"{n(_count(stats, 'POST'))}): every valid line is EXISTS from the journal; "
            "the bad lines fail again, locally"
        )
        checks.append(("the second run sent nothing", sent == 0 and second.counts["created"] == 0))

        # 3. the links of the queue, and a dependency picture
        out("")
        out("[3/4] queue-links DEMO --format csv --cycles")
        with open(export_path, "w", encoding="utf-8", newline="") as f:  # noqa: ASYNC230
            writer = LinkWriter("csv", f)
            t3 = time.perf_counter()
            service = service_counts(client)
            with Progress(
                ui, "reading links", issues, ["links", "failed"], service=service
            ) as progress:
                export = QueueExport(writer, progress)
                await export_queue(client, "DEMO", None, export)
            writer.close()
        e3 = time.perf_counter() - t3

    out(
        f"  {n(export.issues)} issues read in {e3:.1f} s ({export.issues / max(e3, 1e-9):,.0f}"
        f" issues/s): {n(export.links)} links, written to {export_path}"
    )
    checks.append((f"queue-links found every stored link ({n(stored)})", export.links == stored))
    rows = [[k, n(v)] for k, v in export.by_relationship.most_common()]
    ui.table(["relationship", "links"], rows, right=[1], title="links by relationship")
    hubs = ", ".join(f"{k} ({v})" for k, v in export.degree.most_common(5))
    out(f"  most linked issues: {hubs}")
    cycles = find_cycles(export.depends)
    for line in cycle_lines(cycles):
        out(f"  {line}")
    snippet = _mermaid_snippet(cycles, export.depends)
    if snippet:
        out("  around the first cycle, as Mermaid:")
        out("```mermaid")
        for line in snippet:
            out(line)
        out("```")

    async with make_client() as client:
        # 4. undo part of the run: the links whose source is in the first tenth of the queue
        part = os.path.join(workdir, "journal-part.jsonl")
        undo_journal = os.path.join(workdir, "undo.jsonl")
        with contextlib.suppress(FileNotFoundError):
            os.remove(undo_journal)
        expected = _part_of_journal(journal, part, in_tenth)
        out("")
        out(
            f"[4/4] undo journal-part.jsonl --journal undo.jsonl (the journal's lines of "
            f"DEMO-1..DEMO-{tenth}: {n(expected)} links the run created)"
        )
        t4 = time.perf_counter()
        undone = await undo_run(ui, client, part, journal=undo_journal, report=None)
        e4 = time.perf_counter() - t4
        print_bulk(ui, undone, title="undo")
        if undone.interrupted:
            return EXIT_INTERRUPTED
        left = int(fake_stats()["links"])
        kept = 0
        for source, relationship, target in before:
            spec = LinkSpec(source, target, relationship)
            kept += any(spec.matches(link) for link in await client.links.get(source))
    checks.append(
        (
            f"the undo deleted exactly the {n(expected)} links the run created there: "
            f"{n(stored)} -> {n(left)} stored",
            undone.counts["deleted"] == expected and left == stored - expected,
        )
    )
    checks.append(
        (
            f"the {n(len(before))} links made before the run are still there",
            kept == len(before),
        )
    )

    elapsed = time.perf_counter() - t0
    out("")
    for text, ok in checks:
        out(f"  [{'ok' if ok else 'FAILED'}] {text}")
    rate1 = first.items / first.elapsed if first.elapsed else 0.0
    out(
        f"demo finished in {elapsed:.1f} s: bulk-link {n(first.items)} items in "
        f"{first.elapsed:.1f} s ({rate1:,.0f} items/s); resume in {second.elapsed:.2f} s; "
        f"queue-links {n(export.issues)} issues in {e3:.1f} s; undo {n(undone.items)} items "
        f"in {e4:.1f} s"
    )
    if args.dir is None:
        out(f"(the files were in {workdir}, removed now; --dir PATH keeps them)")
    return EXIT_OK if all(ok for _, ok in checks) else EXIT_FAILED
