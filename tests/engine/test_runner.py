"""The runner through its Python API (FleetRun), against the simulator."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import anyio

from orchestrator.config.inventory import load_inventory
from orchestrator.engine.runner import FleetRun, NullObserver
from orchestrator.model import ScanStats, Status, Target, TargetResult
from orchestrator.simulator import generate_fleet
from tests.support import Sim


class Recorder(NullObserver):
    def __init__(self) -> None:
        self.progress: dict[Target, list[ScanStats]] = {}
        self.finished: list[TargetResult] = []

    def scan_progress(self, target: Target, stats: ScanStats) -> None:
        self.progress.setdefault(target, []).append(stats)

    def target_finished(self, result: TargetResult) -> None:
        self.finished.append(result)


def run_fleet(sim: Sim) -> Recorder:
    recorder = Recorder()
    fleet_run = FleetRun(load_inventory(sim.inventory), observer=recorder)
    anyio.run(fleet_run.run)
    assert {r.status for r in fleet_run.results()} <= {Status.CLEAN, Status.INFECTED}
    return recorder


def test_progress_shows_only_this_scans_counters_never_the_stale_ones(
    simulate: Callable[..., Sim],
) -> None:
    """Right after start_scan cPanel still reports the previous, finished scan (100 %).

    A display fed that would jump to 100 % and back to 0: the observer only gets counters
    the workflow accepted as this scan's, so each target's progress only grows.
    """
    spec = generate_fleet(servers=1, accounts=3, infected_ratio=0.0, seed=61, scan_seconds=0.8)
    sim = simulate(spec, settings={"poll_interval": {"min": 0.05, "max": 0.1}})
    run_fleet(sim)  # leaves a finished scan's status behind on every account
    second = run_fleet(sim)
    assert set(second.progress) == {r.target for r in second.finished}
    for target, seen in second.progress.items():
        counts = [s.scanned_file_count for s in seen]
        assert counts == sorted(counts), f"{target}: progress went backwards: {counts}"
        assert len(seen) >= 2, "polled while running, not only at the end"


def test_targets_waiting_between_polls_hold_no_task_of_their_own(
    simulate: Callable[..., Sim],
) -> None:
    """Memory at fleet scale: a waiting target is a heap entry, not a parked task.

    40 scans in flight on one server; the run's task count stays at the few workers and the
    scheduler, whatever the number of targets in flight (a task holds ~10 KiB of frames).
    """
    spec = generate_fleet(servers=1, accounts=40, infected_ratio=0.0, seed=62, scan_seconds=1.0)
    sim = simulate(
        spec,
        settings={"poll_interval": {"min": 0.05, "max": 0.2}},
        server_keys={"max_concurrent_scans": 40, "requests_per_second": 200},
    )

    class CountingTasks(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.tasks: list[int] = []

        def scan_progress(self, target: Target, stats: ScanStats) -> None:
            super().scan_progress(target, stats)
            self.tasks.append(len(asyncio.all_tasks()))

    observer = CountingTasks()
    fleet_run = FleetRun(load_inventory(sim.inventory), observer=observer)
    anyio.run(fleet_run.run)
    assert {r.status for r in fleet_run.results()} == {Status.CLEAN}
    assert len(observer.progress) == 40  # every scan was polled while running
    assert max(observer.tasks) < 16, f"tasks during the run: {max(observer.tasks)}"


def test_the_largest_accounts_start_first_and_the_report_keeps_inventory_order(
    simulate: Callable[..., Sim],
) -> None:
    """listaccts' diskused orders the starts (a big account started last sets the night's end);
    the report still lists accounts as the server did."""
    spec = generate_fleet(servers=1, accounts=6, infected_ratio=0.0, seed=63, scan_seconds=0.3)
    sim = simulate(
        spec,
        settings={"poll_interval": {"min": 0.02, "max": 0.1}},
        server_keys={"max_concurrent_scans": 1, "scan_types": ["home"]},
    )
    fleet_run = FleetRun(load_inventory(sim.inventory), observer=NullObserver())
    anyio.run(fleet_run.run)

    # listaccts reports whole MiB (rounded up); equal sizes keep the server's order
    mib = {a.user: math.ceil(a.disk_bytes / 2**20) for a in spec.servers[0].accounts}
    by_size = sorted(spec.servers[0].accounts, key=lambda a: -mib[a.user])
    started = [r.account for r in sim.fleet.request_log("sim01") if r.function == "start_scan"]
    assert started == [a.user for a in by_size]
    listed = [a.user for a in spec.servers[0].accounts]
    assert [r.target.account for r in fleet_run.results()] == listed
    assert listed != started  # (the seed gives an order the sort changes)
