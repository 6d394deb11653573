"""Tables, targets and files: everything the harness writes after the measurements."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from ._harness import ROOT, Run

TL = "tracker-links"
NAIVE = "httpx-naive"
AIOHTTP = "aiohttp"
YANDEX = "yandex"

PACKAGES = (
    "tracker-links",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "sniffio",
    "attrs",
    "cattrs",
    "aiohttp",
    "yandex_tracker_client",
    "requests",
    "urllib3",
    "uvicorn",
    "httptools",
    "uvloop",
    "matplotlib",
)


def machine() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit = dirty = ""
    try:
        git = ["git", "-C", str(ROOT)]
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "tracker_links"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        pass
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "git_commit": commit,
        "library_changes_not_committed": [line[3:] for line in dirty.splitlines()],
        "versions": versions,
    }


# --- reading results -------------------------------------------------------------------------


def ok(run: Run | None) -> bool:
    return run is not None and not run.result.get("error") and "wall" in run.result


def requests_of(run: Run) -> int:
    server = run.result.get("server") or {}
    return int(server.get("total") or run.n)


def cpu_per_request_ms(run: Run | None) -> float | None:
    if not ok(run):
        return None
    assert run is not None
    return 1000.0 * run.result["cpu"] / max(1, requests_of(run))


def server_cpu_ms(run: Run | None) -> float | None:
    if not ok(run):
        return None
    assert run is not None
    server = run.result.get("server") or {}
    if "server_cpu" not in server:
        return None
    return 1000.0 * float(server["server_cpu"]) / max(1, requests_of(run))


def rate_429(run: Run) -> tuple[int, float]:
    server = run.result.get("server") or {}
    n429 = int(server.get("rate_limited", 0))
    return n429, n429 / max(1, requests_of(run))


def ideal(run: Run) -> float | None:
    knobs = run.knobs
    if run.scenario == "3":
        return run.n / float(knobs["rate_limit"])
    latency = float(knobs.get("latency", 0.0))
    if not latency:
        return None
    if run.scenario == "5":
        issues = sum(run.queues.values())
        pages = -(-issues // 100)
        # The first page must arrive before any read; then every request shares the slots.
        return latency + (issues + pages) * latency / run.concurrency
    return run.n * latency / run.concurrency


def find(
    runs: Iterable[Run], scenario: str, peer: str, concurrency: int | None = None
) -> Run | None:
    for run in runs:
        if (
            run.scenario == scenario
            and run.peer == peer
            and run.rate_limit is None
            and (concurrency is None or run.concurrency == concurrency)
        ):
            return run
    return None


def find_label(runs: Iterable[Run], scenario: str, label: str) -> Run | None:
    for run in runs:
        if run.scenario == scenario and run.label == label:
            return run
    return None


# --- formatting ------------------------------------------------------------------------------


def _f(value: float | None, fmt: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{suffix}"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _err(run: Run) -> str:
    return f"error: {run.result.get('error', 'no result')}"[:160]


def _ok_col(run: Run) -> str:
    if not ok(run):
        return _err(run)
    return f"{run.result.get('ok', 0)}/{run.n}"


def _scenario_runs(runs: list[Run], scenario: str) -> list[Run]:
    return [r for r in runs if r.scenario == scenario]


def section_1(runs: list[Run]) -> list[str]:
    mine = _scenario_runs(runs, "1")
    if not mine:
        return []
    n = mine[0].n
    lines = [
        f"### 1. Zero latency, no limit (N = {n:,})",
        "",
        "Client CPU is `time.process_time()` of the client's own process (all its threads) "
        "around the job, divided by the requests the server saw; server CPU likewise for the "
        "fake's process (a busy server caps the throughput of every peer alike).",
        "",
    ]
    rows = []
    for run in mine:
        cpu = cpu_per_request_ms(run)
        naive = cpu_per_request_ms(find(runs, "1", NAIVE, run.concurrency))
        floor = cpu_per_request_ms(find(runs, "1", AIOHTTP, run.concurrency))
        wall = run.result.get("wall") if ok(run) else None
        rows.append(
            [
                run.label,
                str(run.concurrency),
                _f(wall),
                _f(run.n / wall if wall else None, ".0f"),
                _f(cpu, ".3f"),
                _f(_ratio(cpu, naive), ".2f", "x"),
                _f(_ratio(cpu, floor), ".1f", "x"),
                _f(server_cpu_ms(run), ".3f"),
                _ok_col(run),
            ]
        )
    header = ["peer", "concurrency", "wall s", "links/s", "client CPU ms/req"]
    header += ["CPU vs naive", "CPU vs aiohttp", "server CPU ms/req", "ok"]
    return [*lines, *_table(header, rows), ""]


def _latency_rows(runs: list[Run], mine: list[Run]) -> list[list[str]]:
    """Rows for the latency-bound scenarios (2 and 5): wall against ideal and the peers."""
    scenario = mine[0].scenario
    naive, floor = find(runs, scenario, NAIVE), find(runs, scenario, AIOHTTP)
    naive_wall = naive.result.get("wall") if ok(naive) and naive else None
    floor_wall = floor.result.get("wall") if ok(floor) and floor else None
    rows = []
    for run in mine:
        wall = run.result.get("wall") if ok(run) else None
        best = ideal(run)
        cpu = run.result.get("cpu") if ok(run) else None
        rows.append(
            [
                run.label,
                _f(wall),
                _f(_ratio(wall, best), ".2f", "x"),
                _f(_ratio(wall, naive_wall), ".2f", "x"),
                _f(_ratio(wall, floor_wall), ".2f", "x"),
                _f(cpu_per_request_ms(run), ".3f"),
                _f(_ratio(cpu, best), ".2f"),
                _f(server_cpu_ms(run), ".3f"),
                _ok_col(run)
                if scenario != "5" or not ok(run)
                else f"{run.result.get('ok', 0)}/{run.n}",
            ]
        )
    return rows


def section_2(runs: list[Run]) -> list[str]:
    mine = _scenario_runs(runs, "2")
    if not mine:
        return []
    r0 = mine[0]
    lat = r0.knobs["latency"]
    lines = [
        f"### 2. {lat * 1000:.0f} ms latency, concurrency {r0.concurrency} (N = {r0.n:,}; "
        f"ideal N x latency / concurrency = {ideal(r0):.2f} s)",
        "",
        "`client CPU s / ideal s` above 1 means the client's own CPU time alone exceeds the "
        "ideal wall time: on one core no concurrency setting can reach the ideal.",
        "",
    ]
    rows = _latency_rows(runs, mine)
    header = ["peer", "wall s", "vs ideal", "vs naive", "vs aiohttp", "client CPU ms/req"]
    header += ["client CPU s / ideal s", "server CPU ms/req", "ok"]
    return [*lines, *_table(header, rows), ""]


def section_3(runs: list[Run]) -> list[str]:
    mine = _scenario_runs(runs, "3")
    if not mine:
        return []
    r0 = mine[0]
    k = r0.knobs
    lines = [
        f"### 3. Server limit {k['rate_limit']:g} req/s (bucket of {k['rate_burst']}, "
        f"Retry-After {k['retry_after']}), concurrency {r0.concurrency} "
        f"(N = {r0.n:,}; ideal N / {k['rate_limit']:g} = {ideal(r0):.1f} s)",
        "",
    ]
    rows = []
    for run in mine:
        wall = run.result.get("wall") if ok(run) else None
        n429, share = rate_429(run)
        settled = run.result.get("settled_rate")
        rows.append(
            [
                run.label,
                _f(wall),
                _f(_ratio(wall, ideal(run)), ".3f", "x"),
                str(n429) if ok(run) else "-",
                _f(100 * share if ok(run) else None, ".2f", "%"),
                str(requests_of(run)) if ok(run) else "-",
                _f(settled, ".1f") if settled else "-",
                _ok_col(run),
            ]
        )
    header = ["peer", "wall s", "vs ideal", "429s", "429 share", "requests"]
    header += ["settled rate/s", "ok"]
    return [*lines, *_table(header, rows), ""]


def section_4(runs: list[Run]) -> list[str]:
    mine = _scenario_runs(runs, "4")
    if not mine:
        return []
    r0 = mine[0]
    k = r0.knobs
    lines = [
        f"### 4. Faults: {k['fail_rate']:.0%} injected 5xx, {k['drop_rate']:.0%} connections "
        f"dropped after the write, duplicates stored (N = {r0.n:,}, concurrency "
        f"{r0.concurrency})",
        "",
        "Links created twice and items lost are counted on the server (its stored links).",
        "",
    ]
    rows = []
    for run in mine:
        server = run.result.get("server") or {}
        rows.append(
            [
                run.label,
                str(server.get("duplicates", "-")) if ok(run) else "-",
                str(server.get("lost", "-")) if ok(run) else "-",
                _f(run.result.get("wall") if ok(run) else None),
                str(requests_of(run)) if ok(run) else "-",
                _ok_col(run),
            ]
        )
    header = ["peer", "links created twice", "items lost", "wall s", "requests"]
    header += ["reported ok"]
    return [*lines, *_table(header, rows), ""]


def section_5(runs: list[Run]) -> list[str]:
    mine = _scenario_runs(runs, "5")
    if not mine:
        return []
    r0 = mine[0]
    issues = sum(r0.queues.values())
    lines = [
        f"### 5. Links of a whole queue: {issues:,} issues at "
        f"{r0.knobs['latency'] * 1000:.0f} ms latency, concurrency {r0.concurrency} "
        f"(ideal = latency + (issues + pages of 100) x latency / concurrency = "
        f"{ideal(r0):.2f} s)",
        "",
    ]
    rows = _latency_rows(runs, mine)
    header = ["peer", "wall s", "vs ideal", "vs naive", "vs aiohttp", "client CPU ms/req"]
    header += ["client CPU s / ideal s", "server CPU ms/req", "issues read"]
    return [*lines, *_table(header, rows), ""]


def section_6(runs: list[Run]) -> list[str]:
    mine = _scenario_runs(runs, "6")
    if not mine:
        return []
    lines = [
        "### 6. Memory: peak RSS growth of the client process",
        "",
        "`create_many` (tracker-links) or the naive `gather` over a generator of specs, each "
        "answered at once by an in-process transport replaying one recorded 201 of the fake "
        "(the fake's own transport would store every link in the client's process). Growth = "
        "peak RSS (VmHWM, reset after warm-up) minus RSS before the run.",
        "",
    ]
    rows = []
    for run in mine:
        res = run.result
        rows.append(
            [
                run.label,
                f"{run.n:,}",
                str(run.concurrency),
                _f(res.get("growth_mb") if ok(run) else None, ".1f"),
                _f(res.get("rss_before_mb") if ok(run) else None, ".1f"),
                _f(res.get("wall") if ok(run) else None, ".1f"),
                _ok_col(run),
            ]
        )
    header = ["peer", "specs", "concurrency", "peak RSS growth MB", "RSS before MB", "wall s"]
    header += ["ok"]
    return [*lines, *_table(header, rows), ""]


# --- targets ---------------------------------------------------------------------------------


def targets(runs: list[Run]) -> list[dict[str, Any]]:
    """Issue 7's targets for tracker-links, each with what was measured and PASS/MISS."""
    out: list[dict[str, Any]] = []

    def add(name: str, measured: str, passed: bool | None) -> None:
        out.append({"target": name, "measured": measured, "passed": passed})

    tl64 = cpu_per_request_ms(find(runs, "1", TL, 64))
    naive64 = cpu_per_request_ms(find(runs, "1", NAIVE, 64))
    aio64 = cpu_per_request_ms(find(runs, "1", AIOHTTP, 64))
    if tl64 is not None and naive64 is not None:
        add(
            "S1: client CPU/request at concurrency 64 <= 1/3 of naive httpx",
            f"{tl64:.3f} ms vs {naive64:.3f} ms ({tl64 / naive64:.2f}x)",
            tl64 <= naive64 / 3,
        )
    if tl64 is not None and aio64 is not None:
        add(
            "S1: client CPU/request at concurrency 64 within 3x of raw aiohttp",
            f"{tl64:.3f} ms vs {aio64:.3f} ms ({tl64 / aio64:.1f}x)",
            tl64 <= 3 * aio64,
        )
    s2 = find(runs, "2", TL)
    if s2 is not None:
        wall, best = s2.result.get("wall"), ideal(s2)
        if ok(s2) and wall and best:
            add("S2: wall within 1.3x of ideal", f"{wall / best:.2f}x", wall <= 1.3 * best)
        else:
            add("S2: wall within 1.3x of ideal", _err(s2), False)
    for label, limit, share in (
        (f"{TL} (rate_limit=200)", 1.10, 0.01),
        (f"{TL} (adaptive)", 1.20, 0.02),
    ):
        run = find_label(runs, "3", label)
        if run is None:
            continue
        name = f"S3 {label}: wall within {limit:.2f}x of N/200, 429s under {share:.0%}"
        if not ok(run):
            add(name, _err(run), False)
            continue
        wall, best = run.result["wall"], ideal(run)
        n429, frac = rate_429(run)
        assert best is not None
        add(
            name,
            f"{wall / best:.3f}x, {n429} x 429 ({frac:.2%})",
            wall <= limit * best and frac < share and run.result.get("ok") == run.n,
        )
    s4 = find(runs, "4", TL)
    if s4 is not None:
        server = s4.result.get("server") or {}
        if ok(s4):
            add("S4: zero duplicates", f"{server.get('duplicates')}", server.get("duplicates") == 0)
            add("S4: nothing lost (issue 5)", f"{server.get('lost')}", server.get("lost") == 0)
        else:
            add("S4: zero duplicates", _err(s4), False)
    s5 = find(runs, "5", TL)
    if s5 is not None:
        wall, best = s5.result.get("wall"), ideal(s5)
        if ok(s5) and wall and best:
            add(
                "S5: queue_links within 1.3x of ideal (issue 5)",
                f"{wall / best:.2f}x",
                wall <= 1.3 * best,
            )
        else:
            add("S5: queue_links within 1.3x of ideal (issue 5)", _err(s5), False)
    s6 = find(runs, "6", TL)
    if s6 is not None:
        growth = s6.result.get("growth_mb")
        name = f"S6: peak RSS growth under 50 MB for {s6.n:,} specs"
        if ok(s6) and growth is not None:
            add(name, f"{growth:.1f} MB", growth < 50)
        else:
            add(name, _err(s6), False)
    return out


