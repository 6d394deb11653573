"""One module per command; each has ``register(commands)``, which adds its parser and ``run``.

The order here is the order of ``tracker-links --help``.
"""

from __future__ import annotations

from . import (
    apply,
    bulk_link,
    bulk_unlink,
    demo,
    fake_server,
    get,
    link,
    queue_links,
    sync,
    types,
    undo,
    unlink,
)

__all__ = ["COMMANDS"]

COMMANDS = (
    get,
    link,
    unlink,
    types,
    bulk_link,
    bulk_unlink,
    undo,
    queue_links,
    sync,
    apply,
    fake_server,
    demo,
)
