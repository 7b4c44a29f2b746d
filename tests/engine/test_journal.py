"""The journal: persistence, what --resume refuses, its format version, one run at a time."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator import workflow
from orchestrator.engine.journal import FORMAT, Journal
from orchestrator.errors import ConfigError
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
from orchestrator.report.encode import target_to_dict
from orchestrator.report.model import normalize_result

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
    assert journal.open(IDENTITY, resume=False) == {}
    journal.start({**IDENTITY, "run_id": "r1"})
    state = workflow.State(
        target=T1,
        cfg=workflow.WorkflowConfig(),
        phase=workflow.Phase.SCANNING,
        start=workflow.StartAttempts(baseline=5),
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


def finished_journal(path: Path) -> None:
    journal = Journal(path)
    journal.open(IDENTITY, resume=False)
    journal.start({**IDENTITY, "run_id": "r1", "started_at": "2026-12-04T02:00:00+00:00"})
    journal.save_result(result())
    journal.finish()
    journal.close()


def test_without_resume_the_journal_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    finished_journal(path)
    again = Journal(path)
    assert again.open(IDENTITY, resume=False) == {}
    assert again.result(T1) is None
    again.close()


def test_resume_refuses_a_journal_whose_run_already_finished(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    finished_journal(path)
    with pytest.raises(ConfigError, match=r"run r1 .*already finished: nothing to resume"):
        Journal(path).open(IDENTITY, resume=True)
    kept = Journal(path)  # the refusal released the lock and left the journal as it was
    kept.open(IDENTITY, resume=False)
    kept.close()


def test_resume_refuses_a_missing_journal_without_creating_one(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with pytest.raises(ConfigError, match="no journal to resume"):
        Journal(path).open(IDENTITY, resume=True)
    assert not path.exists()


def test_resume_refuses_a_journal_that_holds_no_run(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    sqlite3.connect(path).close()  # an empty database, e.g. a run that died before starting
    with pytest.raises(ConfigError, match="holds no run to resume"):
        Journal(path).open(IDENTITY, resume=True)


def interrupted_journal(path: Path) -> None:
    journal = Journal(path)
    journal.open(IDENTITY, resume=False)
    journal.start({**IDENTITY, "run_id": "r1"})
    journal.save_result(result())
    journal.close()


def set_format(path: Path, version: int) -> None:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()


def test_resume_refuses_a_journal_of_another_format_and_names_both(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    interrupted_journal(path)
    set_format(path, 99)
    with pytest.raises(ConfigError, match=rf"journal format 99, this one reads format {FORMAT}"):
        Journal(path).open(IDENTITY, resume=True)


def test_resume_refuses_a_format_2_journal_which_cannot_say_whether_a_disinfection_left(
    tmp_path: Path,
) -> None:
    """Format 2 saved DISINFECTING before disinfect_files without saying whether the POST then
    left; read as this format it would look "never sent" and be sent a second time."""
    assert FORMAT >= 3
    path = tmp_path / "j.sqlite"
    interrupted_journal(path)
    set_format(path, 2)
    with pytest.raises(ConfigError, match=rf"journal format 2, this one reads format {FORMAT}"):
        Journal(path).open(IDENTITY, resume=True)


def test_a_new_run_rebuilds_a_journal_of_another_format(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    interrupted_journal(path)
    set_format(path, 99)
    fresh = Journal(path)
    assert fresh.open(IDENTITY, resume=False) == {}
    fresh.start({**IDENTITY, "run_id": "r2"})
    fresh.close()
    again = Journal(path)
    assert again.open(IDENTITY, resume=True)["run_id"] == "r2"
    again.close()


def test_a_journal_from_before_the_format_was_recorded_is_read_as_format_1(tmp_path: Path) -> None:
    """Format 1 saved states flat and results in a shape of their own: this version cannot
    read them, so such a journal is refused like any other format, not half-read."""
    path = tmp_path / "j.sqlite"
    interrupted_journal(path)
    set_format(path, 0)
    with pytest.raises(ConfigError, match=rf"journal format 1, this one reads format {FORMAT}"):
        Journal(path).open(IDENTITY, resume=True)


def test_resume_refuses_a_saved_state_this_version_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    interrupted_journal(path)
    db = sqlite3.connect(path)
    db.execute("UPDATE targets SET state = ?", ('{"phase": "scanning"}',))
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="entry for web01/alice/home cannot be read"):
        Journal(path).open(IDENTITY, resume=True)


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


def test_a_saved_result_reads_back_as_the_report_shows_it(tmp_path: Path) -> None:
    """A resumed run reports a target finished before the crash exactly as an uninterrupted run
    would: the journal keeps report.json's own target object."""
    start = datetime(2026, 11, 28, 2, 0, 0, 700_000, tzinfo=UTC)
    precise = replace(result(), started_at=start, finished_at=start, duration_s=1.2345)
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.open(IDENTITY, resume=False)
    journal.start({**IDENTITY, "run_id": "r1"})
    journal.save_result(precise)
    journal.close()
    again = Journal(path)
    again.open(IDENTITY, resume=True)
    restored = again.result(T1)
    again.close()
    assert restored == normalize_result(precise)
    assert restored is not None and target_to_dict(restored) == target_to_dict(precise)
