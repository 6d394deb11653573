"""``tracker-links queue-links QUEUE``: every link of a queue, each once; cycles."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from ..._graph import find_cycles
from .._bulk_run import SHOWN
from .._errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from .._export import FORMATS, LinkWriter, QueueExport, cycle_lines, export_queue
from .._output import UI, n
from .._parser import add_command, usage
from .._progress import Progress
from .._setup import make_client, service_counts
from .._setup import run as run_async

__all__ = ["register", "run"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "queue-links",
        "every link of a queue",
        "Export every link of a queue (or of the issues a query finds), each link once.\n"
        "The CSV output can be fed back to bulk-link.",
        run=run,
        usage=usage("queue-links", "(QUEUE | --query QUERY)"),
    )
    p.add_argument("queue", metavar="QUEUE", nargs="?", help="a queue key such as PROJ")
    p.add_argument("--query", metavar="QUERY", help="a query instead, such as 'Queue: PROJ'")
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="jsonl (default), csv, dot (Graphviz) or mermaid; "
        "with --cycles and no --format, only the cycles are printed",
    )
    p.add_argument("-o", "--output", metavar="PATH", help="write the links to PATH, not stdout")
    p.add_argument(
        "--cycles", action="store_true", help="report dependency cycles ('depends on' loops)"
    )


def run(args: argparse.Namespace, ui: UI) -> int:
    if bool(args.queue) == bool(args.query):
        raise UsageError("give a QUEUE or --query '...', exactly one of them")
    fmt: str | None = args.format or (None if args.cycles else "jsonl")
    output: TextIO | None = None
    if args.output:
        try:
            output = open(args.output, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    data_stream: TextIO | None = None
    if fmt is not None:
        data_stream = output if output is not None else sys.stdout
    # The human report goes where the data does not.
    info: TextIO = sys.stderr if data_stream is sys.stdout else sys.stdout
    what = args.queue or args.query
    started = time.perf_counter()
    try:
        writer = LinkWriter(fmt, data_stream) if fmt is not None and data_stream else None

        async def read() -> QueueExport:
            async with make_client(args) as client:
                service = service_counts(client)
                with Progress(ui, "reading links", None, ["links", "failed"], service=service) as p:
                    export = QueueExport(writer, p)
                    await export_queue(client, args.queue, args.query, export)
            return export

        export: QueueExport = run_async(read)
        if writer is not None:
            writer.close()
    finally:
        if output is not None:
            output.close()
    elapsed = time.perf_counter() - started
    rels = ", ".join(f"{k} {n(v)}" for k, v in export.by_relationship.most_common())
    print(
        f"{what}: {n(export.issues)} issues, {n(export.links)} links"
        f"{f' ({rels})' if rels else ''} in {elapsed:.1f} s"
        + (f"; written to {args.output}" if args.output and fmt else ""),
        file=info,
    )
    if args.cycles:
        for line in cycle_lines(find_cycles(export.depends)):
            print(line, file=info)
    if export.failed:
        more = f"first {SHOWN} of {n(len(export.failed))}" if len(export.failed) > SHOWN else ""
        print(
            f"{n(len(export.failed))} issues could not be read{more and f' ({more})'}:", file=info
        )
        for key, error in export.failed[:SHOWN]:
            print(f"  {key}: {error}", file=info)
    if export.auth is not None:
        print(f"authentication failed: {export.auth}", file=info)
        return EXIT_USAGE
    return EXIT_FAILED if export.failed else EXIT_OK