def targets_section(found: list[dict[str, Any]]) -> list[str]:
    rows = [
        [
            t["target"],
            t["measured"],
            "PASS" if t["passed"] else ("MISS" if t["passed"] is False else "-"),
        ]
        for t in found
    ]
    return [
        "### Targets for tracker-links (issue 7)",
        "",
        *_table(["target", "measured", ""], rows),
    ]


def profile_section(runs: list[Run]) -> list[str]:
    profiled = [r for r in runs if r.result.get("profile")]
    if not profiled:
        return []
    lines = ["### Where the client's CPU goes (cProfile, self time by package)", ""]
    for run in profiled:
        prof = run.result["profile"]
        total = prof["total_s"] or 1.0
        lines.append(
            f"{run.label}, concurrency {run.concurrency}, N = {run.n:,} "
            f"(profiled CPU {run.result['cpu']:.2f} s, {cpu_per_request_ms(run) or 0:.3f} ms/req "
            "under the profiler):"
        )
        lines.append("")
        rows = [
            [pkg, f"{sec:.2f}", f"{100 * sec / total:.0f}%"]
            for pkg, sec in prof["by_package"].items()
            if sec / total >= 0.005
        ]
        lines += _table(["package", "self s", "share"], rows)
        lines.append("")
        top = prof["top_self"][:12]
        per = max(1, requests_of(run))
        lines += _table(
            ["function (top self time)", "self s", "cum s", "calls per request"],
            [
                [
                    f"`{t['function']}`",
                    f"{t['self_s']:.2f}",
                    f"{t['cum_s']:.2f}",
                    f"{t.get('calls', 0) / per:.1f}",
                ]
                for t in top
            ],
        )
        lines.append("")
    return lines


