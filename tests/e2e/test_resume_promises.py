"""A resumed run keeps every promise of a normal one: the scan cap, the whole target's times,
one `target.finished` per target, the same run id, and no scan started twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
from structlog.testing import capture_logs

from orchestrator.config.inventory import load_inventory
from orchestrator.engine.journal import Journal
from orchestrator.engine.runner import FleetRun, RunOptions
from orchestrator.model import Status, TargetResult
from orchestrator.simulator import generate_fleet
from tests.support import Sim

IDENTITY = {"fleet_id": "f", "shard": "1/1", "policy": "report-only", "dry_run": "False"}
CAP = 2


def run_part(sim: Sim, journal_path: Path, seconds: float | None, run_id: str) -> FleetRun:
    """One process's worth of run: stopped after `seconds` (as a kill would), or to the end."""
    journal = Journal(journal_path)
    meta = journal.open(IDENTITY, resume=journal_path.exists())
    if not meta:
        journal.start({**IDENTITY, "run_id": run_id, "started_at": datetime.now(UTC).isoformat()})
    fleet = FleetRun(load_inventory(sim.inventory), RunOptions(run_id=run_id), journal=journal)

    async def go() -> None:
        if seconds is None:
            await fleet.run()
            return
        with anyio.move_on_after(seconds):
            await fleet.run()

    try:
        anyio.run(go)
    finally:
        journal.close()
    return fleet


def scans_at_once(sim: Sim, durations: dict[str, float]) -> int:
    """The most scans the server ran at one time (from its start_scan arrivals)."""
    starts = [
        (r.t, r.account)
        for r in sim.fleet.request_log("sim01")
        if r.function == "start_scan" and r.status == 200
    ]
    events: list[tuple[float, int]] = []
    for t, account in starts:
        assert account is not None
        events += [(t, 1), (t + durations[account], -1)]
    running = peak = 0
    for _, delta in sorted(events):
        running += delta
        peak = max(peak, running)
    return peak


def test_a_resumed_run_reattaches_first_keeps_the_cap_and_reports_whole_targets(
    simulate: Callable[..., Sim], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=1, accounts=6, infected_ratio=0.5, seed=17, scan_seconds=1.5)
    sim = simulate(spec, server_keys={"max_concurrent_scans": CAP})
    durations = {a.user: spec.scan_seconds_of(a) for a in spec.servers[0].accounts}
    journal_path = tmp_path / "journal.sqlite"
    before = datetime.now(UTC)
    first = run_part(sim, journal_path, seconds=2.2, run_id="night-1")  # killed mid-scan
    finished_first = {
        t for t, r in first.results_by_target.items() if r.status is not Status.FAILED
    }
    assert finished_first, "some targets finished before the kill"
    resumed_at = datetime.now(UTC)
    with capture_logs() as logs:
        second = run_part(sim, journal_path, seconds=None, run_id="night-1")
    results: list[TargetResult] = second.results()
    assert len(results) == 6
    assert {r.status for r in results} <= {Status.CLEAN, Status.INFECTED}
    # the scans the kill left running were re-attached before anything new started there
    assert scans_at_once(sim, durations) <= CAP
    # one start_scan per target over both processes: nothing restarted
    assert sim.fleet.calls("sim01", function="start_scan") == 6
    # a target the kill interrupted reports its whole life, not the resumed part
    reattached = [
        r
        for r in results
        if r.target not in finished_first and r.started_at is not None and r.started_at < resumed_at
    ]
    assert reattached, "a target was in flight across the kill"
    for r in reattached:
        assert r.started_at is not None and r.started_at >= before.replace(microsecond=0)
        assert r.duration_s is not None
        assert r.finished_at is not None
        assert r.duration_s >= (r.finished_at - resumed_at).total_seconds()
    # the targets finished before the kill are in the report, but not logged finished again
    logged = [e for e in logs if e["event"] == "target.finished"]
    logged_targets = {(e["account"], e["scan_type"]) for e in logged}
    assert not logged_targets & {(t.account, str(t.scan_type)) for t in finished_first}
    assert len(logged) == 6 - len(finished_first)
