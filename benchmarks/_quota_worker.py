"""One process of a shared-quota run: ``python -m benchmarks._quota_worker '{json}'``.

Creates links ``start .. start + n`` through :class:`tracker_links.TrackerClient` with
``quota=quota_from_url(quota)`` against ``base_url``, starting at wall time ``at`` (so every
process starts together), and prints one JSON line: the start, the end, the outcomes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from typing import Any

import anyio

from tracker_links import TrackerClient
from tracker_links._quota import quota_from_url


async def run(params: dict[str, Any]) -> dict[str, Any]:
    quota = quota_from_url(params["quota"]) if params.get("quota") else None
    start, n = int(params["start"]), int(params["n"])
    specs = [(f"TEST-{i}", f"TEST-{i + 1}", "relates") for i in range(start, start + n)]
    async with quota if quota is not None else contextlib.nullcontext():
        client = TrackerClient(
            "fake-token",
            org_id="1",
            base_url=params["base_url"],
            rate_limit=params.get("rate_limit"),
            max_concurrency=int(params.get("concurrency", 16)),
            quota=quota,
        )
        await anyio.sleep(max(0.0, float(params["at"]) - time.time()))
        began = time.time()
        async with client:
            report = await client.links.bulk_create(specs)
        ended = time.time()
    return {"began": began, "ended": ended, "counts": report.counts()}


def main() -> int:
    logging.getLogger("tracker_links").setLevel(logging.ERROR)
    params = json.loads(sys.argv[1])
    result = anyio.run(run, params, backend=params.get("backend", "asyncio"))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
