"""The journal: persistence, what --resume refuses, its format version, one run at a time, and
a full or read-only disk said in the system's words."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator import workflow
from orchestrator.engine.journal import FORMAT, Journal
from orchestrator.errors import ConfigError, JournalError
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
from tests.support import FillingDisk

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


def test_a_host_that_answered_is_remembered_for_resume_and_forgotten_by_a_new_run(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.open(IDENTITY, resume=False)
    journal.start({**IDENTITY, "run_id": "r1"})
    journal.save_host_answered("web01.example.com:2083")
    journal.close()

    again = Journal(path)
    again.open(IDENTITY, resume=True)
    assert again.answered_before((T1,), "web01.example.com:2083")
    assert not again.answered_before((T1,), "web02.example.com:2083")
    again.close()

    fresh = Journal(path)
    fresh.open(IDENTITY, resume=False)
    assert not fresh.answered_before((T1,), "web01.example.com:2083")
    fresh.close()


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
    journal.start({**IDENTITY, "run_id": "r1"})
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


# ---------------------------------------------------------------------------------------------
# a full or read-only disk


def new_run(path: Path) -> None:
    """What `clamfleet run --journal` does first: open afresh, then record the run."""
    journal = Journal(path)
    try:
        journal.open(IDENTITY, resume=False)
        journal.start({**IDENTITY, "run_id": "r1", "started_at": "2026-12-04T02:00:00+00:00"})
    finally:
        journal.close()


def new_run_refused(path: Path) -> str | None:
    """new_run's refusal (None: the run started)."""
    try:
        new_run(path)
    except ConfigError as exc:
        return str(exc)
    return None


def resume_after(path: Path) -> str:
    """What `--resume` of the same command says once there is room again."""
    journal = Journal(path)
    try:
        meta = journal.open(IDENTITY, resume=True)
    except ConfigError as exc:
        return str(exc)
    finally:
        journal.close()
    assert {k: meta[k] for k in IDENTITY} == IDENTITY
    return f"resumed {meta['run_id']}"


@pytest.mark.parametrize("room", range(16))
def test_a_disk_filling_up_while_a_run_starts_is_named_and_never_read_as_another_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, room: int
) -> None:
    """Simulated: FillingDisk fails SQLite's writes after `room` of them with its full-disk
    error (no tiny filesystem is mounted here; see the tmpfs test below for a real one).

    A run's start is one write: the identity and run id all or nothing. Key by key, a disk
    that filled between `policy` and `dry_run` left a journal that `--resume` of the identical
    command called "another run (dry_run differ)"."""
    path = tmp_path / "j.sqlite"
    with monkeypatch.context() as full:
        full.setattr(sqlite3, "connect", FillingDisk(room))
        refused = new_run_refused(path)
    assert refused in (
        None,
        f"--journal: {path}: cannot write the journal: No space left on device",
    )
    said = resume_after(path)  # room again
    if refused is None:
        assert said == "resumed r1"
    else:
        assert "holds no run to resume; run without --resume" in said, said


def test_a_write_that_fails_mid_run_says_why_in_the_systems_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.sqlite"
    with monkeypatch.context() as full:
        # room for the switch to WAL, the new tables and the run's start
        full.setattr(sqlite3, "connect", FillingDisk(3))
        journal = Journal(path)
        journal.open(IDENTITY, resume=False)
        journal.start({**IDENTITY, "run_id": "r1", "started_at": "2026-12-04T02:00:00+00:00"})
        with pytest.raises(JournalError) as caught:
            journal.save_result(result())
        assert str(caught.value) == f"{path}: cannot write the journal: No space left on device"
        with pytest.raises(JournalError):
            journal.finish()
        journal.close()
    assert resume_after(path) == "resumed r1"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs (root only; skipped where it cannot be mounted)."""
    mount = shutil.which("mount")
    where = tmp_path / "tiny"
    where.mkdir()
    if mount is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace')}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill `disk` up to `leave` free bytes; remove the returned file to make room again."""
    stats = os.statvfs(disk)
    filler = disk / "filler"
    with filler.open("wb") as fh, contextlib.suppress(OSError):
        fh.write(b"x" * max(stats.f_bavail * stats.f_frsize - leave, 0))
    return filler


def test_on_a_real_full_disk_the_error_names_it_and_the_same_command_resumes_afterwards(
    tiny_disk: Path,
) -> None:
    """A real ENOSPC: a tmpfs filled to within `leave` bytes, for every amount of room from
    none to enough, then emptied again before `--resume`."""
    outcomes = set()
    for leave in range(0, 200 * 1024, 4096):
        for stale in tiny_disk.iterdir():
            stale.unlink()
        path = tiny_disk / "j.sqlite"
        filler = fill(tiny_disk, leave)
        refused = new_run_refused(path)
        assert refused is None or refused.endswith(": No space left on device"), refused
        filler.unlink()
        said = resume_after(path)
        assert said == "resumed r1" if refused is None else "holds no run to resume" in said, said
        outcomes.add(refused is None)
    assert outcomes == {True, False}, "the disk was too full, and then it was not"


def test_a_read_only_disk_is_named(tiny_disk: Path) -> None:
    path = tiny_disk / "j.sqlite"
    new_run(path)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    with pytest.raises(ConfigError, match=r"cannot write the journal\S* lock file: Read-only file"):
        new_run(path)
