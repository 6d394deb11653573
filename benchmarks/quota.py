"""``python -m benchmarks.quota [--k 4,8] [--n 10000] [--rate 200] [--adaptive] [--trace]
[--quotas file,redis,none]``: processes on one quota.

k real processes (half on asyncio, half on trio), ``N / k`` creates each, all with
``rate_limit=R`` and one shared quota (a :class:`tracker_links.FileQuota`, and a
:class:`tracker_links.RedisQuota` against a ``redis-server`` started on a free loopback port
when one is installed), against one fake Tracker served over loopback with an R req/s token
bucket. Prints the wall time against the ideal ``N / R`` and the share answered 429; then the
same without a quota (each process at ``R / k``) for comparison. ``--adaptive``: every process
with ``rate_limit=None`` instead (the quota shares the learned rate; without a quota the
processes each learn their own). ``--trace``: after each row, the requests the fake accepted
and refused in each second of the run (as an HTML comment).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracker_links.testing import FakeTracker

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_processes(
    quota: str | None,
    k: int,
    n: int,
    rate: float,
    *,
    per_process_rate: float | None = None,
    kill_first_after: float | None = None,
    adaptive: bool = False,
    latency: float = 0.02,
    trace: list[tuple[float, bool]] | None = None,
) -> tuple[list[dict[str, Any]], FakeTracker]:
    """``k`` worker processes of ``n`` creates each; returns the survivors' results.
    ``adaptive``: each with ``rate_limit=None``; ``trace``: gets the fake's ``(time, accepted)``
    for every request."""
    if trace is None:
        fake = FakeTracker({"TEST": k * n + 2}, latency=latency, rate_limit=rate, rate_burst=20)
    else:
        fake = FakeTracker({"TEST": k * n + 2}, latency=latency, limit=_Traced(rate, trace))
    with fake.serve() as url:
        at = time.time() + 3.0  # every process starts at this wall time, imports done
        procs = []
        for i in range(k):
            params = {
                "quota": quota,
                "start": 1 + i * n,
                "n": n,
                "base_url": url,
                "at": at,
                "rate_limit": None if adaptive else per_process_rate or rate,
                "backend": "trio" if i % 2 else "asyncio",
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "benchmarks._quota_worker", json.dumps(params)],
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                    env=_env(),
                )
            )
        if kill_first_after is not None:
            time.sleep(max(0.0, at - time.time()) + kill_first_after)
            procs[0].send_signal(signal.SIGKILL)
        results = []
        for i, proc in enumerate(procs):
            out, _ = proc.communicate(timeout=max(120.0, 4 * k * n / rate))
            if i == 0 and kill_first_after is not None:
                continue
            if proc.returncode != 0:
                raise RuntimeError(f"worker {i} exited with {proc.returncode}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    return results, fake


class _Traced:
    """The same token bucket (burst 20), noting each request's time and whether it went."""

    def __init__(self, rate: float, log: list[tuple[float, bool]]) -> None:
        from ._shapes import TokenBucket

        self.bucket, self.log = TokenBucket(rate, 20), log

    def admit(self, now: float, inflight: int) -> bool:
        ok = self.bucket.admit(now, inflight)
        self.log.append((now, ok))
        return ok


def _per_second(log: list[tuple[float, bool]]) -> str:
    """``second:accepted/refused`` for each second of the run."""
    if not log:
        return ""
    start = log[0][0]
    counts: dict[int, list[int]] = {}
    for at, ok in log:
        counts.setdefault(int(at - start), [0, 0])[0 if ok else 1] += 1
    return " ".join(f"{s}:{a}/{r}" for s, (a, r) in sorted(counts.items()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server(workdir: str) -> Iterator[str | None]:
    """A redis-server on a free loopback port (``None`` when it is not installed)."""
    server = shutil.which("redis-server")
    if server is None:
        yield None
        return
    port = _free_port()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 0.2) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.quota", description=__doc__)
    ap.add_argument("--k", default="4,8", help="process counts, comma-separated")
    ap.add_argument("--n", type=int, default=10_000, help="creates in all, split over k")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--latency", type=float, default=0.02, help="the fake's, in seconds")
    ap.add_argument("--adaptive", action="store_true", help="rate_limit=None in every process")
    ap.add_argument("--trace", action="store_true", help="print accepted/429 per second")
    ap.add_argument("--quotas", default="file,redis,none", help="which of file,redis,none")
    args = ap.parse_args(argv)
    which = set(args.quotas.split(","))
    mode = "rate_limit=None" if args.adaptive else f"rate_limit={args.rate:g}"
    print(f"N = {args.n:,} in all, R = {args.rate:g}/s, {1000 * args.latency:g} ms latency, "
          f"{mode}; ideal N / R = {args.n / args.rate:.1f} s", flush=True)  # fmt: skip
    print("| processes | quota | wall / ideal | answered 429 | finish spread |\n"
          "|---|---|---|---|---|", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, redis_server(tmp) as redis:
        for k in (int(x) for x in args.k.split(",")):
            n = args.n // k
            quotas: list[tuple[str, str | None, float | None]] = []
            if "file" in which:
                quotas.append(("FileQuota", f"file:{tmp}/quota-{k}", None))
            if redis is not None and "redis" in which:
                quotas.append(("RedisQuota", f"{redis}?key=bench-{k}", None))
            none = "none, each its own" if args.adaptive else f"none, R/{k} each"
            if "none" in which:
                quotas.append((none, None, args.rate / k))
            for name, quota, each in quotas:
                trace: list[tuple[float, bool]] | None = [] if args.trace else None
                results, fake = run_processes(
                    quota,
                    k,
                    n,
                    args.rate,
                    per_process_rate=each,
                    adaptive=args.adaptive,
                    latency=args.latency,
                    trace=trace,
                )
                wall = max(r["ended"] for r in results) - min(r["began"] for r in results)
                share = fake.stats.rate_limited / max(1, fake.stats.total)
                spread = max(r["ended"] for r in results) - min(r["ended"] for r in results)
                print(f"| {k} | {name} | {wall / (k * n / args.rate):.3f} | {100 * share:.2f}% "
                      f"| {spread:.1f} s |", flush=True)  # fmt: skip
                if trace is not None:
                    print(f"<!-- {name}, k = {k}: {_per_second(trace)} -->", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
