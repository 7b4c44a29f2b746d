"""End to end: load-aware scan concurrency and the finish-by window against the simulator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from orchestrator.config.inventory import load_inventory
from orchestrator.engine.runner import FleetRun, RunOptions
from orchestrator.model import ErrorKind, RunInfo, Status
from orchestrator.report import build_report, write_report
from orchestrator.report.model import exit_code
from orchestrator.simulator import AccountSpec, SimFile, generate_fleet
from orchestrator.simulator.load import LoadSpec
from orchestrator.workflow.pacing import Window
from tests.support import Outcome, Sim, one_server


def loaded_fleet(accounts: int, cores: int, background: float = 0.0) -> Any:
    spec = generate_fleet(servers=1, accounts=accounts, infected_ratio=0.0, seed=3, scan_seconds=1)
    server = replace(spec.servers[0], load=LoadSpec(cores=cores, background=background))
    # 60 simulated seconds per real second: the 1-minute load average follows within a second
    return replace(spec, servers=(server,), time_scale=60.0)


def test_a_server_over_its_load_ceiling_gets_fewer_scans_than_its_cap_and_all_finish(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = simulate(
        loaded_fleet(accounts=8, cores=2),
        server_keys={"max_concurrent_scans": 8, "load": {"max": 1.6, "check_interval": 0.1}},
    )
    result = cli("run", sim.inventory)
    assert result.code == 0
    assert {t["status"] for t in result.report["targets"]} == {"clean"}
    pacing = result.report["run"]["pacing"]["sim01"]
    assert pacing["readings"] > 0
    assert pacing["cap"] == 8
    limits = [limit for _, _, limit, _ in pacing["history"]]
    running = [n for _, n, _, _ in pacing["history"]]
    # two cores and a ceiling of 1.6: never the whole cap of 8 at once
    assert max(limits) < 8
    assert max(running) < 8
    assert sim.fleet.calls("sim01", function="systemloadavg") == pacing["readings"]


def test_a_server_whose_load_cannot_be_read_keeps_its_fixed_cap(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = loaded_fleet(accounts=3, cores=2).with_faults("sim01", loadavg_unavailable=True)
    sim = simulate(
        spec, server_keys={"max_concurrent_scans": 3, "load": {"max": 1.6, "check_interval": 0.1}}
    )
    result = cli("run", sim.inventory)
    assert result.code == 0
    pacing = result.report["run"]["pacing"]["sim01"]
    assert pacing["failed_readings"] >= 1
    assert "load.unreadable" in result.stderr or pacing["failed_readings"] == pacing["readings"]


def test_targets_not_started_when_the_window_closes_are_deferred_and_the_run_is_incomplete(
    simulate: Callable[..., Sim],
) -> None:
    spec = generate_fleet(servers=1, accounts=5, infected_ratio=0.0, seed=9, scan_seconds=1.5)
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    inventory = load_inventory(sim.inventory)
    # closes while the first scan runs: it finishes, nothing else starts
    window = Window(datetime.now(UTC) + timedelta(seconds=0.7))
    fleet = FleetRun(inventory, RunOptions(window=window))
    anyio.run(fleet.run)
    results = fleet.results()
    assert len(results) == 5
    done = [r for r in results if r.status is Status.CLEAN]
    deferred = [r for r in results if r.error is not None and r.error.kind is ErrorKind.DEFERRED]
    assert len(done) >= 1
    assert len(done) + len(deferred) == 5
    assert deferred
    for r in deferred:
        assert r.status is Status.SKIPPED
        assert r.error is not None and "window closed at" in r.error.message
    assert exit_code(results) == 2  # deferred targets were never scanned: incomplete
    starts = sim.fleet.calls("sim01", function="start_scan")
    assert starts == len(done)  # no scan started after the window closed


def test_deferred_targets_are_rescanned_by_only_failed_the_next_night(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=1, accounts=3, infected_ratio=0.0, seed=9, scan_seconds=0.5)
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    inventory = load_inventory(sim.inventory)
    fleet = FleetRun(inventory, RunOptions(window=Window(datetime.now(UTC))))  # closed already
    anyio.run(fleet.run)
    results = fleet.results()
    assert {(r.error.kind if r.error else None) for r in results} == {ErrorKind.DEFERRED}
    assert sim.fleet.calls("sim01", function="start_scan") == 0
    info = RunInfo(
        id="night-1",
        tool_version="test",
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
        inventory=str(sim.inventory),
        servers=("sim01",),
        fleet_id=inventory.fleet_id,
    )
    write_report(build_report(info, results), tmp_path / "night-1", ["json"])
    rerun = cli("run", sim.inventory, "--only-failed", tmp_path / "night-1" / "report.json")
    assert rerun.code == 0
    assert {t["status"] for t in rerun.report["targets"]} == {"clean"}
    assert len(rerun.report["targets"]) == 3


def test_a_home_scan_predicted_to_end_after_the_window_says_it_would_not_finish(
    simulate: Callable[..., Sim],
) -> None:
    # the largest account goes first: 5 MiB in 1.5 s measures the server's speed, so each next
    # one (4.9 MiB, listaccts) is predicted at ~1.5 s: past a window then open for ~1 s more
    mib = 1024 * 1024
    accounts = (
        AccountSpec("first", files=(SimFile("big.bin", 5 * mib),), scan_seconds=1.5),
        AccountSpec("second", files=(SimFile("big.bin", int(4.9 * mib)),)),
        AccountSpec("third", files=(SimFile("big.bin", int(4.9 * mib)),)),
    )
    sim = simulate(one_server(*accounts), server_keys={"max_concurrent_scans": 1})
    window = Window(datetime.now(UTC) + timedelta(seconds=2.5))
    fleet = FleetRun(load_inventory(sim.inventory), RunOptions(window=window))
    anyio.run(fleet.run)
    first, *rest = fleet.results()
    assert first.status is Status.CLEAN  # its speed was not known yet: it started
    for r in rest:
        assert r.error is not None and r.error.kind is ErrorKind.DEFERRED
        assert r.error.message.startswith(f"would not finish before {window.clock()} (predicted")
