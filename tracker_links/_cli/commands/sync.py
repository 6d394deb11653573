"""``tracker-links sync DESIRED``: plan how a scope's links come to match a file; apply it."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Final

from ..._exceptions import InvalidInputError
from ..._models import LinkSpec
from ..._plan import Plan, managed_relationships
from .._bulk_run import SHOWN, check_writable
from .._errors import EXIT_FAILED, EXIT_OK, UsageError
from .._input import open_input, read_rows
from .._output import UI, clip, n
from .._parser import EPILOG, add_command, usage
from .._setup import make_client
from .._setup import run as run_async
from ._options import add_format
from .apply import add_apply_options, apply_plan

__all__ = ["EXIT_CHANGES", "register", "run"]

EXIT_CHANGES: Final = 3
"""Without ``--apply``: the plan has changes (0 means there is nothing to do)."""

PLAN_LINES: Final = 50  # lines of the plan printed; a bigger plan is written to a file

EXIT_STATUS: Final = (
    EPILOG.split("exit status:")[0]
    + """\
exit status:
  0  nothing to change (or, with --apply, everything applied)
  1  failures: bad lines or items of DESIRED, issues whose links could not be read, or
     (with --apply) items that could not be done; each is listed with its reason.
     With --prune --apply, a DESIRED with bad lines is not applied at all
  2  bad usage, an unreadable DESIRED, a missing credential, or a 401/403
  3  changes planned (without --apply): '+' to create, '-' to delete, '~' to change
"""
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "sync",
        "make a queue's links match a file (plan; --apply to apply)",
        "Compare the links of a scope with DESIRED (a CSV/JSONL file in the bulk-link format)\n"
        "and print the plan, terraform style: '+ A depends on B' to create, '- A relates B' to\n"
        "delete, '~' for a change of relationship between two issues; then the counts and\n"
        "the dependency cycles the links would form. Sends no write without --apply.\n"
        "The scope is the issues of --queue or --query, and every issue DESIRED names. Only\n"
        "missing links are created, unless --prune: then links of the scope that DESIRED does\n"
        "not hold are deleted too (never a link with an end outside the scope, nor one of a\n"
        "relationship --relationships does not name). With --prune, --apply applies nothing\n"
        "while DESIRED has bad lines (the links they name would be deleted).",
        run=run,
        usage=usage("sync", "DESIRED [--queue QUEUE | --query QUERY] [--prune] [--apply]"),
        epilog=EXIT_STATUS,
    )
    p.add_argument("desired", metavar="DESIRED", help="the desired links (CSV/JSONL), - for stdin")
    p.add_argument("--queue", metavar="QUEUE", help="the scope: the issues of this queue")
    p.add_argument("--query", metavar="QUERY", help="the scope: the issues this query finds")
    add_format(p, "format of DESIRED")
    p.add_argument(
        "--relationships",
        metavar="LIST",
        help="the relationships this sync manages, comma-separated, e.g. 'depends on,relates' "
        "(default: all); links of the others are never touched",
    )
    p.add_argument(
        "--prune", action="store_true", help="also delete the scope's links DESIRED does not hold"
    )
    p.add_argument("--out", metavar="PATH", help="write the plan to PATH (JSON), for apply")
    p.add_argument("--apply", action="store_true", help="apply the plan after printing it")
    add_apply_options(p)


def run(args: argparse.Namespace, ui: UI) -> int:
    if args.queue and args.query:
        raise UsageError("give --queue or --query, not both")
    try:
        managed_relationships(args.relationships)
    except InvalidInputError as exc:
        raise UsageError(f"--relationships: {exc.message}") from None
    for path, what in ((args.out, "plan"), (args.report, "report")):
        if path:
            check_writable(path, what)
    specs: list[LinkSpec] = []
    lines: list[int] = []
    bad: list[str] = []
    with open_input(args.desired) as stream:
        name = "stdin" if args.desired == "-" else args.desired
        for row in read_rows(stream, args.format, name).rows:
            if row.spec is None:
                bad.append(f"line {row.line}: {clip(row.raw, 60)!r}: {row.reason}")
            else:
                specs.append(row.spec)
                lines.append(row.line)

    async def make_plan() -> Plan:
        async with make_client(args) as client:
            try:
                return await client.links.plan(
                    specs,
                    queue=args.queue,
                    query=args.query,
                    relationships=args.relationships,
                    prune=args.prune,
                )
            except InvalidInputError as exc:
                raise UsageError(exc.message) from None

    plan: Plan = run_async(make_plan)
    if args.out:
        plan.write_json(args.out)
    _print_plan(ui, plan, args.out)
    problems = list(bad) + [f"line {lines[i.index]}: {i.reason}" for i in plan.invalid]
    problems += [f"{u.issue}: links not read: {u.reason}" for u in plan.unread]
    if problems:
        more = f"first {SHOWN} of {n(len(problems))}" if len(problems) > SHOWN else ""
        ui.out(f"not planned{f' ({more})' if more else ''}:")
        for text in problems[:SHOWN]:
            ui.out(f"  {text}")
    if args.apply and args.prune and bad and not plan.empty:
        # A line that could not be read may name a link the plan would prune: apply nothing.
        # (The plan's own invalid items are harmless here: an unmanaged relationship is never
        # pruned, and no link joins an issue that does not exist.)
        ui.out(
            "not applied: with --prune, the links of the lines above would be deleted; "
            "fix them (or sync without --prune) and run again"
        )
        return EXIT_FAILED
    if args.apply and not plan.empty:
        code = apply_plan(args, ui, plan)
        return EXIT_FAILED if problems else code
    if problems:
        return EXIT_FAILED
    return EXIT_OK if plan.empty else EXIT_CHANGES


def _text(spec: LinkSpec) -> str:
    return f"{spec.source} {spec.relationship.value} {spec.target}"


def plan_lines(plan: Plan) -> list[str]:
    """The plan, one line per change: ``~`` changes, then ``-`` deletes and ``+`` creates."""
    changes = plan.changes
    changed_deletes = {id(d) for d, _ in changes}
    changed_creates = {id(c) for _, c in changes}
    out = [f"~ {_text(d.spec)}  =>  {_text(c)}" for d, c in changes]
    out += [f"- {_text(d.spec)}" for d in plan.delete if id(d) not in changed_deletes]
    out += [f"+ {_text(c)}" for c in plan.create if id(c) not in changed_creates]
    return out


def _print_plan(ui: UI, plan: Plan, out: str | None) -> None:
    lines = plan_lines(plan)
    for line in lines[:PLAN_LINES]:
        ui.out(line)
    if len(lines) > PLAN_LINES:
        path = out or _spill(plan)
        ui.out(f"... and {n(len(lines) - PLAN_LINES)} more lines; the full plan is in {path}")
    elif out:
        ui.out(f"plan written to {out}")
    ui.out(f"plan: {plan.summary()}")
    if plan.cycles:
        ui.out(
            f"{len(plan.cycles)} dependency cycle(s) after the plan "
            "(depends on, subtask and epic links; A -> B: A waits for B):"
        )
        for i, cycle in enumerate(plan.cycles[:SHOWN], 1):
            ui.out(f"  {i}. {' -> '.join(cycle)}")
        if len(plan.cycles) > SHOWN:
            ui.out(f"  ... and {n(len(plan.cycles) - SHOWN)} more")


def _spill(plan: Plan) -> str:
    """Write a big plan that has no --out to a file of its own; return its path."""
    fd, path = tempfile.mkstemp(prefix="tracker-links-plan-", suffix=".json")
    os.close(fd)
    plan.write_json(path)
    return path
