"""The fake Tracker in its own process: ``python -m benchmarks._server '<json config>'``.

Builds a :class:`tracker_links.testing.FakeTracker` with the scenario's knobs, serves it over
loopback (uvicorn in a thread of this process) and talks to the harness over stdin/stdout,
one JSON object per line:

- on start it prints ``{"ready": "<base url>", "server_cpu": <CPU seconds so far>}``;
- ``stats`` on stdin -> the fake's counters, plus what only the stored links can tell: how
  many links exist twice (``duplicates``) and how many of the requested pairs are missing
  (``lost``, when the config says which pairs were requested), and this process's CPU time
  (``server_cpu``: the harness subtracts the start-up's to get the server's CPU for a run);
- ``quit`` (or end of input: the harness died) -> stop the server and exit.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

from tracker_links import Relationship

from ._common import pairs


def _canon(source: str, target: str, relationship: Relationship | str) -> tuple[str, str, str]:
    rel = Relationship.parse(relationship)
    return min((source, rel.value, target), (target, rel.inverse.value, source))


def _report(fake: Any, config: dict[str, Any]) -> dict[str, Any]:
    stats = fake.stats.as_dict()
    stats["server_cpu"] = time.process_time()
    stats.pop("by_route", None)
    stored = Counter(
        _canon(link.source, link.target, link.relationship) for link in list(fake.links.values())
    )
    stats["links"] = sum(stored.values())
    stats["duplicates"] = sum(n - 1 for n in stored.values())
    n = config.get("pairs")
    if n is not None:
        stats["lost"] = sum(1 for p in pairs(n) if _canon(*p) not in stored)
    return stats


def main() -> None:
    config: dict[str, Any] = json.loads(sys.argv[1])
    try:
        from tracker_links.testing import FakeTracker
    except ImportError:  # the package's __init__ may not re-export it yet
        from tracker_links.testing._fake import FakeTracker

    fake = FakeTracker(queues=config["queues"], **config.get("knobs", {}))
    with fake.serve() as base_url:
        print(json.dumps({"ready": base_url, "server_cpu": time.process_time()}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps(_report(fake, config)), flush=True)
            elif command == "quit":
                break


if __name__ == "__main__":
    main()
