"""``tracker-links sync`` and ``tracker-links apply``, end to end against the fake over loopback.

Most runs are in process (``main(argv)``, with every output checked for the token), one is a
real pair of subprocesses: ``sync --out`` then ``apply``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tracker_links import LinkSpec, Plan
from tracker_links.testing import FakeTracker

from .test_cli import TOKEN, Run, _env, cli_env, run, served, write

__all__ = ["_env", "run", "served"]  # the fixtures, used by name

pytestmark = pytest.mark.fake_tracker(token=TOKEN, queues={"TEST": 120, "OUT": 3})

DESIRED = """source,relationship,target
TEST-1,depends on,TEST-2
TEST-3,is dependent by,TEST-4
TEST-5,relates,TEST-6
TEST-7,depends on,TEST-8
"""


def writes(fake: FakeTracker) -> int:
    routes = fake.stats.by_route
    return routes[("POST", "links.create")] + routes[("DELETE", "links.delete")]


def links_of(fake: FakeTracker) -> set[tuple[str, str, str, str]]:
    return {
        LinkSpec(link.source, link.target, link.relationship).canonical
        for link in fake.links.values()
    }


def canon(*triples: tuple[str, str, str]) -> set[tuple[str, str, str, str]]:
    return {LinkSpec(*t).canonical for t in triples}


@pytest.fixture
def drifted(served: FakeTracker) -> FakeTracker:
    """DESIRED, with drift: one link missing, one changed, two extra (one leaves the queue)."""
    served.add_link("TEST-1", "TEST-2", "depends on")
    served.add_link("TEST-4", "TEST-3", "depends on")  # TEST-3 is dependent by TEST-4
    served.add_link("TEST-5", "TEST-6", "depends on")  # desired: relates (a change)
    served.add_link("TEST-9", "TEST-10", "relates")  # not desired
    served.add_link("TEST-11", "OUT-1", "relates")  # leaves the scope
    return served


def test_sync_prints_the_plan_and_sends_no_write(
    drifted: FakeTracker, run: Run, tmp_path: Path
) -> None:
    desired = write(tmp_path, "desired.csv", DESIRED)
    drifted.stats.reset()
    code, out, err = run("sync", desired, "--queue", "TEST", "--prune")
    assert code == 3, out + err
    lines = out.splitlines()
    assert "~ TEST-5 depends on TEST-6  =>  TEST-5 relates TEST-6" in lines
    assert "- TEST-9 relates TEST-10" in lines
    assert "+ TEST-7 depends on TEST-8" in lines
    assert not any("OUT-1" in line for line in lines)
    assert "plan: 2 to create, 2 to delete (1 change), 2 unchanged, 0 invalid, 0 cycles" in lines
    assert writes(drifted) == 0
    # Additive: only the creates (the change is created beside the old link).
    code, out, _ = run("sync", desired, "--queue", "TEST")
    assert code == 3
    assert "plan: 2 to create, 0 to delete, 2 unchanged, 0 invalid, 0 cycles" in out
    assert "+ TEST-5 relates TEST-6" in out.splitlines()
    assert writes(drifted) == 0


def test_sync_apply_converges(drifted: FakeTracker, run: Run, tmp_path: Path) -> None:
    desired = write(tmp_path, "desired.csv", DESIRED)
    report = tmp_path / "report.jsonl"
    code, out, err = run(
        "sync", desired, "--queue", "TEST", "--prune", "--apply", "--report", str(report)
    )
    assert code == 0, out + err
    assert links_of(drifted) == canon(
        ("TEST-1", "TEST-2", "depends on"),
        ("TEST-4", "TEST-3", "depends on"),
        ("TEST-5", "TEST-6", "relates"),
        ("TEST-7", "TEST-8", "depends on"),
        ("TEST-11", "OUT-1", "relates"),
    )
    assert len(report.read_text().splitlines()) == 4
    drifted.stats.reset()
    code, out, _ = run("sync", desired, "--queue", "TEST", "--prune")
    assert code == 0
    assert "plan: 0 to create, 0 to delete, 4 unchanged" in out
    assert writes(drifted) == 0


def test_sync_out_then_apply(drifted: FakeTracker, run: Run, tmp_path: Path) -> None:
    desired = write(tmp_path, "desired.csv", DESIRED)
    plan_path = tmp_path / "plan.json"
    code, out, _ = run("sync", desired, "--queue", "TEST", "--prune", "--out", str(plan_path))
    assert code == 3
    assert f"plan written to {plan_path}" in out
    assert writes(drifted) == 0
    plan = Plan.read_json(plan_path)
    assert (len(plan.create), len(plan.delete)) == (2, 2)
    code, out, err = run("apply", str(plan_path))
    assert code == 0, out + err
    assert writes(drifted) == 4
    # Applied again (stale): nothing left to do, nothing fails.
    code, out, _ = run("apply", str(plan_path))
    assert code == 0
    assert "absent" in out
    assert "exists" in out


def test_sync_reports_a_cycle_before_applying(
    served: FakeTracker, run: Run, tmp_path: Path
) -> None:
    served.add_link("TEST-1", "TEST-2", "depends on")
    desired = write(
        tmp_path,
        "desired.jsonl",
        '{"source": "TEST-2", "relationship": "depends on", "target": "TEST-3"}\n'
        '{"source": "TEST-1", "relationship": "is subtask for", "target": "TEST-3"}\n',
    )
    code, out, _ = run("sync", desired, "--queue", "TEST", "--apply")
    assert code == 0
    lines = out.splitlines()
    at = lines.index("1 dependency cycle(s) after the plan (depends on, subtask and epic links;"
                     " A -> B: A waits for B):")  # fmt: skip
    assert lines[at + 1] == "  1. TEST-1 -> TEST-2 -> TEST-3 -> TEST-1"
    assert at < next(i for i, line in enumerate(lines) if line.startswith("applied in"))


def test_a_big_plan_prints_its_first_lines_and_the_path(
    served: FakeTracker, run: Run, tmp_path: Path
) -> None:
    rows = "".join(f"TEST-{i},relates,TEST-{i + 1}\n" for i in range(1, 81))
    desired = write(tmp_path, "desired.csv", "source,relationship,target\n" + rows)
    code, out, _ = run("sync", desired, "--queue", "TEST")
    assert code == 3
    lines = out.splitlines()
    assert sum(line.startswith("+ ") for line in lines) == 50
    (more,) = [line for line in lines if line.startswith("... and 30 more lines")]
    path = more.rsplit(" ", 1)[1]
    try:
        assert len(Plan.read_json(path).create) == 80
    finally:
        Path(path).unlink()
    assert "plan: 80 to create" in out


def test_sync_bad_lines_and_unknown_issues_are_failures(
    served: FakeTracker, run: Run, tmp_path: Path
) -> None:
    desired = write(
        tmp_path,
        "desired.csv",
        "source,relationship,target\nTEST-1,relates,TEST-2\nTEST-1,blocks,TEST-3\n"
        "TEST-1,relates,NOPE-4\n",
    )
    code, out, _ = run("sync", desired, "--queue", "TEST")
    assert code == 1
    assert "line 3: " in out
    assert "unknown relationship" in out
    assert "line 4: issue NOPE-4 was not found" in out
    assert "+ TEST-1 relates TEST-2" in out


def test_sync_prune_apply_with_bad_lines_applies_nothing(
    served: FakeTracker, run: Run, tmp_path: Path
) -> None:
    """A mistyped line must not turn into the deletion of the link it meant."""
    served.add_link("TEST-1", "TEST-2", "depends on")
    served.add_link("TEST-3", "TEST-4", "relates")
    desired = write(
        tmp_path,
        "desired.csv",
        "source,relationship,target\nTEST-1,depend on,TEST-2\nTEST-5,relates,TEST-6\n",
    )
    before = links_of(served)
    code, out, _ = run("sync", desired, "--queue", "TEST", "--prune", "--apply")
    assert code == 1
    assert "line 2: " in out
    assert "not applied" in out
    assert writes(served) == 0
    assert links_of(served) == before
    # Without --prune nothing can be deleted: the good lines are applied.
    code, out, _ = run("sync", desired, "--queue", "TEST", "--apply")
    assert code == 1
    assert links_of(served) == before | canon(("TEST-5", "TEST-6", "relates"))
    # Lines of a relationship --relationships leaves out are reported, not a reason to stop.
    good = write(
        tmp_path,
        "good.csv",
        "source,relationship,target\nTEST-1,depends on,TEST-2\nTEST-7,duplicates,TEST-8\n",
    )
    code, out, _ = run(
        "sync", good, "--queue", "TEST", "--relationships", "relates", "--prune", "--apply"
    )
    assert code == 1
    assert "not managed" in out
    assert "not applied" not in out
    assert links_of(served) == canon(("TEST-1", "TEST-2", "depends on"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--queue", "TEST", "--query", "x"], "not both"),
        (["--queue", "bad queue"], "invalid queue"),
        (["--relationships", "depends on,blocks"], "unknown relationship"),
    ],
)
def test_sync_bad_usage_is_exit_2_and_sends_nothing(
    served: FakeTracker, run: Run, tmp_path: Path, argv: list[str], message: str
) -> None:
    desired = write(tmp_path, "desired.csv", DESIRED)
    code, _, err = run("sync", desired, *argv)
    assert code == 2
    assert message in err
    assert served.stats.total == 0


def test_apply_of_a_file_that_is_not_a_plan_is_exit_2(
    served: FakeTracker, run: Run, tmp_path: Path
) -> None:
    code, _, err = run("apply", write(tmp_path, "plan.json", '{"create": []}'))
    assert code == 2
    assert "not a version-1 tracker-links plan" in err
    code, _, err = run("apply", str(tmp_path / "missing.json"))
    assert code == 2
    assert served.stats.total == 0


def test_sync_and_apply_as_real_subprocesses(
    drifted: FakeTracker, fake_tracker_url: str, tmp_path: Path
) -> None:
    desired = write(tmp_path, "desired.csv", DESIRED)
    plan_path = str(tmp_path / "plan.json")
    env = cli_env(fake_tracker_url)

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tracker_links", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )

    proc = cli("sync", desired, "--queue", "TEST", "--prune", "--out", plan_path)
    assert proc.returncode == 3, proc.stderr
    assert "~ TEST-5 depends on TEST-6  =>  TEST-5 relates TEST-6" in proc.stdout
    proc = cli("apply", plan_path)
    assert proc.returncode == 0, proc.stderr
    proc = cli("sync", desired, "--queue", "TEST", "--prune")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for output in (proc.stdout, proc.stderr):
        assert TOKEN not in output