def markdown(runs: list[Run], meta: dict[str, Any], command: str, notes: list[str]) -> str:
    v = meta["versions"]
    head = [
        f"## Benchmarks ({meta['date']})",
        "",
        f"Command: `{command}`. Machine: {meta['cpu_count']} CPUs, {meta['platform']}, "
        f"Python {meta['python']}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in meta['loadavg_at_start'] or [])}. "
        f"tracker-links {v['tracker-links']} (commit {meta['git_commit'] or '?'}"
        + (
            f" plus uncommitted changes to {', '.join(meta['library_changes_not_committed'])}"
            if meta.get("library_changes_not_committed")
            else ""
        )
        + "), "
        f"httpx {v['httpx']}, httpcore {v['httpcore']}, aiohttp {v['aiohttp']}, "
        f"yandex_tracker_client {v['yandex_tracker_client']} (requests {v['requests']}), "
        f"fake served by uvicorn {v['uvicorn']}.",
        "",
        "Every figure comes from this one run: the fake Tracker runs in its own process over "
        "loopback (restarted for each measurement), each client in a fresh process of its own. "
        "Peers: **tracker-links** (`bulk_create` / `queue_links`); **httpx-naive** (one "
        "`httpx.AsyncClient` with a pool as large as the concurrency, `asyncio.Semaphore`, "
        "`asyncio.gather` over all items, re-sending after 429 (sleeping `Retry-After`), 5xx "
        "and transport errors); **yandex** (the official synchronous `yandex_tracker_client` "
        "in a `ThreadPoolExecutor`, one client per thread); **aiohttp** (raw, no retries: the "
        "floor for client CPU per request).",
        "",
    ]
    head += [f"- {note}" for note in notes]
    if notes:
        head.append("")
    body: list[str] = []
    for section in (section_1, section_2, section_3, section_4, section_5, section_6):
        body += section(runs)
    body += targets_section(targets(runs))
    body.append("")
    body += profile_section(runs)
    return "\n".join(head + body).rstrip() + "\n"


