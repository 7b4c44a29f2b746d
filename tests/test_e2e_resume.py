"""kill -9 and --resume; SIGTERM and the partial report (real CLI processes)."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.simulator import SimulatorThread, generate_fleet

from .conftest import FAST_SERVER, FAST_SETTINGS, Sim, comparable, start_cli

SPEC = {"servers": 2, "accounts": 4, "infected_ratio": 0.5, "seed": 41, "scan_seconds": 1.2}


def journal_counts(path: Path) -> tuple[int, int]:
    """(finished targets, targets with a state) as the journal says right now."""
    if not path.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            done = db.execute("SELECT count(*) FROM targets WHERE result IS NOT NULL").fetchone()[0]
            started = db.execute("SELECT count(*) FROM targets WHERE state IS NOT NULL").fetchone()[
                0
            ]
    except sqlite3.Error:
        return 0, 0
    return done, started


def test_kill_9_then_resume_gives_the_uninterrupted_report_without_restarting_scans(
    simulate: Callable[..., Sim], tmp_path: Path
) -> None:
    spec = generate_fleet(**SPEC)  # type: ignore[arg-type]
    sim = simulate(spec, server_keys={"max_concurrent_scans": 2})
    journal = tmp_path / "journal.sqlite"
    proc = start_cli(
        ["run", sim.inventory, "--journal", journal, "--out", tmp_path / "a", "--no-progress"],
        sim.env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill once some targets are done and others in flight
        done, started = journal_counts(journal)
        if done >= 1 and started > done:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert not (tmp_path / "a" / "report.json").exists()

    resumed = start_cli(
        [
            "run",
            sim.inventory,
            "--journal",
            journal,
            "--resume",
            "--out",
            tmp_path / "a",
            "--no-progress",
        ],
        sim.env,
    )
    _out, err = resumed.communicate(timeout=60)
    assert resumed.returncode in (0, 1), err
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    for server in spec.servers:
        for account in server.accounts:
            assert sim.fleet.calls(server.name, function="start_scan", account=account.user) == 1, (
                "a scan running at the kill is re-attached, never started again"
            )
    # the resumed process is the same run to the servers: one run id, the report's
    runs = {r.run for server in spec.servers for r in sim.fleet.request_log(server.name)}
    assert runs == {report["run"]["id"]}

    with SimulatorThread(spec) as fresh:  # the same fleet, scanned without interruption
        inventory = tmp_path / "fresh.yaml"
        env = fresh.write_inventory(
            inventory, auth="whm", settings=FAST_SETTINGS, extra_server_keys=FAST_SERVER
        )
        plain = start_cli(["run", inventory, "--out", tmp_path / "b", "--no-progress"], env)
        plain.communicate(timeout=60)
    expected = json.loads((tmp_path / "b" / "report.json").read_text())
    assert comparable(report) == comparable(expected)
    assert report["summary"]["exit_code"] == expected["summary"]["exit_code"] == resumed.returncode


def test_sigterm_writes_a_partial_report_with_interrupted_targets(
    simulate: Callable[..., Sim], tmp_path: Path
) -> None:
    spec = generate_fleet(**{**SPEC, "scan_seconds": 4.0})  # type: ignore[arg-type]
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    proc = start_cli(["run", sim.inventory, "--out", tmp_path / "out", "--no-progress"], sim.env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sim.fleet.calls("sim01", function="start_scan") == 0:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode in (1, 2), err
    assert "Traceback" not in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    kinds = [(t["error"] or {}).get("kind") for t in report["targets"]]
    assert len(report["targets"]) == sum(len(s.accounts) for s in spec.servers)
    assert "interrupted" in kinds
    assert all(t["status"] in ("clean", "infected", "failed", "skipped") for t in report["targets"])
    assert "partial report" in out
