"""Running one measurement: a fresh fake-server process and a fresh client process."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import attrs

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONHASHSEED", "0")
    return env


@attrs.define
class Run:
    """One measurement: a peer doing a job against a fake with these knobs."""

    scenario: str
    peer: str
    label: str
    op: str
    n: int
    concurrency: int
    queues: dict[str, int] = attrs.field(factory=dict)
    knobs: dict[str, Any] = attrs.field(factory=dict)
    rate_limit: float | None = None
    count_pairs: bool = False
    timeout: float = 300.0
    profile: bool = False
    result: dict[str, Any] = attrs.field(factory=dict)

    def describe(self) -> str:
        return f"[{self.scenario}] {self.label} c={self.concurrency} n={self.n}"

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class FakeServer:
    """The fake Tracker in a child process (:mod:`benchmarks._server`), spoken to by lines."""

    def __init__(self, config: dict[str, Any], start_timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._server", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_env(),
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
        try:
            ready = self._read(start_timeout)
            self.url: str = ready["ready"]
            self.cpu_at_start = float(ready.get("server_cpu", 0.0))
        except Exception:
            self.stop()
            raise

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line)
            del self._stderr[:-40]

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError("the fake server did not answer in time") from None
            if line is None:
                time.sleep(0.2)  # let stderr be drained
                raise RuntimeError("the fake server exited:\n" + "".join(self._stderr[-20:]))
            line = line.strip()
            if line.startswith("{"):
                data: dict[str, Any] = json.loads(line)
                return data

    def stats(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def stop(self) -> None:
        proc = self.proc
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write("quit\n")
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def execute(run: Run) -> dict[str, Any]:
    """Run one measurement and return its result (with ``error`` set if it failed)."""
    params: dict[str, Any] = {
        "peer": run.peer,
        "op": run.op,
        "n": run.n,
        "concurrency": run.concurrency,
        "rate_limit": run.rate_limit,
        "profile": run.profile,
    }
    server: FakeServer | None = None
    result: dict[str, Any]
    try:
        if run.op != "memory":
            config: dict[str, Any] = {"queues": run.queues, "knobs": run.knobs}
            if run.count_pairs:
                config["pairs"] = run.n
            server = FakeServer(config)
            params["base_url"] = server.url
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks._worker", json.dumps(params)],
                capture_output=True,
                text=True,
                timeout=run.timeout,
                cwd=ROOT,
                env=_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            result = {"error": f"timed out after {run.timeout:.0f}s"}
        else:
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                tail = proc.stderr.strip().splitlines()[-8:]
                result = {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
            else:
                result = json.loads(lines[-1])
        if server is not None:
            stats = server.stats()
            stats["server_cpu"] = stats.get("server_cpu", 0.0) - server.cpu_at_start
            result["server"] = stats
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        if server is not None:
            server.stop()
    run.result = result
    return result
