"""A crash is never a verdict: an internal error exits 70 in one line, after writing what it has;
a report folder or journal folder that cannot be written is refused before the first request."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.engine import runner
from orchestrator.model import TargetResult
from orchestrator.simulator import generate_fleet
from tests.support import Outcome, Sim

HINT = "; rerun with --log-level debug for the traceback"


def crash_after(monkeypatch: pytest.MonkeyPatch, n: int, message: str) -> list[TargetResult]:
    """A bug in the run's own code once `n` targets are recorded (they stay recorded)."""
    original = runner.FleetRun.record
    recorded: list[TargetResult] = []

    def record(run: runner.FleetRun, result: TargetResult) -> None:
        original(run, result)
        recorded.append(result)
        if len(recorded) == n:
            raise RuntimeError(message)

    monkeypatch.setattr(runner.FleetRun, "record", record)
    return recorded


SPEC = generate_fleet(servers=2, accounts=4, infected_ratio=0.5, seed=71, scan_seconds=0.3)


def small_fleet(simulate: Callable[..., Sim]) -> Sim:
    return simulate(SPEC, server_keys={"max_concurrent_scans": 2})


def requests_made(sim: Sim) -> int:
    return sum(sim.fleet.calls(s.name) for s in SPEC.servers)


def test_internal_error_exits_70_with_one_line_and_writes_the_partial_report(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = small_fleet(simulate)
    recorded = crash_after(monkeypatch, 3, "boom in the run")
    result = cli("run", sim.inventory, "--log-level", "warning")
    assert result.code == 70, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line == f"clamfleet: internal error: RuntimeError: boom in the run{HINT}"
    # The partial report: every target; those done before the crash with their verdicts, the
    # ones it cut short as interrupted.
    targets = result.targets()
    assert len(targets) == sum(len(s.accounts) for s in SPEC.servers)
    done = {(r.target.server, r.target.account, str(r.target.scan_type)) for r in recorded[:3]}
    for key in done:
        assert targets[key]["status"] in ("clean", "infected"), targets[key]
    cut = [t for k, t in targets.items() if k not in done and t["status"] == "failed"]
    assert cut and all(t["error"]["kind"] == "interrupted" for t in cut)
    assert "report:" not in result.stdout  # no summary that reads like a finished run


def test_internal_error_traceback_only_at_debug_level_and_without_secrets(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = small_fleet(simulate)
    token = next(v for v in sim.env.values() if len(v) >= 16)
    recorded = crash_after(monkeypatch, 1, f"bad state near {token}")
    quiet = cli("run", sim.inventory)
    assert quiet.code == 70
    assert "Traceback" not in quiet.stderr
    assert token not in quiet.stderr
    assert f"internal error: RuntimeError: bad state near ********{HINT}" in quiet.stderr

    recorded.clear()  # the second run crashes alike
    debug = cli("run", sim.inventory, "--log-level", "debug", "--log-format", "json")
    assert debug.code == 70
    events = [json.loads(line) for line in debug.stderr.splitlines() if line.startswith("{")]
    (crash,) = [e for e in events if e["event"] == "internal_error"]
    (error,) = crash["exception"]
    assert error["exc_type"] == "RuntimeError"
    assert any(frame["name"] == "record" for frame in error["frames"])
    assert all("locals" not in frame for frame in error["frames"])  # a frame's token
    assert token not in debug.stderr


def test_out_below_a_plain_file_is_refused_before_any_request(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = small_fleet(simulate)
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    result = cli("run", sim.inventory, "--out", afile / "sub", out=afile / "sub")
    assert result.code == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("clamfleet: error: --out: ") and str(afile / "sub") in line
    assert requests_made(sim) == 0
    assert afile.read_text() == "not a directory\n"


def test_out_is_created_when_missing(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = small_fleet(simulate)
    out = tmp_path / "new" / "nested"
    result = cli("run", sim.inventory, "--out", out, out=out)
    assert result.code in (0, 1, 2)
    assert result.report["summary"]["targets"] > 0


def test_journal_in_a_missing_folder_is_refused_before_any_request(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = small_fleet(simulate)
    journal = tmp_path / "no-such-dir" / "journal.sqlite"
    result = cli("run", sim.inventory, "--journal", journal)
    assert result.code == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("clamfleet: error: --journal: ")
    assert str(journal.parent) in line
    assert requests_made(sim) == 0
    assert not journal.parent.exists()


def test_journal_that_is_a_directory_is_refused_before_any_request(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = small_fleet(simulate)
    result = cli("run", sim.inventory, "--journal", tmp_path)
    assert result.code == 3
    (line,) = result.stderr.strip().splitlines()
    assert line == f"clamfleet: error: --journal: {tmp_path}: not a file"
    assert requests_made(sim) == 0


def test_merge_out_below_a_plain_file_exits_3_not_70(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = small_fleet(simulate)
    first = cli("run", sim.inventory)
    afile = tmp_path / "afile"
    afile.write_text("")
    merged = cli("merge", first.out / "report.json", "--out", afile / "m", out=afile / "m")
    assert merged.code == 3
    assert str(afile / "m") in merged.stderr and "Traceback" not in merged.stderr
