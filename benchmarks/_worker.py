"""One measurement in a fresh process: ``python -m benchmarks._worker '<json params>'``.

Runs one peer (``tracker-links``, ``httpx-naive``, ``aiohttp``, ``yandex``) doing one job
(``create``: N links; ``queue``: the links of a whole queue; ``memory``: peak RSS growth of a
long create) and prints one JSON line: wall time, client CPU time (``time.process_time`` of
this process, all threads) and what the peer itself saw. The clock runs around the job only,
not around imports and client set-up.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import json
import os
import pstats
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from ._common import HEADERS, ORG_ID, QUEUE, TOKEN, pairs

Params = dict[str, Any]
Result = dict[str, Any]


# --- tracker-links ---------------------------------------------------------------------------


def _tl_client(p: Params, **kwargs: Any) -> Any:
    from tracker_links import TrackerClient

    return TrackerClient(
        TOKEN,
        org_id=ORG_ID,
        base_url=p.get("base_url", "http://127.0.0.1"),
        max_concurrency=p["concurrency"],
        rate_limit=p.get("rate_limit"),
        **kwargs,
    )


async def tl_create(p: Params, timed: Callable[[], Any]) -> Result:
    specs = list(pairs(p["n"]))
    async with _tl_client(p) as client:
        with timed():
            report = await client.links.bulk_create(specs)
        rate = client.rate_limiter
        settled = rate.adaptive.rate if rate.adaptive is not None else rate.rate
    counts = report.counts()
    return {
        "ok": counts["created"] + counts["exists"],
        "failed": counts["failed"] + counts["skipped"],
        "counts": counts,
        "posts": sum(o.attempts for o in report.outcomes),
        "settled_rate": settled,
    }


async def tl_queue(p: Params, timed: Callable[[], Any]) -> Result:
    ok = failed = 0
    async with _tl_client(p) as client:
        with timed():
            async for item in client.links.queue_links(QUEUE):
                if item.error is None:
                    ok += 1
                else:
                    failed += 1
    return {"ok": ok, "failed": failed}


# --- the naive baseline: httpx.AsyncClient + Semaphore + gather, retries per request ---------


async def _naive_send(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response | None:
    """How users write it: resend on 429 after Retry-After, on 5xx and errors after a backoff."""
    for attempt in range(6):
        try:
            r = await client.request(method, url, **kwargs)
        except httpx.TransportError:
            await asyncio.sleep(0.25 * 2**attempt)
            continue
        if r.status_code == 429:
            await asyncio.sleep(float(r.headers.get("retry-after", "1")))
            continue
        if r.status_code >= 500:
            await asyncio.sleep(0.25 * 2**attempt)
            continue
        return r
    return None


def _naive_client(p: Params) -> httpx.AsyncClient:
    c = p["concurrency"]
    return httpx.AsyncClient(
        base_url=p["base_url"],
        headers=HEADERS,
        timeout=30.0,
        limits=httpx.Limits(max_connections=c, max_keepalive_connections=c),
        transport=p.get("_transport"),
    )


async def naive_create(p: Params, timed: Callable[[], Any]) -> Result:
    specs: Iterable[tuple[str, str, str]] = p.get("_specs") or list(pairs(p["n"]))
    sem = asyncio.Semaphore(p["concurrency"])
    async with _naive_client(p) as client:

        async def one(source: str, target: str, rel: str) -> bool:
            async with sem:
                r = await _naive_send(
                    client,
                    "POST",
                    f"/v2/issues/{source}/links",
                    json={"relationship": rel, "issue": target},
                )
                if r is None:
                    return False
                if r.status_code in (201, 409, 422):  # created, or "already linked"
                    r.json()
                    return True
                return False

        with timed():
            results = await asyncio.gather(*(one(*s) for s in specs), return_exceptions=True)
    ok = sum(1 for r in results if r is True)
    return {"ok": ok, "failed": len(results) - ok}


async def naive_queue(p: Params, timed: Callable[[], Any]) -> Result:
    sem = asyncio.Semaphore(p["concurrency"])
    async with _naive_client(p) as client:

        async def links(key: str) -> bool:
            async with sem:
                r = await _naive_send(client, "GET", f"/v2/issues/{key}/links")
                if r is None or r.status_code != 200:
                    return False
                r.json()
                return True

        with timed():
            keys: list[str] = []
            page = 1
            while True:
                r = await _naive_send(
                    client,
                    "POST",
                    "/v2/issues/_search",
                    params={"perPage": 100, "page": page},
                    json={"filter": {"queue": QUEUE}},
                )
                if r is None:
                    break
                keys.extend(issue["key"] for issue in r.json())
                if page >= int(r.headers.get("x-total-pages", "1")):
                    break
                page += 1
            results = await asyncio.gather(*(links(k) for k in keys), return_exceptions=True)
    ok = sum(1 for r in results if r is True)
    return {"ok": ok, "failed": len(results) - ok}


# --- raw aiohttp: the floor for client CPU per request ---------------------------------------


async def aiohttp_create(p: Params, timed: Callable[[], Any]) -> Result:
    import aiohttp

    base = p["base_url"]
    specs = iter(list(pairs(p["n"])))
    counts = {"ok": 0, "failed": 0}
    connector = aiohttp.TCPConnector(limit=p["concurrency"])
    async with aiohttp.ClientSession(connector=connector, headers=HEADERS) as session:

        async def worker() -> None:
            for source, target, rel in specs:
                body = json.dumps({"relationship": rel, "issue": target}).encode()
                try:
                    async with session.post(f"{base}/v2/issues/{source}/links", data=body) as r:
                        data = await r.read()
                        if r.status == 201:
                            json.loads(data)
                            counts["ok"] += 1
                            continue
                except aiohttp.ClientError:
                    pass
                counts["failed"] += 1

        with timed():
            await asyncio.gather(*(worker() for _ in range(p["concurrency"])))
    return counts


async def aiohttp_queue(p: Params, timed: Callable[[], Any]) -> Result:
    import aiohttp

    base = p["base_url"]
    counts = {"ok": 0, "failed": 0}
    connector = aiohttp.TCPConnector(limit=p["concurrency"])
    async with aiohttp.ClientSession(connector=connector, headers=HEADERS) as session:

        async def worker(keys: Iterable[str]) -> None:
            for key in keys:
                async with session.get(f"{base}/v2/issues/{key}/links") as r:
                    data = await r.read()
                    if r.status == 200:
                        json.loads(data)
                        counts["ok"] += 1
                    else:
                        counts["failed"] += 1

        with timed():
            keys: list[str] = []
            page, pages = 1, 1
            while page <= pages:
                body = json.dumps({"filter": {"queue": QUEUE}}).encode()
                url = f"{base}/v2/issues/_search?perPage=100&page={page}"
                async with session.post(url, data=body) as r:
                    keys.extend(issue["key"] for issue in json.loads(await r.read()))
                    pages = int(r.headers.get("x-total-pages", "1"))
                page += 1
            it = iter(keys)
            await asyncio.gather(*(worker(it) for _ in range(p["concurrency"])))
    return counts


# --- the official synchronous client, in a thread pool ---------------------------------------


def _yandex_clients(p: Params) -> Callable[[], Any]:
    """One official client per worker thread (a shared requests.Session is not thread-safe)."""
    from yandex_tracker_client import TrackerClient as YandexClient

    local = threading.local()

    def get() -> Any:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = YandexClient(
                token=TOKEN, org_id=ORG_ID, base_url=p["base_url"], timeout=30
            )
        return client

    return get


def yandex_create(p: Params, timed: Callable[[], Any]) -> Result:
    from yandex_tracker_client.collections import IssueLinks

    specs = list(pairs(p["n"]))
    client = _yandex_clients(p)

    def one(spec: tuple[str, str, str]) -> bool:
        source, target, rel = spec
        try:
            # What client.issues[source].links.create(...) sends, minus the GET of the issue.
            IssueLinks(client()._connection, issue=source).create(relationship=rel, issue=target)
        except Exception:
            return False
        return True

    with timed(), ThreadPoolExecutor(p["concurrency"]) as pool:
        results = list(pool.map(one, specs))
    ok = sum(results)
    return {"ok": ok, "failed": len(results) - ok}


def yandex_queue(p: Params, timed: Callable[[], Any]) -> Result:
    from yandex_tracker_client.collections import IssueLinks

    client = _yandex_clients(p)

    def one(key: str) -> bool:
        try:
            list(IssueLinks(client()._connection, issue=key).get_all())
        except Exception:
            return False
        return True

    with timed(), ThreadPoolExecutor(p["concurrency"]) as pool:
        found = client().issues.find(filter={"queue": QUEUE}, per_page=100)
        # issue.key would first GET /v2/fields (the org's field list), which the fake lacks.
        keys = [issue._value["key"] for issue in found]
        results = list(pool.map(one, keys))
    ok = sum(results)
    return {"ok": ok, "failed": len(results) - ok}


# --- memory: create_many over a generator, against a canned in-process answer ----------------


class _Canned(httpx.AsyncBaseTransport):
    """Answers every request at once with one recorded 201 from the fake, storing nothing.

    The fake's own in-process transport would keep every link it stores in this process, and
    200,000 stored links would be counted as the client's memory. The recorded link is put on
    the request's own issues: a link on ``TEST-1`` to ``TEST-2`` answered for every pair would
    tell the client that every issue had moved (its map of moves would grow by two a link).
    """

    def __init__(self, body: bytes) -> None:
        self.head, rest = body.split(f"/issues/{QUEUE}-1/".encode(), 1)
        self.parts = rest.split(f"{QUEUE}-2".encode())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        source = request.url.path.split("/")[3].encode()
        target = json.loads(request.content)["issue"].encode()
        body = self.head + b"/issues/" + source + b"/" + target.join(self.parts)
        return httpx.Response(201, headers=[(b"content-type", b"application/json")], content=body)


def _canned_body() -> bytes:
    try:
        from tracker_links.testing import FakeTracker
    except ImportError:
        from tracker_links.testing._fake import FakeTracker

    fake = FakeTracker(queues={QUEUE: 2})
    headers = {k.lower(): v for k, v in HEADERS.items()}
    body = json.dumps({"relationship": "depends on", "issue": f"{QUEUE}-2"}).encode()
    reply = fake.handle("POST", f"/v2/issues/{QUEUE}-1/links", "", headers, body)
    assert reply.status == 201, reply
    return bytes(reply.body)


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset VmHWM (Linux: writing 5 to clear_refs) so the peak measured is this run's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


async def tl_memory(p: Params, timed: Callable[[], Any]) -> Result:
    transport = _Canned(_canned_body())
    outcomes = 0
    async with _tl_client(p, transport=transport) as client:
        # Warm up (imports, caches, the pool) before the baseline is taken.
        async for _ in client.links.create_many(pairs(1000)):
            pass
        gc.collect()
        peak_reset = _reset_peak()
        before = _status_kb("VmRSS") or 0
        with timed():
            async for outcome in client.links.create_many(pairs(p["n"])):
                outcomes += outcome.ok
        peak = _status_kb("VmHWM") if peak_reset else None
    if peak is None:  # no /proc: ru_maxrss (kB on Linux) is the process's peak so far
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "ok": outcomes,
        "failed": p["n"] - outcomes,
        "rss_before_mb": before / 1024,
        "peak_mb": peak / 1024,
        "growth_mb": (peak - before) / 1024,
    }


async def naive_memory(p: Params, timed: Callable[[], Any]) -> Result:
    p = {**p, "base_url": "http://127.0.0.1", "_transport": _Canned(_canned_body())}
    gc.collect()
    peak_reset = _reset_peak()
    before = _status_kb("VmRSS") or 0
    p["_specs"] = pairs(p["n"])  # gather() turns the generator into n tasks anyway
    result = await naive_create(p, timed)
    peak = _status_kb("VmHWM") if peak_reset else None
    if peak is None:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result.update(
        rss_before_mb=before / 1024, peak_mb=peak / 1024, growth_mb=(peak - before) / 1024
    )
    return result


# --- the driver ------------------------------------------------------------------------------

JOBS: dict[tuple[str, str], Callable[..., Any]] = {
    ("tracker-links", "create"): tl_create,
    ("tracker-links", "queue"): tl_queue,
    ("tracker-links", "memory"): tl_memory,
    ("httpx-naive", "create"): naive_create,
    ("httpx-naive", "queue"): naive_queue,
    ("httpx-naive", "memory"): naive_memory,
    ("aiohttp", "create"): aiohttp_create,
    ("aiohttp", "queue"): aiohttp_queue,
    ("yandex", "create"): yandex_create,
    ("yandex", "queue"): yandex_queue,
}


class _Timer:
    """``with timer():`` around the job: wall and CPU time, optionally under cProfile."""

    def __init__(self, profile: bool) -> None:
        self.wall = self.cpu = 0.0
        self.profiler = cProfile.Profile() if profile else None

    def __call__(self) -> _Timer:
        return self

    def __enter__(self) -> None:
        if self.profiler is not None:
            self.profiler.enable()
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = time.process_time() - self._cpu0
        if self.profiler is not None:
            self.profiler.disable()


def _group(filename: str) -> str:
    """Which package a profiled function belongs to (self time is summed per group)."""
    path = filename.replace(os.sep, "/")
    if filename == "~" or path.startswith("<"):
        return "C built-ins (socket calls, json, select ...)"
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/tracker_links/" in path:
        return "tracker_links"
    if "/benchmarks/" in path:
        return "benchmarks (the harness)"
    stdlib = os.path.dirname(os.__file__).replace(os.sep, "/") + "/"
    if path.startswith(stdlib):
        return "stdlib " + path[len(stdlib) :].split("/", 1)[0].removesuffix(".py")
    return path


def _where(filename: str, line: int, name: str) -> str:
    path = filename.replace(os.sep, "/")
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = path.split("/", 1)[1]
            break
    else:
        if "/tracker_links/" in path:
            path = "tracker_links/" + path.split("/tracker_links/", 1)[1]
    return f"{name} ({path}:{line})" if filename != "~" else name


def _profile_summary(profiler: cProfile.Profile, top: int = 25) -> dict[str, Any]:
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    groups: dict[str, float] = {}
    total = 0.0
    functions = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        group = _group(filename)
        groups[group] = groups.get(group, 0.0) + tottime
        total += tottime
        functions.append((tottime, cumtime, ncalls, _where(filename, line, name)))
    functions.sort(reverse=True)
    return {
        "total_s": total,
        "by_package": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "top_self": [
            {"self_s": t, "cum_s": c, "calls": n, "function": f} for t, c, n, f in functions[:top]
        ],
    }


def run(p: Params) -> Result:
    job = JOBS[(p["peer"], p["op"])]
    timer = _Timer(bool(p.get("profile")))
    is_async = asyncio.iscoroutinefunction(job)
    result: Result = asyncio.run(job(p, timer)) if is_async else job(p, timer)
    result["wall"] = timer.wall
    result["cpu"] = timer.cpu
    if timer.profiler is not None:
        result["profile"] = _profile_summary(timer.profiler)
    return result


def main() -> None:
    params: Params = json.loads(sys.argv[1])
    print(json.dumps(run(params)), flush=True)


if __name__ == "__main__":
    main()
