"""The benchmarks must not rot: ``python -m benchmarks --quick`` runs end to end on a tiny N.

It runs in a subprocess (the benchmarks start their own fake-server and client processes) and
writes to a temporary directory, never over ``benchmarks/results/latest.md``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("uvicorn") is None or not (ROOT / "benchmarks").is_dir(),
    reason="the benchmarks need the source tree and uvicorn (the fake's server)",
)


def test_quick_benchmark_runs_and_writes_its_table(tmp_path: Path) -> None:
    latest = ROOT / "benchmarks" / "results" / "latest.md"
    before = latest.read_bytes() if latest.exists() else None
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    table = (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert "### 1. Zero latency" in table
    assert "### Targets for tracker-links" in table
    assert "| tracker-links |" in table
    assert "error:" not in table, table
    assert "### Targets for tracker-links" in proc.stdout  # the table is printed too

    (data_file,) = tmp_path.glob("*.json")
    data = json.loads(data_file.read_text(encoding="utf-8"))
    assert data["meta"]["cpu_count"] >= 1
    assert data["meta"]["versions"]["httpx"]
    runs = data["runs"]
    assert runs
    assert all("error" not in r["result"] for r in runs), [r["result"] for r in runs]
    faults = [r for r in runs if r["scenario"] == "4" and r["peer"] == "tracker-links"]
    assert faults
    assert faults[0]["result"]["server"]["duplicates"] == 0
    assert faults[0]["result"]["server"]["lost"] == 0

    after = latest.read_bytes() if latest.exists() else None
    assert after == before  # the published results were left alone


def test_the_shapes_table_can_give_each_client_n_creates() -> None:
    # ``--each``: the issue's ``k x N / R`` (N per client), not N in all.
    pytest.importorskip("trio")
    from benchmarks.shapes import table

    text = table(200, 1, ("4 clients sharing one quota",), each=True)
    assert "N = 200 (each of k clients)" in text
    assert "| 4 clients sharing one quota (bucket, burst 20) | 4.0 s |" in text
