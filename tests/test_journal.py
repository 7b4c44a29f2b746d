"""The journal: persistence, identity check on resume, one run at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator import workflow
from orchestrator.errors import ConfigError
from orchestrator.journal import Journal
from orchestrator.model import (
    Action,
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    Outcome,
    ScanStats,
    ScanType,
    Status,
    Target,
    TargetResult,
)

IDENTITY = {"fleet_id": "abc", "shard": "1/1", "policy": "report-only", "dry_run": "True"}
T1 = Target("web01", "alice", ScanType.HOME)


def result() -> TargetResult:
    now = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    return TargetResult(
        T1,
        Status.INFECTED,
        ScanStats(1764295200, 3, 30, 3),
        (InfectedFile("/home/alice/x", "V", Action.QUARANTINE, Outcome.QUARANTINED, None),),
        now,
        now,
        1.5,
        7,
        ErrorInfo(ErrorKind.POLICY_LIMIT, "m"),
    )


def test_state_and_result_survive_reopening_with_resume(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    assert journal.open(IDENTITY, resume=True) == {}
    journal.start({**IDENTITY, "run_id": "r1"})
    state = workflow.State(
        target=T1, cfg=workflow.WorkflowConfig(), phase=workflow.Phase.SCANNING, baseline=5
    )
    journal.save_state(state)
    journal.save_result(result())
    journal.save_server_targets("web01", (T1,))
    journal.close()

    again = Journal(path)
    meta = again.open(IDENTITY, resume=True)
    assert meta["run_id"] == "r1"
    assert {k: meta[k] for k in IDENTITY} == IDENTITY, "resumed with the run's own identity"
    assert again.state(T1) == state
    assert again.result(T1) == result()
    assert again.server_targets("web01") == (T1,)
    again.close()


def test_without_resume_or_after_a_finished_run_the_journal_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.open(IDENTITY, resume=False)
    journal.start({"run_id": "r1"})
    journal.save_result(result())
    journal.finish()
    journal.close()
    again = Journal(path)
    assert again.open(IDENTITY, resume=True) == {}  # finished: nothing to resume
    assert again.result(T1) is None
    again.close()


def test_resume_refuses_a_journal_of_another_run(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.open(IDENTITY, resume=False)
    journal.start(IDENTITY)
    journal.close()
    with pytest.raises(ConfigError, match=r"another run .*shard"):
        Journal(path).open({**IDENTITY, "shard": "2/4"}, resume=True)


def test_two_runs_cannot_share_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    first = Journal(path)
    first.open(IDENTITY, resume=False)
    with pytest.raises(ConfigError, match="in use by another clamfleet run"):
        Journal(path).open(IDENTITY, resume=False)
    first.close()
    second = Journal(path)
    second.open(IDENTITY, resume=False)  # free again once the first closed
    second.close()


def test_a_file_that_is_not_a_journal_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    path.write_text("not sqlite at all " * 100)
    with pytest.raises(ConfigError, match="not a clamfleet journal"):
        Journal(path).open(IDENTITY, resume=True)
