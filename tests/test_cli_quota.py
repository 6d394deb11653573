"""The CLI's ``--quota``: processes that share one quota share its pacing (real subprocesses)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracker_links import FileQuota, RedisQuota
from tracker_links._cli import _setup, build_parser, main
from tracker_links.testing import FakeTracker

TOKEN = "y0_secret-token-for-the-quota-tests"


def cli_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update(TRACKER_BASE_URL=url, TRACKER_TOKEN=TOKEN, TRACKER_ORG_ID="1")
    return env


# The fake lets 10 requests/s through (a bucket of 2). Two processes at 8/s each would send
# 16/s and draw 429s; sharing one quota, 8/s is their total and none is refused.
@pytest.mark.fake_tracker(token=TOKEN, queues={"TEST": 50}, rate_limit=10.0, rate_burst=2)
def test_two_processes_on_one_quota_file_share_the_rate(
    fake_tracker: FakeTracker, fake_tracker_url: str, tmp_path: Path
) -> None:
    quota = tmp_path / "quota.sqlite"
    procs = []
    for half in (0, 1):
        links = "".join(
            f"TEST-{i},relates,TEST-{i + 1}\n" for i in range(1 + half * 20, 21 + half * 20)
        )
        path = tmp_path / f"in{half}.csv"
        path.write_text("source,relationship,target\n" + links, encoding="utf-8")
        argv = [sys.executable, "-m", "tracker_links", "bulk-link", str(path), "-q"]
        argv += ["--rate-limit", "8", "--quota", f"file:{quota}"]
        procs.append(
            subprocess.Popen(
                argv,
                env=cli_env(fake_tracker_url),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        assert TOKEN not in out + err
    assert len(fake_tracker.links) == 40
    assert fake_tracker.stats.rate_limited == 0, fake_tracker.stats
    assert quota.exists()


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["link", "TEST-1", "relates", "TEST-2", *argv])


def test_quota_urls_make_the_quota(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRACKER_TOKEN", TOKEN)
    monkeypatch.setenv("TRACKER_ORG_ID", "1")
    client = _setup.make_client(_args("--quota", f"file:{tmp_path / 'q'}"))
    assert isinstance(client.quota, FileQuota)
    client = _setup.make_client(_args("--quota", "redis://127.0.0.1:6390/2?key=tracker:me"))
    assert isinstance(client.quota, RedisQuota)
    assert client.quota.key == "tracker:me"
    assert client.quota.url == "redis://127.0.0.1:6390/2"
    assert _setup.make_client(_args()).quota is None


def test_a_bad_quota_url_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRACKER_TOKEN", TOKEN)
    monkeypatch.setenv("TRACKER_ORG_ID", "1")
    assert main(["link", "TEST-1", "relates", "TEST-2", "--quota", "memcached://x"]) == 2
    assert "--quota takes file:PATH or redis://" in capsys.readouterr().err