def plot(runs: list[Run], path: Path) -> bool:
    """Throughput and client CPU by concurrency, per peer (scenario 1); False if no matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    mine = [r for r in runs if r.scenario == "1" and ok(r)]
    if not mine:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label in dict.fromkeys(r.label for r in mine):
        pts = sorted((r.concurrency, r) for r in mine if r.label == label)
        xs = [c for c, _ in pts]
        left.plot(xs, [r.n / r.result["wall"] for _, r in pts], marker="o", label=label)
        right.plot(xs, [cpu_per_request_ms(r) for _, r in pts], marker="o", label=label)
    for ax, title, unit in (
        (left, "Throughput, zero latency", "links created per second"),
        (right, "Client CPU per request", "ms of client CPU per request"),
    ):
        ax.set_xscale("log", base=2)
        concurrencies = sorted({r.concurrency for r in mine})
        ax.set_xticks(concurrencies, [str(c) for c in concurrencies])
        ax.set_xlabel("concurrency")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    right.set_yscale("log")
    left.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(
    runs: list[Run],
    meta: dict[str, Any],
    out: Path,
    command: str,
    notes: list[str],
    config: dict[str, Any],
) -> tuple[str, Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(runs, meta, command, notes)
    if plot(runs, out / "latest.png"):
        text += "\n![throughput and client CPU by concurrency](latest.png)\n"
    md = out / "latest.md"
    md.write_text(text, encoding="utf-8")
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    data = {
        "meta": meta,
        "command": command,
        "config": config,
        "notes": notes,
        "runs": [r.as_json() for r in runs],
        "targets": targets(runs),
    }
    js = out / f"{stamp}.json"
    js.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return text, md, js
