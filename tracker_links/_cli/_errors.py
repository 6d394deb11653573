"""Exit statuses and the usage error every part of the command line may raise."""

from __future__ import annotations

from typing import Final

__all__ = [
    "CREDENTIALS_HINT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "UsageError",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

PROG: Final = "tracker-links"

CREDENTIALS_HINT: Final = (
    "check TRACKER_TOKEN / TRACKER_IAM_TOKEN and TRACKER_ORG_ID / TRACKER_CLOUD_ORG_ID"
)


class UsageError(Exception):
    """Bad usage or bad input: printed as ``tracker-links: error: …``, exit status 2."""
