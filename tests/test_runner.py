"""The runner through its Python API (FleetRun), against the simulator."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from orchestrator.inventory import load_inventory
from orchestrator.model import ScanStats, Status, Target, TargetResult
from orchestrator.runner import FleetRun, NullObserver
from orchestrator.simulator import generate_fleet

from .conftest import Sim


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
