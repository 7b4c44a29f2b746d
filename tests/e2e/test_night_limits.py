"""The limits of a night: a load that never falls (load.patience), the run's deadline
(--max-duration), cron's `timeout(1)`, a report that cannot be written, and the window's
record in the log and the report."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.report import writers
from orchestrator.simulator import generate_fleet
from orchestrator.simulator.load import LoadSpec
from tests.support import Outcome, Sim


def events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def busy_fleet(accounts: int, background: float, cores: int = 4) -> Any:
    """One server whose own load (`background`) is constant; 60 simulated s per real s."""
    spec = generate_fleet(servers=1, accounts=accounts, infected_ratio=0.0, seed=3, scan_seconds=1)
    server = replace(spec.servers[0], load=LoadSpec(cores=cores, background=background))
    return replace(spec, servers=(server,), time_scale=60.0)


# -- load.max under the server's own load -----------------------------------------------------


def test_a_load_that_never_falls_under_max_ends_the_run_after_patience_naming_the_load(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    # a shop server at 3.5 on 4 cores, max set to 75 %: nothing may start, and nothing does
    # (not even one scan before the first reading); after patience the targets are deferred
    sim = simulate(
        busy_fleet(accounts=3, background=3.5),
        server_keys={"load": {"max": 3, "check_interval": 0.1, "patience": 0.6}},
    )
    result = cli("run", sim.inventory, "--log-format", "json")
    assert result.code == 2, result.stderr
    targets = result.report["targets"]
    assert len(targets) == 3
    for t in targets:
        assert t["status"] == "skipped" and t["error"]["kind"] == "deferred"
        assert t["error"]["message"].startswith("load 3.5 over max 3 since "), t["error"]
        assert "window" not in t["error"]["message"]
    assert sim.fleet.calls("sim01", function="start_scan") == 0
    assert sim.fleet.calls("sim01", function="systemloadavg") >= 2
    finished = [e for e in events(result.stderr) if e["event"] == "run.finished"]
    assert finished and finished[0]["exit_code"] == 2


def test_targets_the_load_kept_back_until_the_window_closed_are_named_by_the_load(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = simulate(
        busy_fleet(accounts=2, background=3.5),
        server_keys={"load": {"max": 3, "check_interval": 0.1}},  # patience: an hour
    )
    result = cli(
        "run", sim.inventory, "--finish-by", "+3s"
    )  # a few readings first, even on a busy machine
    assert result.code == 2, result.stderr
    for t in result.report["targets"]:
        assert t["error"]["kind"] == "deferred"
        message = t["error"]["message"]
        assert message.startswith("load 3.5 over max 3 since "), message
        assert " until the window closed at " in message
    assert sim.fleet.calls("sim01", function="start_scan") == 0


def test_a_server_whose_load_cannot_be_read_runs_one_scan_at_a_time_never_its_cap(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = busy_fleet(accounts=4, background=0.0).with_faults("sim01", loadavg_unavailable=True)
    sim = simulate(
        spec, server_keys={"max_concurrent_scans": 4, "load": {"max": 3, "check_interval": 0.1}}
    )
    result = cli("run", sim.inventory)
    assert result.code == 0, result.stderr
    pacing = result.report["run"]["pacing"]["sim01"]
    assert pacing["readings"] == 0 and pacing["failed_readings"] >= 1
    assert {limit for _, _, limit, _ in pacing["history"]} == {1}
    assert max(running for _, running, _, _ in pacing["history"]) <= 1
    assert result.stderr.count("load.unreadable") == 1


# -- the run's deadline ------------------------------------------------------------------------


def long_scans(simulate: Callable[..., Sim], accounts: int = 3) -> Sim:
    spec = generate_fleet(servers=1, accounts=accounts, infected_ratio=0.0, seed=4, scan_seconds=60)
    return simulate(spec, server_keys={"max_concurrent_scans": 1})


def test_max_duration_stops_new_scans_and_reports_the_rest_interrupted(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = long_scans(simulate)
    result = cli("run", sim.inventory, "--max-duration", "1.5", "--log-format", "json")
    assert result.code == 2, result.stderr
    targets = result.report["targets"]
    assert [t["error"]["kind"] for t in targets] == ["interrupted"] * 3
    messages = sorted(t["error"]["message"] for t in targets)
    assert messages[0].startswith("max_duration 1.5s reached: stopped following it while")
    assert messages[1:] == ["not started: max_duration 1.5s reached"] * 2
    assert sim.fleet.calls("sim01", function="start_scan") == 1
    names = [e["event"] for e in events(result.stderr)]
    assert "run.deadline" in names and "run.finished" in names
    assert "max_duration 1.5s reached" in result.stdout


def test_settings_max_duration_is_the_same_deadline(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.0, seed=4, scan_seconds=60)
    sim = simulate(spec, settings={"max_duration": "1s"}, server_keys={"max_concurrent_scans": 1})
    result = cli("run", sim.inventory)
    assert result.code == 2, result.stderr
    assert {t["error"]["kind"] for t in result.report["targets"]} == {"interrupted"}


def test_a_run_stopped_by_max_duration_can_be_resumed_from_its_journal(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.0, seed=4, scan_seconds=2)
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    journal = tmp_path / "night.db"
    first = cli("run", sim.inventory, "--journal", journal, "--max-duration", "0.5")
    assert first.code == 2
    resumed = cli("run", sim.inventory, "--journal", journal, "--resume")
    assert resumed.code == 0, resumed.stderr
    assert {t["status"] for t in resumed.report["targets"]} == {"clean"}
    # the scan running at the deadline was re-attached to, not started again
    assert sim.fleet.calls("sim01", function="start_scan") == 2


def test_timeout_1_on_the_process_group_still_leaves_a_complete_partial_report(
    simulate: Callable[..., Sim], tmp_path: Path
) -> None:
    # coreutils timeout sends SIGTERM to clamfleet, then to its whole process group: the second
    # one arrives while the partial report is being written, and must not stop it
    sim = long_scans(simulate, accounts=3)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "orchestrator", "run", str(sim.inventory), "--out", str(out)]
    proc = subprocess.run(
        ["timeout", "4", *argv, "--no-progress", "--log-format", "json"],
        env={**os.environ, **sim.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 124, proc.stderr  # timeout's own code: it did time out
    report = json.loads((out / "report.json").read_text())
    assert len(report["targets"]) == 3
    assert {t["error"]["kind"] for t in report["targets"]} == {"interrupted"}
    assert (out / "targets.csv").is_file() and (out / "report.html").is_file()
    names = [e["event"] for e in events(proc.stderr)]
    assert "run.interrupted" in names and "run.finished" in names
    assert "partial report written" in proc.stdout


#: clamfleet, with two SIGTERMs sent to itself while it writes its report (its own process).
SIGTERMS_WHILE_WRITING = """
import os, signal, sys
from orchestrator.cli import execute, main
written = execute.write_report
def write(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)
    return written(*args, **kwargs)
