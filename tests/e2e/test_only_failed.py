"""`run --only-failed`: exactly the failed and interrupted targets are scanned again, merge folds
the rerun onto the first run, and the observer hears only about the targets rerun.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from orchestrator.model import ErrorInfo, ErrorKind, Status, Target, TargetResult
from orchestrator.report import load_report, write_report
from orchestrator.simulator import generate_fleet
from tests.support import Outcome, Sim, target_key, with_targets

TargetKey = tuple[str, str, str]


# ---------------------------------------------------------------------------------------------
# --only-failed through the CLI and through FleetRun


def test_only_failed_reruns_exactly_the_failed_and_interrupted_targets(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(
        servers=2, accounts=4, infected_ratio=0.5, suspended_ratio=0.25, seed=93, scan_seconds=0.2
    )
    sim = simulate(spec)
    first = cli("run", sim.inventory)
    by_status: dict[str, list[TargetKey]] = {}
    for t in first.report["targets"]:
        by_status.setdefault(t["status"], []).append(target_key(t))
    assert {"clean", "infected", "skipped"} <= set(by_status), by_status
    lost = by_status["clean"][0]  # pretend it was unreachable last time
    cut = by_status["infected"][0]  # pretend the run was stopped while it was being scanned
    errors = {
        lost: ErrorInfo(ErrorKind.UNREACHABLE, "given up after 3 consecutive failed requests"),
        cut: ErrorInfo(ErrorKind.INTERRUPTED, "run interrupted"),
    }

    def fail(t: TargetResult) -> TargetResult:
        error = errors.get((t.server, t.account, str(t.scan_type)))
        if error is None:
            return t
        return replace(t, status=Status.FAILED, infected_files=(), scan=None, error=error)

    previous = load_report(first.out / "report.json")
    write_report(with_targets(previous, [fail(t) for t in previous.targets]), tmp_path / "prev")
    starts = {
        (s.name, a.user): sim.fleet.calls(s.name, function="start_scan", account=a.user)
        for s in spec.servers
        for a in s.accounts
    }

    rerun = cli("run", sim.inventory, "--only-failed", tmp_path / "prev" / "report.json")
    assert set(rerun.targets()) == {lost, cut}
    assert rerun.report["run"]["rerun_of"] == first.report["run"]["id"]
    for (name, user), before in starts.items():
        again = sim.fleet.calls(name, function="start_scan", account=user) - before
        assert again == (1 if (name, user, "home") in errors else 0), (name, user)
    assert rerun.targets()[lost]["status"] == "clean"
    assert rerun.targets()[cut]["status"] == "infected"
    assert rerun.code == 1

    folded = cli("merge", tmp_path / "prev" / "report.json", rerun.out / "report.json")
    assert [(target_key(t), t["status"]) for t in folded.report["targets"]] == [
        (target_key(t), t["status"]) for t in first.report["targets"]
    ]
    assert folded.report["summary"]["failed"] == 0
    assert folded.code == first.code == 1


def test_only_failed_with_nothing_failed_scans_nothing(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.0, seed=94, scan_seconds=0.2)
    sim = simulate(spec)
    first = cli("run", sim.inventory)
    assert first.code == 0
    before = sim.fleet.calls("sim01", function="start_scan")
    rerun = cli("run", sim.inventory, "--only-failed", first.out / "report.json")
    assert rerun.code == 0
    assert rerun.report["targets"] == []
    assert sim.fleet.calls("sim01", function="start_scan") == before


def test_only_failed_reports_to_the_observer_only_the_targets_it_reruns(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    import anyio

    from orchestrator.config.inventory import load_inventory
    from orchestrator.engine.runner import FleetRun, NullObserver, RunOptions

    spec = generate_fleet(
        servers=1, accounts=4, infected_ratio=0.0, suspended_ratio=0.5, seed=96, scan_seconds=0.2
    )
    sim = simulate(spec)
    first = load_report(cli("run", sim.inventory).out / "report.json")
    assert {t.status for t in first.targets} == {Status.CLEAN, Status.SKIPPED}
    redo = next(t.target for t in first.targets if t.status is Status.CLEAN)

    class Seen(NullObserver):
        def __init__(self) -> None:
            self.finished: list[Target] = []

        def target_finished(self, result: TargetResult) -> None:
            self.finished.append(result.target)

    seen = Seen()
    options = RunOptions(dry_run=True, only=frozenset({redo}))
    fleet = FleetRun(load_inventory(sim.inventory), options, observer=seen)
    anyio.run(fleet.run)
    assert [r.target for r in fleet.results()] == [redo]
    assert seen.finished == [redo]
