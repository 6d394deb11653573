"""What the harness, the server process and the worker processes agree on."""

from __future__ import annotations

from collections.abc import Iterator

QUEUE = "TEST"
TOKEN = "bench-token"
ORG_ID = "1"
HEADERS = {
    "Authorization": f"OAuth {TOKEN}",
    "X-Org-ID": ORG_ID,
    "Content-Type": "application/json",
    "Accept": "application/json",
}
RELATIONSHIP = "depends on"


def pairs(n: int, queue: str = QUEUE) -> Iterator[tuple[str, str, str]]:
    """The ``n`` links every peer creates: a chain, ``TEST-i depends on TEST-(i+1)``.

    A chain keeps every issue at two links at most, so a read of an issue's links (the safe
    create's check after an uncertain answer) stays small. Needs a queue of ``n + 1`` issues.
    """
    for i in range(1, n + 1):
        yield (f"{queue}-{i}", f"{queue}-{i + 1}", RELATIONSHIP)
