"""The removal commands as real subprocesses against the fake over loopback: ``unlink`` by
triple, ``bulk-unlink``, ``undo`` (with ``--dry-run``, ``--journal``, ``--report``, Ctrl-C)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tracker_links.testing import FakeTracker

from .test_cli import wait_for

TOKEN = "y0_secret-token-for-the-remove-tests"

pytestmark = pytest.mark.fake_tracker(token=TOKEN, queues={"TEST": 60})


def env_for(url: str, token: str = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update(TRACKER_BASE_URL=url, TRACKER_TOKEN=token, TRACKER_ORG_ID="1", COLUMNS="200")
    return env


def cli(url: str, *argv: str, token: str = TOKEN) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tracker_links", *argv],
        env=env_for(url, token),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert TOKEN not in proc.stdout + proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_unlink_by_triple_and_by_id(fake_tracker: FakeTracker, fake_tracker_url: str) -> None:
    url = fake_tracker_url
    first = fake_tracker.add_link("TEST-2", "TEST-1", "is dependent by")
    fake_tracker.add_link("TEST-1", "TEST-2", "relates")
    code, out, err = cli(url, "unlink", "TEST-1", "depends", "on", "TEST-2")
    assert code == 0, err
    assert f"deleted link {first.id}: TEST-1 depends on TEST-2" in out
    assert not fake_tracker.has_link("TEST-1", "TEST-2", "depends on")
    assert fake_tracker.has_link("TEST-1", "TEST-2", "relates")  # another relationship stays
    code, out, _ = cli(url, "unlink", "TEST-1", "depends on", "TEST-2")
    assert code == 0
    assert "nothing to delete: there is no link TEST-1 depends on TEST-2" in out
    (other,) = fake_tracker.find_links("TEST-1", "TEST-2")
    code, out, _ = cli(url, "unlink", "TEST-2", str(other.id))
    assert code == 0
    assert f"deleted link {other.id}" in out
    assert fake_tracker.links == {}
    code, _, err = cli(url, "unlink", "TEST-1", "blocks", "TEST-2")
    assert code == 2
    assert "unknown relationship 'blocks'" in err


def test_bulk_unlink_with_a_journal_report_and_dry_run(
    fake_tracker: FakeTracker, fake_tracker_url: str, tmp_path: Path
) -> None:
    url = fake_tracker_url
    for i in range(1, 21):
        fake_tracker.add_link(f"TEST-{i}", f"TEST-{i + 30}", "depends on")
    kept = fake_tracker.add_link("TEST-1", "TEST-31", "relates")
    rows = [f"TEST-{i},depends on,TEST-{i + 30}" for i in range(1, 21)]
    rows += ["TEST-40,relates,TEST-41", "TEST-3,nope,TEST-4", "TEST-32,is dependent by,TEST-2"]
    path = tmp_path / "unlink.csv"
    path.write_text("source,relationship,target\n" + "\n".join(rows) + "\n")
    journal, report = tmp_path / "journal.jsonl", tmp_path / "report.jsonl"

    fake_tracker.stats.reset()
    code, out, _ = cli(url, "bulk-unlink", str(path), "--dry-run")
    assert code == 1  # a bad line
    assert fake_tracker.stats.total == 0
    assert "would delete" in out
    assert "line 23" in out

    code, out, _ = cli(
        url, "bulk-unlink", str(path), "--journal", str(journal), "--report", str(report)
    )
    assert code == 1, out
    assert re.search(r"deleted\s+20\b", out), out
    assert re.search(r"absent\s+2\b", out), out  # no such link; the repeat of line 3
    assert "line 23: 'TEST-3,nope,TEST-4': unknown relationship 'nope'" in out
    by_line = {r["line"]: r for r in records(report)}
    assert by_line[22]["status"] == "absent"
    assert by_line[24]["status"] == "absent"
    assert by_line[24]["note"] == "same link as line 3"
    assert list(fake_tracker.links) == [kept.id]

    fake_tracker.stats.reset()
    code, out, _ = cli(url, "bulk-unlink", str(path), "--journal", str(journal))
    assert code == 1  # the bad line again
    assert fake_tracker.stats.count("DELETE") == 0
    assert fake_tracker.stats.count("GET") == 0  # all done in the journal
    assert re.search(r"absent\s+22\b", out), out


def test_bulk_unlink_with_a_bad_token_is_exit_2_after_one_request(
    fake_tracker: FakeTracker, fake_tracker_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "unlink.csv"
    rows = "".join(f"TEST-{i},relates,TEST-{i + 1}\n" for i in range(1, 40))
    path.write_text("source,relationship,target\n" + rows)
    code, out, _ = cli(fake_tracker_url, "bulk-unlink", str(path), token="y0_wrong")
    assert code == 2
    assert fake_tracker.stats.total == 1
    assert re.search(r"skipped\s+38\b", out), out


def test_bulk_link_then_undo_leaves_what_was_there(
    fake_tracker: FakeTracker, fake_tracker_url: str, tmp_path: Path
) -> None:
    url = fake_tracker_url
    there = fake_tracker.add_link("TEST-1", "TEST-2", "relates")
    path = tmp_path / "links.csv"
    path.write_text(
        "source,relationship,target\n"
        + "".join(f"TEST-{i},relates,TEST-{i + 1}\n" for i in range(1, 31))
    )
    journal = tmp_path / "links.jsonl"
    code, out, _ = cli(url, "bulk-link", str(path), "--journal", str(journal))
    assert code == 0, out
    assert len(fake_tracker.links) == 30

    fake_tracker.stats.reset()
    code, out, _ = cli(url, "undo", str(journal), "--dry-run")
    assert code == 0, out
    assert fake_tracker.stats.total == 0  # a dry run sends nothing
    assert re.search(r"would delete\s+29\b", out), out
    assert re.search(r"^TEST-2,relates,TEST-3,\d+,\d+$", out, re.M), out  # CSV, with the id

    undo_journal, report = tmp_path / "undo.jsonl", tmp_path / "undo-report.jsonl"
    code, out, _ = cli(
        url, "undo", str(journal), "--journal", str(undo_journal), "--report", str(report)
    )
    assert code == 0, out
    assert re.search(r"deleted\s+29\b", out), out
    assert list(fake_tracker.links) == [there.id]
    assert all(r["status"] == "deleted" for r in records(report))
    code, _, err = cli(url, "undo", str(journal), "--journal", str(journal))
    assert code == 2
    assert "another file" in err


@pytest.mark.fake_tracker(token=TOKEN, queues={"TEST": 60}, latency=0.05)
def test_ctrl_c_during_undo_then_resume(
    fake_tracker: FakeTracker, fake_tracker_url: str, tmp_path: Path
) -> None:
    url = fake_tracker_url
    journal = tmp_path / "links.jsonl"
    with journal.open("w") as f:
        for i, (a, b) in enumerate((a, b) for a in range(1, 11) for b in range(11, 31)):
            link = fake_tracker.add_link(f"TEST-{a}", f"TEST-{b}", "relates")
            record = {"index": i, "status": "created", "source": f"TEST-{a}"}
            record |= {"relationship": "relates", "target": f"TEST-{b}", "link_id": link.id}
            f.write(json.dumps(record) + "\n")
    undo_journal = tmp_path / "undo.jsonl"
    argv = [sys.executable, "-m", "tracker_links", "undo", str(journal), "--concurrency", "4"]
    proc = subprocess.Popen(
        [*argv, "--journal", str(undo_journal)],
        env=env_for(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: fake_tracker.stats.count("DELETE") >= 20, proc, "20 DELETEs")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "interrupted (Ctrl-C)" in out
    assert f"--journal {undo_journal}" in out
    done = [r for r in records(undo_journal) if r.get("status") == "deleted"]
    assert 20 <= len(done) < 200
    fake_tracker.stats.reset()
    code, out, _ = cli(url, *argv[3:], "--journal", str(undo_journal))
    assert code == 0, out
    assert fake_tracker.links == {}
    # Nothing the undo journal records as done was sent again.
    assert fake_tracker.stats.count("DELETE") <= 200 - len(done)


def test_the_removal_benchmark_runs() -> None:
    """``python -m benchmarks.remove --quick`` must not rot (its figures mean nothing here)."""
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.remove", "--quick"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("| PASS |") + proc.stdout.count("| MISS |") == 3
    assert "undo of 400 created links, 20 per source" in proc.stdout