execute.write_report = write
sys.exit(main(sys.argv[1:]))
"""


def test_sigterms_while_the_report_is_written_do_not_stop_it(
    simulate: Callable[..., Sim], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.0, seed=6, scan_seconds=0.2)
    sim = simulate(spec)
    out = tmp_path / "out"
    argv = ["run", str(sim.inventory), "--out", str(out), "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-c", SIGTERMS_WHILE_WRITING, *argv],
        env={**os.environ, **sim.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert {t["status"] for t in report["targets"]} == {"clean"}  # the whole run, not cut
    assert (out / "report.html").is_file()


# -- a report that cannot be written -----------------------------------------------------------


def disk_full_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Writing the report file `name` fails as on a full disk (the others would work)."""
    original = writers._stage

    def stage(directory: Path, file: str, text: str) -> str:
        if file == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(directory, file, text)

    monkeypatch.setattr(writers, "_stage", stage)


def test_a_report_write_failure_still_prints_the_summary_and_logs_run_finished_70(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = generate_fleet(servers=1, accounts=3, infected_ratio=0.0, seed=6, scan_seconds=0.2)
    sim = simulate(spec)
    disk_full_at(monkeypatch, "report.html")
    result = cli("run", sim.inventory, "--log-format", "json")
    assert result.code == 70
    assert "targets" in result.stdout and "clean" in result.stdout  # the summary table
    assert "report NOT written:" in result.stdout and "report.html" in result.stdout
    logged = {e["event"]: e for e in events(result.stderr)}
    assert logged["run.finished"]["exit_code"] == 70
    assert logged["run.finished"]["report_not_written"].endswith("report.html")
    assert logged["report.not_written"]["file"].endswith("report.html")
    assert "clamfleet: internal error: ReportWriteError" in result.stderr
    assert not (result.out / "report.json").exists()  # all or nothing: no half report


def test_resume_rebuilds_a_report_that_could_not_be_written_without_scanning_again(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    spec = generate_fleet(servers=2, accounts=2, infected_ratio=0.5, seed=6, scan_seconds=0.2)
    sim = simulate(spec)
    journal, out = tmp_path / "night.db", tmp_path / "report"
    with monkeypatch.context() as full:
        disk_full_at(full, "targets.csv")
        failed = cli("run", sim.inventory, "--journal", journal, "--out", out, out=out)
    assert failed.code == 70
    assert "--resume" in failed.stdout
    requests = sum(sim.fleet.calls(s.name) for s in spec.servers)
    resumed = cli("run", sim.inventory, "--journal", journal, "--resume", "--out", out, out=out)
    assert resumed.code == 1, resumed.stderr
    assert sum(sim.fleet.calls(s.name) for s in spec.servers) == requests  # nothing re-sent
    assert len(resumed.report["targets"]) == 4
    assert {t["status"] for t in resumed.report["targets"]} <= {"clean", "infected"}


# -- the window, visible ----------------------------------------------------------------------


def test_the_window_is_in_run_started_the_report_and_its_html_header(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.0, seed=6, scan_seconds=0.2)
    sim = simulate(spec)
    result = cli(
        "run", sim.inventory, "--finish-by", "+2h", "--log-format", "json", "--format", "html"
    )
    assert result.code == 0, result.stderr
    window = result.report["run"]["window"]
    assert window["timezone"] == "local" and window["source"] == "--finish-by"
    end = datetime.fromisoformat(window["end"])
    started = datetime.fromisoformat(result.report["run"]["started_at"].replace("Z", "+00:00"))
    assert end.tzinfo is not None and 7190 <= (end - started).total_seconds() <= 7210
    started_event = next(e for e in events(result.stderr) if e["event"] == "run.started")
    assert datetime.fromisoformat(started_event["window_end"]) == end
    assert started_event["window_source"] == "--finish-by"
    assert "run.window_far" not in result.stderr
    html = (result.out / "report.html").read_text()
    assert f"no new scan after {end:%H:%M} local" in html


def test_a_window_ending_more_than_16_hours_after_the_start_is_a_warning(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=1, infected_ratio=0.0, seed=6, scan_seconds=0.2)
    sim = simulate(spec)
    result = cli("run", sim.inventory, "--finish-by", "+20h", "--log-format", "json")
    assert result.code == 0, result.stderr
    (far,) = [e for e in events(result.stderr) if e["event"] == "run.window_far"]
    assert far["level"] == "warning" and far["ahead"] == "20h"


def test_a_run_without_a_window_records_none(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=1, infected_ratio=0.0, seed=6, scan_seconds=0.2)
    sim = simulate(spec)
    result = cli("run", sim.inventory)
    assert result.code == 0
    assert "window" not in result.report["run"]
