"""``tracker-links apply PLAN``: carry out a plan that ``sync --out`` saved."""

from __future__ import annotations

import argparse
from typing import Final

from ..._exceptions import InvalidInputError
from ..._plan import Plan
from ..._reports import BulkReport, OutcomeStatus
from .._bulk_run import SHOWN, check_writable, spec_text
from .._errors import EXIT_FAILED, EXIT_OK, UsageError
from .._output import UI, n
from .._parser import EPILOG, add_command, usage
from .._progress import Progress
from .._setup import make_client, service_counts
from .._setup import run as run_async
from ._options import add_report

__all__ = ["EXIT_STATUS", "apply_plan", "register", "run"]

EXIT_STATUS: Final = (
    EPILOG.split("exit status:")[0]
    + """\
exit status:
  0  all done (every delete DELETED or ABSENT, every create CREATED or EXISTS)
  1  some items failed (each is listed with its reason)
  2  bad usage, a file that is not a plan, a missing credential, or a 401/403
"""
)

_SHOWN_STATUSES: Final = (
    OutcomeStatus.DELETED,
    OutcomeStatus.ABSENT,
    OutcomeStatus.CREATED,
    OutcomeStatus.EXISTS,
    OutcomeStatus.FAILED,
    OutcomeStatus.SKIPPED,
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        commands,
        "apply",
        "apply a plan saved by sync --out",
        "Apply a plan that 'tracker-links sync --out PLAN' wrote: delete its links (by id, on\n"
        "the issue the plan names), then create its links. A plan that went stale is\n"
        "harmless: a link already deleted is 'absent', one already there 'exists'.",
        run=run,
        usage=usage("apply", "PLAN"),
        epilog=EXIT_STATUS,
    )
    p.add_argument("plan", metavar="PLAN", help="the plan file (JSON) that sync --out wrote")
    add_apply_options(p)


def add_apply_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--journal",
        metavar="PATH",
        help="append each outcome to PATH; a re-run of the same plan with the same journal "
        "sends nothing for what is done (resume after a crash); use a new file for a new plan",
    )
    add_report(p)


def run(args: argparse.Namespace, ui: UI) -> int:
    try:
        plan = Plan.read_json(args.plan)
    except OSError as exc:
        raise UsageError(f"cannot read {args.plan}: {exc.strerror or exc}") from None
    except InvalidInputError as exc:
        raise UsageError(f"{args.plan}: {exc.message}") from None
    ui.out(f"plan {args.plan}: {plan.summary()}")
    return apply_plan(args, ui, plan)


def apply_plan(args: argparse.Namespace, ui: UI, plan: Plan) -> int:
    """Apply ``plan`` with the journal and report of ``args``; print the outcome counts."""
    if args.report:
        check_writable(args.report, "report")

    counters = [status.value for status in _SHOWN_STATUSES]

    async def go() -> BulkReport:
        async with make_client(args) as client:
            total = len(plan.delete) + len(plan.create)
            service = service_counts(client)
            with Progress(ui, "applying", total, counters, service=service) as progress:
                return await client.links.apply(
                    plan,
                    journal=args.journal,
                    on_progress=lambda _done, _total, o: progress.advance(o.status.value),
                )

    report: BulkReport = run_async(go)
    if args.report:
        report.write_jsonl(args.report)
    counts = report.counts()
    rows = [[status.value, n(counts[status.value])] for status in _SHOWN_STATUSES]
    ui.table(["", ""], rows, title=f"applied in {report.elapsed:.1f} s", show_header=False)
    bad = [o for o in report.outcomes if not o.ok]
    if bad:
        more = f"first {SHOWN} of {n(len(bad))}, " if len(bad) > SHOWN else ""
        ui.out(f"not done ({more}in plan order; deletes first):")
        for o in bad[:SHOWN]:
            ui.out(
                f"  {'-' if o.index < len(plan.delete) else '+'} {spec_text(o.spec)}: {o.reason}"
            )
        if args.report:
            ui.out(f"every outcome is in {args.report}")
    if args.report:
        ui.out(f"report: {args.report}")
    return EXIT_FAILED if bad else EXIT_OK
