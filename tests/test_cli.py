"""The command-line tool, end to end against the fake Tracker over loopback.

Most tests run the CLI in process (``main(argv)`` returns the exit status); a few run it as a
real subprocess. Every in-process run checks that no token shows in stdout or stderr.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tracker_links._cli import _setup, main
from tracker_links._cli._output import Redacting
from tracker_links.testing import FakeTracker

TOKEN = "y0_secret-token-for-the-cli-tests"
WRONG = "y0_wrong-token-never-valid"
QUEUE = {"TEST": 30}

pytestmark = pytest.mark.fake_tracker(token=TOKEN, queues=QUEUE)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean environment: no credentials but the ones a test sets."""
    for name in list(os.environ):
        if name.startswith("TRACKER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")  # rich: do not fold long cells in the tables


@pytest.fixture
def served(
    fake_tracker: FakeTracker, fake_tracker_url: str, monkeypatch: pytest.MonkeyPatch
) -> FakeTracker:
    """The fake over loopback, with the environment pointing at it."""
    monkeypatch.setenv("TRACKER_BASE_URL", fake_tracker_url)
    monkeypatch.setenv("TRACKER_TOKEN", TOKEN)
    monkeypatch.setenv("TRACKER_ORG_ID", "1")
    return fake_tracker


class Run:
    """``main(argv)`` with its exit status and captured output."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        for secret in (TOKEN, WRONG):
            assert secret not in out
            assert secret not in err
        return code, out, err


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(capsys)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


# --- real subprocesses ------------------------------------------------------------------------


def test_python_m_help_and_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tracker_links", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    commands = ("get", "link", "unlink", "types", "bulk-link", "bulk-unlink", "undo")
    for command in (*commands, "queue-links", "fake-server", "demo"):
        assert command in proc.stdout
    assert "TRACKER_TOKEN" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "tracker_links", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("tracker-links ")


def test_python_m_bad_usage_is_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tracker_links", "no-such-command"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_fake_server_subprocess_then_commands_against_it(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tracker_links", "fake-server"),
            *("--port", "0", "--queues", "TEST=5,OTHER=2", "--seed", "1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert found, first + (proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        monkeypatch.setenv("TRACKER_BASE_URL", found.group(0))
        monkeypatch.setenv("TRACKER_TOKEN", TOKEN)
        monkeypatch.setenv("TRACKER_ORG_ID", "1")
        code, out, _ = run("link", "TEST-1", "depends", "on", "OTHER-2")
        assert code == 0, out
        code, out, _ = run("get", "OTHER-2", "--json")
        assert code == 0
        assert json.loads(out)["relationship"] == "is dependent by"
    finally:
        proc.send_signal(signal.SIGINT)
        out_rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in out_rest


def cli_env(url: str, token: str = TOKEN) -> dict[str, str]:
    """The environment of a CLI subprocess pointed at the fake at ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update(TRACKER_BASE_URL=url, TRACKER_TOKEN=token, TRACKER_ORG_ID="1")
    return env


def wait_for(condition: Any, proc: subprocess.Popen[str], what: str) -> None:
    """Until ``condition()`` holds (an event of the other process), or fail if it exits."""
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, f"the CLI exited before {what}"
        assert time.monotonic() < deadline, f"no {what} within 60 s"
        time.sleep(0.01)


