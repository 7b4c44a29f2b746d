"""`clamfleet run --journal` on a disk that fills up: the error says so in the system's words,
never "not a clamfleet journal" nor an internal error, and the identical command with
`--resume` afterwards goes on (or says there is nothing to go on with), never "another run".

The disk is simulated by FillingDisk (tests/support.py): SQLite's writes fail with its own
full-disk error (SQLITE_FULL) after `room` of them, in-process, so that the run's real code
path (commands.run, the runner's journal writes) meets it at every point in turn. The journal
tests (tests/engine/test_journal.py) also fill a real tmpfs where one can be mounted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.simulator import generate_fleet
from tests.support import FillingDisk, Outcome, Sim

FULL = "cannot write the journal: No space left on device"


# room for 3 writes: WAL, the new run's tables, its start; then the run's first writes
@pytest.mark.parametrize(("room", "code"), [(0, 3), (1, 3), (2, 3), (3, 70), (6, 70)])
def test_after_the_journal_disk_filled_up_the_identical_command_resumes(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    room: int,
    code: int,
) -> None:
    spec = generate_fleet(servers=1, accounts=3, infected_ratio=0.0, seed=12, scan_seconds=0.2)
    sim = simulate(spec)
    journal = tmp_path / "journal.sqlite"
    command = ("run", sim.inventory, "--journal", journal)
    with monkeypatch.context() as full:
        full.setattr(sqlite3, "connect", FillingDisk(room))
        first = cli(*command)
    assert first.code == code
    assert FULL in first.stderr, first.stderr
    for wrong in ("not a clamfleet journal", "internal error", "differ"):
        assert wrong not in first.stderr
    again = cli(*command, "--resume")
    assert "differ" not in again.stderr
    if first.code == 3:  # refused before the first request: nothing scanned, no run began
        assert sim.fleet.calls("sim01", function="start_scan") == 0
        assert again.code == 3 and "holds no run to resume" in again.stderr, again.stderr
        return
    # the disk filled up mid-run: no verdict, the partial report, and how to go on
    assert first.code == 70
    assert "rerun the same command with --resume" in first.stderr
    interrupted = [t for t in first.report["targets"] if t["status"] == "failed"]
    assert interrupted and all(t["error"]["kind"] == "interrupted" for t in interrupted)
    assert again.code == 0, again.stderr
    assert again.report["run"]["id"] == first.report["run"]["id"]
    assert {t["status"] for t in again.report["targets"]} == {"clean"}
