"""Options that several commands share, spelled once: ``--format`` of an input, ``--report``."""

from __future__ import annotations

import argparse

__all__ = ["add_format", "add_report"]


def add_format(p: argparse.ArgumentParser, what: str) -> None:
    """``--format auto|csv|jsonl`` of the input ``what`` names (bulk-link, bulk-unlink, sync)."""
    p.add_argument(
        "--format", choices=("auto", "csv", "jsonl"), default="auto",
        help=f"the {what} (default: auto, from the first line)",
    )  # fmt: skip


def add_report(p: argparse.ArgumentParser) -> None:
    """``--report PATH``: one outcome per line (bulk-link, bulk-unlink, undo, sync, apply)."""
    p.add_argument(
        "--report", metavar="PATH", help="write one outcome per line (JSON Lines) to PATH"
    )