@pytest.mark.fake_tracker(token=TOKEN, queues={"TEST": 40}, latency=0.05)
def test_ctrl_c_during_bulk_link_prints_the_summary_and_a_partial_report(
    fake_tracker: FakeTracker, fake_tracker_url: str, tmp_path: Path
) -> None:
    pairs = [(a, b) for a in range(1, 41) for b in range(a + 1, 41)][:300]
    text = "".join(f"TEST-{a},relates,TEST-{b}\n" for a, b in pairs)
    path = write(tmp_path, "in.csv", "source,relationship,target\n" + text)
    journal, report = tmp_path / "journal.jsonl", tmp_path / "report.jsonl"
    argv = [sys.executable, "-m", "tracker_links", "bulk-link", path, "--concurrency", "4"]
    proc = subprocess.Popen(
        [*argv, "--journal", str(journal), "--report", str(report)],
        env=cli_env(fake_tracker_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: fake_tracker.stats.count("POST") >= 20, proc, "20 POSTs")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    created = len(fake_tracker.links)
    assert 20 <= created < 300
    assert re.search(r"created\s+\d+", out), out
    assert "interrupted (Ctrl-C)" in out
    assert f"--journal {journal}" in out  # the resume hint
    records = read_jsonl(report)
    assert records[-1] == {"partial": True, "reason": "interrupted"}
    assert "the report is partial" in out
    done = records[:-1]
    assert all(r["status"] == "created" for r in done)
    assert len(done) <= created  # the report claims nothing the fake does not hold

    # The resume finishes the work without a second copy of anything.
    proc2 = subprocess.run(
        [*argv, "--journal", str(journal), "--report", str(report)],
        env=cli_env(fake_tracker_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc2.returncode == 0, proc2.stdout + proc2.stderr
    assert len(fake_tracker.links) == 300
    assert fake_tracker.stats.duplicates_created == 0
    assert "partial" not in report.read_text(encoding="utf-8")


def start_fake_server(*flags: str) -> tuple[subprocess.Popen[str], str, str]:
    """``tracker-links fake-server --port 0 FLAGS`` in a subprocess: it, its URL, its first line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker_links", "fake-server", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+", first)
    if not found:
        proc.kill()
        raise AssertionError(first + proc.communicate()[1])
    return proc, found.group(0), first


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err


def fake_stats(url: str) -> dict[str, Any]:
    import httpx

    data: dict[str, Any] = httpx.get(f"{url}/_fake/stats", timeout=10).json()
    return data


def test_fake_server_flags_token_and_duplicates(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    proc, url, first = start_fake_server(
        *("--queues", "TEST=5", "--token", TOKEN, "--duplicate-status", "none", "-q"),
        *("--max-inflight", "8", "--list-lag", "0", "--retry-after", "none", "--seed", "2"),
    )
    try:
        assert "it accepts only the tokens given" in first
        monkeypatch.setenv("TRACKER_BASE_URL", url)
        monkeypatch.setenv("TRACKER_ORG_ID", "1")
        monkeypatch.setenv("TRACKER_TOKEN", WRONG)
        code, _, err = run("types")  # a 401 from the command line, at last
        assert code == 2
        assert "authentication failed" in err
        assert fake_stats(url)["requests"] == {"GET 401": 1}
        monkeypatch.setenv("TRACKER_TOKEN", TOKEN)
        code, out, _ = run("link", "TEST-1", "relates", "TEST-2")
        assert code == 0, out
        code, out, _ = run("link", "TEST-1", "relates", "TEST-2")
        assert code == 0, out
        stats = fake_stats(url)  # read while it runs
        assert stats["duplicates_created"] == 1  # --duplicate-status none stores it
        assert stats["links"] == 2
    finally:
        out, _ = stop(proc)
    assert out == ""  # -q: the URL line only, nothing at the end


def test_fake_server_verbose_prints_the_statistics_when_stopped(run: Run) -> None:
    proc, url, _ = start_fake_server("--queues", "TEST=3", "-v", "--latency", "0.001")
    assert proc.stdout is not None
    hints = [proc.stdout.readline() for _ in range(5)]
    assert f"its statistics meanwhile: curl {url}/_fake/stats\n" in hints
    fake_stats(url)
    out, _ = stop(proc)
    assert "stopped; the fake answered" in out
    stats = json.loads(out[out.index("{") :])
    assert stats["issues"] == 3


@pytest.mark.parametrize(
    "flags",
    [
        ["--duplicate-status", "418"],
        ["--redirect-status", "200"],
        ["--limit", "bucket:oops"],
        ["--latency", "0.1", "--latency-ms", "100"],
        ["--started-at", "yesterday"],
        ["--users", "no-login"],
    ],
)
def test_fake_server_bad_flags_are_exit_2(run: Run, flags: list[str]) -> None:
    code, _, err = run("fake-server", "--port", "0", *flags)
    assert code == 2
    assert err


def test_fake_server_has_a_flag_for_every_knob_of_the_fake() -> None:
    import inspect

    from tracker_links._cli import build_parser
    from tracker_links._cli.commands.fake_server import settings

    knobs = set(inspect.signature(FakeTracker).parameters) - {"clock", "sleep"}
    args = build_parser().parse_args(["fake-server"])
    given = settings(args)
    assert set(given) == knobs
    FakeTracker(**given)  # the defaults of the flags are valid settings
    args = build_parser().parse_args(
        ["fake-server", "--limit", "bucket:100,10", "--limit", "inflight:4", "--users", "a=b"]
    )
    given = settings(args)
    assert len(given["limit"]) == 2
    assert given["users"] == {"a": "b"}
    FakeTracker(**given)


# --- single calls -----------------------------------------------------------------------------


def test_types_table_and_json(served: FakeTracker, run: Run) -> None:
    code, out, _ = run("types")
    assert code == 0
    assert "depends on / is dependent by" in out
    code, out, _ = run("types", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["id"] for r in rows} >= {"relates", "depends", "subtask"}


def test_link_get_unlink(served: FakeTracker, run: Run) -> None:
    code, out, _ = run("link", "TEST-1", "depends on", "TEST-2")
    assert code == 0
    assert re.search(r"created link \d+: TEST-1 depends on TEST-2", out)
    assert served.has_link("TEST-1", "TEST-2", "depends on")

    # The same link the other way round: already there, not an error, not a second link.
    code, out, _ = run("link", "TEST-2", "is", "dependent", "by", "TEST-1")
    assert code == 0
    assert "already exists" in out
    assert len(served.links) == 1

    code, out, _ = run("get", "TEST-1", "TEST-3")
    assert code == 0
    assert "TEST-2" in out
    assert "(no links)" in out
    code, out, _ = run("get", "TEST-2", "--json")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["source"] == "TEST-2"
    assert row["relationship"] == "is dependent by"
    assert row["target"] == "TEST-1"

    code, out, _ = run("unlink", "TEST-2", str(row["link_id"]))
    assert code == 0
    assert "deleted" in out
    assert len(served.links) == 0
    code, _, err = run("unlink", "TEST-2", str(row["link_id"]))
    assert code == 1
    assert "404" in err


def test_unlink_by_relationship_deletes_only_that_link(served: FakeTracker, run: Run) -> None:
    served.add_link("TEST-1", "TEST-2", "depends on")
    served.add_link("TEST-1", "TEST-2", "relates")
    code, out, _ = run("unlink", "TEST-2", "is", "dependent", "by", "TEST-1")  # other spelling
    assert code == 0, out
    assert re.search(r"deleted link \d+: TEST-2 is dependent by TEST-1", out)
    assert not served.has_link("TEST-1", "TEST-2", "depends on")
    assert served.has_link("TEST-1", "TEST-2", "relates")  # another relationship stays
    code, out, _ = run("unlink", "TEST-1", "depends on", "TEST-2")
    assert code == 0
    assert "nothing to delete: there is no link TEST-1 depends on TEST-2" in out
    before = served.stats.total
    code, _, err = run("unlink", "TEST-1", "blocks", "TEST-2")
    assert code == 2
    assert "unknown relationship" in err
    assert served.stats.total == before


def test_bulk_unlink_deletes_what_the_file_names(
    served: FakeTracker, run: Run, tmp_path: Path
) -> None:
    for i in range(1, 9):
        served.add_link(f"TEST-{i}", f"TEST-{i + 10}", "depends on")
    served.add_link("TEST-1", "TEST-11", "relates")  # not in the file: stays
    text = "source,relationship,target\n"
    text += "".join(f"TEST-{i},depends on,TEST-{i + 10}\n" for i in range(1, 5))
    text += "".join(f"TEST-{i + 10},is dependent by,TEST-{i}\n" for i in range(5, 9))
    text += "TEST-1,depends on,TEST-11\n"  # a repeat
    text += "TEST-20,relates,TEST-21\n"  # absent
    text += "TEST-3,blocks,TEST-4\n"  # bad
    path = write(tmp_path, "unlink.csv", text)
    journal, report = str(tmp_path / "journal.jsonl"), tmp_path / "report.jsonl"

    code, out, _ = run("bulk-unlink", path, "--dry-run", "--journal", journal)
    assert code == 1
    listing, _, summary = out.partition("\n\n")
    assert len(listing.splitlines()) == 1 + 9  # the header, 8 links and the absent one
    assert re.search(r"would delete\s+9", summary)
    assert len(served.links) == 9

    code, out, _ = run("bulk-unlink", path, "--journal", journal, "--report", str(report))
    assert code == 1, out  # the bad line
    assert re.search(r"deleted\s+8", out)
    assert re.search(r"absent\s+2", out)  # the absent link, and the repeat of a deleted one
    assert re.search(r"failed\s+1", out)
    assert "created" not in out
    assert len(served.links) == 1
    assert served.has_link("TEST-1", "TEST-11", "relates")  # not asked for: it stays
    records = {r["line"]: r for r in read_jsonl(report)}
    assert sorted(records) == list(range(2, 13))
    assert records[11]["status"] == "absent"
    assert records[12]["status"] == "failed"

    served.stats.reset()
    code, out, _ = run("bulk-unlink", path, "--journal", journal)
    assert served.stats.count("DELETE") == 0  # all done in the journal
    assert code == 1


def test_get_missing_issue_is_exit_1(served: FakeTracker, run: Run) -> None:
    code, _, err = run("get", "TEST-1", "TEST-999")
    assert code == 1
    assert "TEST-999" in err


def test_usage_errors_send_nothing(served: FakeTracker, run: Run) -> None:
    before = served.stats.total
    for argv in (
        ["get", "test-1"],
        ["link", "TEST-1", "TEST-2"],
        ["link", "TEST-1", "blocks", "TEST-2"],
        ["link", "TEST-1", "relates", "TEST-1"],
        ["unlink", "TEST-1", "abc"],
        ["queue-links"],
        ["queue-links", "TEST", "--query", "Queue: TEST"],
        ["queue-links", "bad queue"],
        ["bulk-link", "--rate-limit", "0", "x.csv"],
        ["no-such-command"],
    ):
        code, _, err = run(*argv)
        assert code == 2, (argv, err)
        assert err
    assert served.stats.total == before


def test_missing_credentials_are_exit_2(
    fake_tracker_url: str, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKER_BASE_URL", fake_tracker_url)
    monkeypatch.setenv("TRACKER_ORG_ID", "1")
    code, _, err = run("types")
    assert code == 2
    assert "TRACKER_TOKEN" in err
    monkeypatch.setenv("TRACKER_TOKEN", TOKEN)
    monkeypatch.delenv("TRACKER_ORG_ID")
    code, _, err = run("types")
    assert code == 2
    assert "TRACKER_ORG_ID" in err
    monkeypatch.setenv("TRACKER_ORG_ID", "1")
    monkeypatch.setenv("TRACKER_IAM_TOKEN", WRONG)
    code, _, err = run("types")
    assert code == 2
    assert "only one" in err


def test_token_option_warns_and_never_shows(
    fake_tracker_url: str, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKER_ORG_ID", "1")
    code, out, err = run("--token", TOKEN, "--base-url", fake_tracker_url, "types")
    assert code == 0
    assert "process list" in err
    assert "relates" in out
    # The option after the command works the same.
    code, _, err = run("types", f"--token={TOKEN}", "--base-url", fake_tracker_url)
    assert code == 0
    assert "process list" in err


def test_a_token_echoed_by_mistake_is_masked(served: FakeTracker, run: Run) -> None:
    # The token pasted where an issue key goes: the error message names the bad value, and
    # the output filter masks it (Run checks that TOKEN is nowhere in the output).
    code, _, err = run("link", TOKEN, "relates", "TEST-1")
    assert code == 2
    assert "***" in err


def test_bad_token_is_exit_2_with_one_request(
    served: FakeTracker, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKER_TOKEN", WRONG)
    code, _, err = run("types")
    assert code == 2
    assert "authentication failed" in err

    lines = "".join(f"TEST-{i},relates,TEST-{i + 10}\n" for i in range(1, 11))
    path = write(tmp_path, "in.csv", "source,relationship,target\n" + lines)
    report = tmp_path / "report.jsonl"
    served.stats.reset()
    code, out, _ = run("bulk-link", path, "--report", str(report))
    assert code == 2
    assert "authentication failed" in out
    assert served.stats.count("POST") == 1  # one 401, then the batch stopped
    statuses = [r["status"] for r in read_jsonl(report)]
    assert statuses.count("failed") == 1
    assert statuses.count("skipped") == 9
    assert len(served.links) == 0

    code, _, err = run("get", "TEST-1")
    assert code == 2


def test_verbose_counts_add_up_across_the_command(served: FakeTracker, run: Run) -> None:
    code, _, err = run("get", "TEST-1", "-v")
    assert code == 0
    assert "DEBUG" not in err
    code, _, err = run("-v", "get", "TEST-1", "-v")  # -v before and after: -vv, every request
    assert code == 0
    assert re.search(r"DEBUG tracker_links: GET /v2/issues/TEST-1/links -> 200", err), err


@pytest.mark.parametrize(
    ("command", "one"),
    [
        ("get", "an issue could not be read"),
        ("link", "the request failed"),
        ("types", "the request failed"),
        ("unlink", "the request failed"),
        ("bulk-link", "some items failed"),
    ],
)
def test_help_lists_the_exit_statuses_of_its_command(run: Run, command: str, one: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0
    statuses = out.partition("exit status:")[2]
    assert re.search(rf"^  1 +{re.escape(one)}", statuses, re.M), statuses
    assert ("some items failed" in statuses) == (command == "bulk-link")
    assert re.search(r"^  130 +interrupted", statuses, re.M)


def test_unlink_help_describes_its_arguments(run: Run) -> None:
    code, out, _ = run("unlink", "--help")
    assert code == 0
    assert "KEY: the issue the link is on" in out
    assert "LINK_ID: the link's id" in " ".join(out.split())
    assert "SOURCE RELATIONSHIP TARGET" in out


def test_get_with_a_bad_token_gives_the_credentials_hint(
    served: FakeTracker, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKER_TOKEN", WRONG)
    code, _, err = run("get", "TEST-1")
    assert code == 2
    assert "authentication failed" in err
    assert "check TRACKER_TOKEN" in err


# --- bulk-link --------------------------------------------------------------------------------

BAD_CSV = """\
source,relationship,target
TEST-1,depends on,TEST-2
TEST-2,is dependent by,TEST-1

TEST-3,blocks,TEST-4
TEST-5,relates
test-6,relates,TEST-7
TEST-8,relates,TEST-8
"TEST-9","is subtask for","TEST-10"
TEST-11,relates,TEST-99
TEST-12,duplicates,TEST-13,extra
TEST-14,relates,TEST-15
"""


def test_bulk_link_csv_with_bad_lines(served: FakeTracker, run: Run, tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", BAD_CSV)
    report = tmp_path / "report.jsonl"
    code, out, _ = run("bulk-link", path, "--report", str(report))
    assert code == 1
    # The good lines are created, once each.
    assert served.has_link("TEST-1", "TEST-2", "depends on")
    assert served.has_link("TEST-9", "TEST-10", "is subtask for")
    assert served.has_link("TEST-14", "TEST-15", "relates")
    assert len(served.links) == 3
    # Each bad line is listed with its line number (the header is line 1).
    for line, text in (
        (5, "unknown relationship 'blocks'"),
        (6, "missing target"),
        (7, "invalid source issue key 'test-6'"),
        (8, "two different issues"),
        (10, "404"),
        (11, "4 fields"),
    ):
        assert re.search(rf"line {line}: .*{re.escape(text)}", out), (line, out)
    assert re.search(r"created\s+3", out)
    assert re.search(r"exists\s+1", out)
    assert re.search(r"failed\s+6", out)
    assert str(report) in out
    # The report: one outcome per data line, by line number.
    records = {r["line"]: r for r in read_jsonl(report)}
    assert sorted(records) == [2, 3, 5, 6, 7, 8, 9, 10, 11, 12]
    assert records[2]["status"] == "created"
    assert records[3]["status"] == "exists"
    assert records[3]["note"] == "same link as line 2"
    assert records[5]["status"] == "failed"
    assert records[5]["input"] == "TEST-3,blocks,TEST-4"
    assert records[10]["error"] == "NotFoundError"
    assert records[12]["status"] == "created"


def test_bulk_link_a_stray_quote_loses_no_line(
    served: FakeTracker, run: Run, tmp_path: Path
) -> None:
    # 200 distinct pairs of the 30 issues; line 100 opens a quote that never closes.
    pairs = [(a, b) for a in range(1, 31) for b in range(a + 1, 31)][:200]
    lines = [f"TEST-{a},relates,TEST-{b}\n" for a, b in pairs]
    lines[98] = '"' + lines[98]  # line 100 of the file (the header is line 1)
    path = write(tmp_path, "in.csv", "source,relationship,target\n" + "".join(lines))
    report = tmp_path / "report.jsonl"
    code, out, _ = run("bulk-link", path, "--report", str(report))
    assert code == 1
    records = {r["line"]: r for r in read_jsonl(report)}
    assert sorted(records) == list(range(2, 202))  # every data line has its outcome
    assert records[100]["status"] == "failed"
    assert "does not close within 10 lines" in records[100]["reason"]
    assert all(records[i]["status"] == "created" for i in range(101, 202))
    assert len(served.links) == 199
    assert "201 lines read: 199 items, 1 bad line, 1 blank/header" in out
    assert re.search(r"line 100: .*does not close", out)


@pytest.mark.parametrize("dry_run", [False, True])
def test_bulk_link_header_only_says_there_is_nothing_to_do(
    served: FakeTracker, run: Run, tmp_path: Path, dry_run: bool
) -> None:
    path = write(tmp_path, "in.csv", "source,relationship,target\n\n")
    code, out, _ = run("bulk-link", path, *(["--dry-run"] if dry_run else []))
    assert code == 0
    assert "nothing to do: the input holds no data lines" in out
    assert "2 lines read: 0 items, 0 bad lines, 2 blank/header" in out
    assert served.stats.total == 0


def test_bulk_link_report_has_index_and_line(served: FakeTracker, run: Run, tmp_path: Path) -> None:
    text = "source,relationship,target\nTEST-1,blocks,TEST-2\n\nTEST-1,relates,TEST-2\n"
    text += "TEST-3,relates,TEST-4\nTEST-2,relates,TEST-1\n"
    path = write(tmp_path, "in.csv", text)
    report, journal = tmp_path / "report.jsonl", tmp_path / "journal.jsonl"
    code, _, _ = run("bulk-link", path, "--report", str(report), "--journal", str(journal))
    assert code == 1
    records = read_jsonl(report)
    by_line = {r["line"]: r for r in records}
    assert "index" not in by_line[2]  # a bad line never reaches the library: no item index
    assert [(by_line[i]["index"], by_line[i]["status"]) for i in (4, 5, 6)] == [
        (0, "created"),
        (1, "created"),
        (2, "exists"),
    ]
    assert by_line[6]["note"] == "same link as line 4"
    assert by_line[6]["repeat_of"] == 0
    # The journal numbers items the same way, and knows their lines.
    journaled = {r["index"]: r for r in read_jsonl(journal) if r.get("status") == "created"}
    assert (journaled[1]["source"], journaled[1]["line"]) == ("TEST-3", 5)
    assert (journaled[0]["source"], journaled[0]["line"]) == ("TEST-1", 4)


def test_bulk_link_one_forbidden_queue_fails_its_items_only(
    served: FakeTracker, run: Run, tmp_path: Path
) -> None:
    secret = [served.add_issue(queue="SECRET") for _ in range(40)]
    served.forbidden_queues = {"SECRET"}
    good = "".join(f"TEST-{i},relates,TEST-{i + 10}\n" for i in range(1, 9))
    path = write(
        tmp_path, "in.csv", f"source,relationship,target\n{good}TEST-9,relates,{secret[0]}\n"
    )
    code, out, _ = run("bulk-link", path)
    assert code == 1, out  # some items failed; no "bad credentials" stop
    assert "stopped" not in out
    assert "403" in out
    assert len(served.links) == 8
    # Every item refused from the start (a wrong organization, say): the batch stops, exit 2.
    bad = "".join(f"{secret[i]},relates,TEST-{i + 10}\n" for i in range(1, 40))
    path = write(tmp_path, "all.csv", "source,relationship,target\n" + bad)
    code, out, _ = run("bulk-link", path)
    assert code == 2, out
    assert "the batch stopped" in out


def test_bulk_link_all_good_is_exit_0(served: FakeTracker, run: Run, tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "Source, Relationship ,TARGET\nTEST-1,relates,TEST-2\n")
    code, out, _ = run("bulk-link", path)
    assert code == 0, out
    assert served.has_link("TEST-2", "TEST-1", "relates")


def test_bulk_link_jsonl_from_stdin(
    served: FakeTracker, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (
        '{"source": "TEST-1", "relationship": "relates", "target": "TEST-2"}\n'
        "\n"
        '{"source": "TEST-3"}\n'
        "not json\n"
        '{"source": "TEST-4", "relationship": "has epic", "target": 5}\n'
        '{"source": "TEST-5", "relationship": "duplicates", "target": "TEST-6"}\n'
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    code, out, _ = run("bulk-link", "-")
    assert code == 1
    assert served.has_link("TEST-1", "TEST-2", "relates")
    assert served.has_link("TEST-5", "TEST-6", "duplicates")
    assert re.search(r"line 3: .*missing relationship and target", out)
    assert re.search(r"line 4: .*not valid JSON", out)
    assert re.search(r"line 5: .*target: expected a string", out)


def test_bulk_link_dry_run_sends_nothing(served: FakeTracker, run: Run, tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", BAD_CSV)
    before = served.stats.total
    code, out, err = run("bulk-link", path, "--dry-run")
    assert served.stats.total == before
    assert len(served.links) == 0
    assert code == 1  # bad lines
    assert err == ""  # everything on stdout: the list, a blank line, the summary
    listing, _, summary = out.partition("\n\n")
    # What would be sent, de-duplicated (TEST-2 is dependent by TEST-1 is the same link).
    rows = list(csv.reader(io.StringIO(listing)))
    assert rows[0] == ["source", "relationship", "target"]
    assert rows[1:] == [
        ["TEST-1", "depends on", "TEST-2"],
        ["TEST-9", "is subtask for", "TEST-10"],
        ["TEST-11", "relates", "TEST-99"],
        ["TEST-14", "relates", "TEST-15"],
    ]
    assert "nothing was sent" in summary
    assert re.search(r"repeats\s+1", summary)
    assert re.search(r"line 5: .*blocks", summary)
    assert "12 lines read: 5 items, 5 bad lines, 2 blank/header" in summary

    good = write(
        tmp_path, "good.jsonl", '{"source":"TEST-1","relationship":"relates","target":"TEST-2"}\n'
    )
    code, out, _ = run("bulk-link", good, "--dry-run")
    assert code == 0
    assert json.loads(out.partition("\n\n")[0]) == {
        "source": "TEST-1",
        "relationship": "relates",
        "target": "TEST-2",
    }
    assert served.stats.total == before


def test_bulk_link_resume_with_journal_sends_no_post(
    served: FakeTracker, run: Run, tmp_path: Path
) -> None:
    lines = "".join(f"TEST-{i},depends on,TEST-{i + 1}\n" for i in range(1, 21))
    path = write(tmp_path, "in.csv", "source,relationship,target\n" + lines)
    journal = str(tmp_path / "journal.jsonl")
    code, out, _ = run("bulk-link", path, "--journal", journal, "--concurrency", "4")
    assert code == 0, out
    assert len(served.links) == 20
    assert journal in out

    served.stats.reset()
    code, out, _ = run("bulk-link", path, "--journal", journal)
    assert code == 0, out
    assert served.stats.count("POST") == 0
    assert served.stats.total == 0
    assert re.search(r"exists\s+20", out)
    assert re.search(r"created\s+0", out)

    # A dry run with the journal knows that nothing is left to send.
    code, out, _ = run("bulk-link", path, "--journal", journal, "--dry-run")
    assert code == 0
    listing, _, summary = out.partition("\n\n")
    assert listing.splitlines() == ["source,relationship,target"]
    assert re.search(r"in the journal\s+20", summary)
    assert served.stats.total == 0


def test_undo_deletes_exactly_what_the_run_created(
    served: FakeTracker, run: Run, tmp_path: Path
) -> None:
    served.add_link("TEST-1", "TEST-2", "relates")  # there before the run: it stays
    text = "source,relationship,target\nTEST-1,relates,TEST-2\n"
    text += "".join(f"TEST-{i},depends on,TEST-{i + 10}\n" for i in range(3, 8))
    path = write(tmp_path, "in.csv", text)
    journal = str(tmp_path / "journal.jsonl")
    code, out, _ = run("bulk-link", path, "--journal", journal)
    assert code == 0, out
    assert len(served.links) == 6
    # Someone deletes one created link and makes it again by hand: a new id, not the run's.
    code, out, _ = run("unlink", "TEST-7", "depends on", "TEST-17")
    assert code == 0, out
    served.add_link("TEST-7", "TEST-17", "depends on")

    code, out, _ = run("undo", journal, "--dry-run")
    assert code == 0
    listing, _, summary = out.partition("\n\n")
    rows = list(csv.reader(io.StringIO(listing)))
    assert rows[0] == ["source", "relationship", "target", "link_id", "journal_line"]
    assert sorted(r[0] for r in rows[1:]) == [f"TEST-{i}" for i in range(3, 8)]
    assert re.search(r"would delete\s+5", summary)
    assert len(served.links) == 6

    undo_journal, report = str(tmp_path / "undo.jsonl"), tmp_path / "undo-report.jsonl"
    code, out, _ = run("undo", journal, "--journal", undo_journal, "--report", str(report))
    assert code == 0, out
    assert re.search(r"deleted\s+4", out)
    assert re.search(r"absent\s+1", out)  # the re-created link has another id: kept
    assert served.has_link("TEST-1", "TEST-2", "relates")
    assert served.has_link("TEST-7", "TEST-17", "depends on")
    assert len(served.links) == 2
    assert {r["status"] for r in read_jsonl(report)} == {"deleted", "absent"}

    served.stats.reset()
    code, out, _ = run("undo", journal, "--journal", undo_journal)
    assert code == 0
    assert served.stats.count("DELETE") == 0  # done in the undo's own journal


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("a,b,c\nTEST-1,relates,TEST-2\n", "no usable header"),
        ("TEST-1,relates,TEST-2\n", "no usable header"),
        ("source,target\nTEST-1,TEST-2\n", "no column relationship"),
    ],
)
def test_bulk_link_unusable_input_is_exit_2(
    served: FakeTracker, run: Run, tmp_path: Path, content: str | None, message: str
) -> None:
    path = str(tmp_path / "missing.csv") if content is None else write(tmp_path, "in.csv", content)
    code, _, err = run("bulk-link", path)
    assert code == 2
    assert message in err
    assert served.stats.total == 0


def test_bulk_link_more_failures_than_shown(served: FakeTracker, run: Run, tmp_path: Path) -> None:
    lines = "".join(f"TEST-{i},blocks,TEST-{i + 1}\n" for i in range(1, 26))
    path = write(tmp_path, "in.csv", "source,relationship,target\n" + lines)
    code, out, _ = run("bulk-link", path)
    assert code == 1
    assert "first 20 of 25" in out
    assert "line 21:" in out
    assert "line 22:" not in out
    found = re.search(r"all 25: (\S+)", out)
    assert found
    try:
        assert len(read_jsonl(found.group(1))) == 25
    finally:
        os.remove(found.group(1))
    assert served.stats.total == 0


# --- queue-links ------------------------------------------------------------------------------


@pytest.fixture
def linked(served: FakeTracker) -> FakeTracker:
    """A dependency cycle written in mixed spellings, and a few other links."""
    served.add_link("TEST-1", "TEST-2", "depends on")
    served.add_link("TEST-3", "TEST-2", "is dependent by")  # TEST-2 depends on TEST-3
    served.add_link("TEST-3", "TEST-1", "depends on")
    served.add_link("TEST-4", "TEST-1", "relates")
    served.add_link("TEST-5", "TEST-6", "is subtask for")
    served.add_link("TEST-6", "TEST-7", "depends on")
    return served


EXPECTED = {
    ("TEST-1", "depends on", "TEST-2"),
    ("TEST-2", "depends on", "TEST-3"),
    ("TEST-3", "depends on", "TEST-1"),
    ("TEST-1", "relates", "TEST-4"),
    ("TEST-6", "is parent task for", "TEST-5"),
    ("TEST-6", "depends on", "TEST-7"),
}


def test_queue_links_jsonl(linked: FakeTracker, run: Run) -> None:
    code, out, err = run("queue-links", "TEST")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert {(r["source"], r["relationship"], r["target"]) for r in rows} == EXPECTED
    assert len(rows) == len(EXPECTED)  # each link once, though read from both of its issues
    assert "30 issues, 6 links" in err


def test_queue_links_csv_to_file_is_reimportable(
    linked: FakeTracker, run: Run, tmp_path: Path
) -> None:
    path = tmp_path / "links.csv"
    code, out, _ = run("queue-links", "--query", "Queue: TEST", "--format", "csv", "-o", str(path))
    assert code == 0
    assert "6 links" in out  # the summary goes to stdout when the data goes to a file
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["source"], r["relationship"], r["target"]) for r in rows} == EXPECTED
    assert {r["direction"] for r in rows} == {"outward"}  # filled for every known type
    # Fed back to bulk-link, every line is a link that exists already.
    code, out, _ = run("bulk-link", str(path))
    assert code == 0
    assert re.search(r"exists\s+6", out)
    assert len(linked.links) == 6


def test_queue_links_dot(linked: FakeTracker, run: Run) -> None:
    code, out, _ = run("queue-links", "TEST", "--format", "dot")
    assert code == 0
    assert out.startswith("digraph links {")
    assert out.rstrip().endswith("}")
    assert '"TEST-2" -> "TEST-3" [label="depends on"];' in out
    assert '"TEST-1" -> "TEST-4" [label="relates", dir=none];' in out
    assert out.count("->") == 6


def test_queue_links_mermaid(linked: FakeTracker, run: Run) -> None:
    code, out, _ = run("queue-links", "TEST", "--format", "mermaid")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "graph LR"
    assert '  TEST_6["TEST-6"] -->|is parent task for| TEST_5["TEST-5"]' in lines
    assert '  TEST_1["TEST-1"] ---|relates| TEST_4["TEST-4"]' in lines
    assert len(lines) == 7


def test_queue_links_cycles(linked: FakeTracker, run: Run) -> None:
    code, out, _ = run("queue-links", "TEST", "--cycles")
    assert code == 0
    assert "1 dependency cycle(s)" in out
    assert "1. TEST-1 -> TEST-2 -> TEST-3 -> TEST-1" in out
    # With a format, the links go to stdout and the cycles to stderr.
    code, out, err = run("queue-links", "TEST", "--cycles", "--format", "jsonl")
    assert code == 0
    assert len(out.splitlines()) == 6
    assert "TEST-1 -> TEST-2 -> TEST-3 -> TEST-1" in err


def test_queue_links_no_cycles(served: FakeTracker, run: Run) -> None:
    served.add_link("TEST-1", "TEST-2", "depends on")
    code, out, _ = run("queue-links", "TEST", "--cycles")
    assert code == 0
    assert "no dependency cycles" in out


# --- demo, output ----------------------------------------------------------------------------


def test_demo_quick(run: Run) -> None:
    started = time.monotonic()
    code, out, _ = run("demo", "--quick", "--pairs", "80")
    assert code == 0, out
    assert "FAILED" not in out
    assert out.count("[ok]") == 6
    assert "the second run sent nothing" in out
    assert "undo deleted exactly the" in out
    assert "DEMO-1 -> DEMO-2 -> DEMO-3 -> DEMO-1" in out
    assert "```mermaid" in out
    assert re.search(r"demo finished in [\d.]+ s", out)
    assert time.monotonic() - started < 30


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("rich", [True, False])
def test_progress_on_a_terminal_only(
    served: FakeTracker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rich: bool,
) -> None:
    if not rich:
        monkeypatch.setitem(sys.modules, "rich", None)  # as if the extra were not installed
    lines = "".join(f"TEST-{i},relates,TEST-{i + 1}\n" for i in range(1, 6))
    path = write(tmp_path, "in.csv", "source,relationship,target\n" + lines)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["bulk-link", path]) == 0
    drawn = terminal.getvalue()
    assert "linking" in drawn
    assert "5/5" in drawn
    assert "created" in drawn

    served.stats.reset()
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main(["bulk-link", path, "--quiet"]) == 0
    assert quiet.getvalue() == ""


def last_line(drawn: str) -> str:
    """The last state of a plain progress line (each draw rewrites it after a CR)."""
    return drawn.rstrip("\n").rsplit("\r", 1)[-1].strip()


def test_progress_total_and_counters_agree(
    served: FakeTracker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # the plain line, easy to read back
    # 7 non-blank data lines, but 5 items: one record runs across 3 lines; 1 bad line.
    text = "source,relationship,target\n\nTEST-1,relates,TEST-2\n"
    text += 'TEST-3,"relates\n\n\n",TEST-4\nTEST-5,blocks,TEST-6\n\nTEST-7,relates,TEST-8\n'
    text += "TEST-9,relates,TEST-10\n"
    path = write(tmp_path, "in.csv", text)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["bulk-link", path]) == 1
    line = last_line(terminal.getvalue())
    assert line.startswith("linking 5/5 "), line
    counts = dict(re.findall(r"(created|exists|failed|skipped) (\d+)", line))
    assert counts == {"created": "4", "failed": "1"}
    assert re.search(r"\| [\d,]+ req/s  retries 0  429s 0", line), line


@pytest.mark.fake_tracker(token=TOKEN, queues=QUEUE, fail_rate=0.3, seed=3)
def test_progress_shows_the_retries_of_the_run(
    served: FakeTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    served.add_link("TEST-1", "TEST-2", "depends on")
    served.stats.reset()
    assert main(["queue-links", "TEST", "--format", "csv", "-o", os.devnull]) == 0
    line = last_line(terminal.getvalue())
    injected = served.stats.injected_failures
    assert injected > 0
    # Every injected 5xx of a read is retried once more by the client, and shown.
    assert f"retries {injected}  429s 0" in line, line


def test_progress_line_shows_the_pace_and_the_service_counts() -> None:
    from tracker_links._cli._output import UI
    from tracker_links._cli._progress import Progress

    now = [100.0]
    sent = [(0, 0, 0)]
    progress = Progress(
        UI(quiet=True), "linking", 10, ["created"], service=lambda: sent[0], clock=lambda: now[0]
    )
    assert progress.service_text(100.0) == "0 req/s  retries 0  429s 0"
    sent[0] = (50, 2, 1)
    assert progress.service_text(101.0) == "50 req/s  retries 2  429s 1"
    # The pace follows the last seconds: throttled to 5 req/s for a while, it shows 5.
    for t in range(2, 12):
        sent[0] = (50 + 5 * (t - 1), 2, 9)
        text = progress.service_text(100.0 + t)
    assert text == "5 req/s  retries 2  429s 9"


def test_plain_text_without_rich(
    served: FakeTracker, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    served.add_link("TEST-1", "TEST-2", "depends on")
    code, out, _ = run("get", "TEST-1")
    assert code == 0
    assert re.search(r"TEST-1\s+\d+\s+depends on\s+TEST-2", out)
    code, out, _ = run("types")
    assert code == 0
    assert "type id" in out


def test_redacting_stream() -> None:
    inner = io.StringIO()
    stream = Redacting(inner, _setup.secrets(["--token", "abcdefgh-1234", "--token=zyxwvuts-9"]))
    stream.write("a abcdefgh-1234 b zyxwvuts-9 c")
    assert inner.getvalue() == "a *** b *** c"
    assert _setup.secrets(["--token", "short"]) == []
