"""`run --only-failed`: exactly the targets that need another pass are scanned again (failed,
interrupted, deferred, and those with a file whose outcome is unknown or error), said and logged
with why; merge folds the rerun onto the first run, and the observer hears only about the
targets rerun. Selecting nothing is a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.model import ErrorInfo, ErrorKind, Status, Target, TargetResult
from orchestrator.report import load_report, write_report
from orchestrator.simulator import Faults, generate_fleet
from tests.support import (
    Outcome,
    Sim,
    edit_inventory,
    one_server,
    small_account,
    target_key,
    with_targets,
    write_policy,
)

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
    # a 0 that CI reads as clean, so it says why there was nothing to scan
    assert "warning: --only-failed: nothing to scan: it has no failed" in rerun.stdout
    assert "run.only_failed_empty" in rerun.stderr


def test_only_failed_rescans_a_target_whose_file_outcome_was_unknown(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """An `unknown` file (the disinfection deadline passed before cPanel reported it) needs a
    rescan to know: --only-failed picks its target, says why, and lets the disinfection it
    could not see the end of finish before scanning (the referee: no scan under it)."""
    spec = one_server(
        small_account("alice", infected=True),
        small_account("bob"),
        faults=Faults(disinfect_step_seconds=1.5),
        seed=4,
    )
    timeouts = {"request": 5, "scan": 60, "stall": 10, "disinfection": 0.3}
    sim = simulate(spec, settings={"timeouts": timeouts})
    first = cli("run", sim.inventory, "--policy", write_policy(tmp_path))
    alice = first.targets()[("sim01", "alice", "home")]
    assert {f["outcome"] for f in alice["infected_files"]} == {"unknown"}, "the setup holds"
    assert first.code == 1
    previous = first.out / "report.json"
    # the printed summary opens with it, and gives the command
    assert first.stdout.startswith("needs attention (1):\n  outcome unknown  sim01/alice/home ")
    assert f"--only-failed {previous.resolve()}" in first.stdout

    def patient(data: dict[str, Any]) -> None:
        data["settings"]["timeouts"]["disinfection"] = 30

    edit_inventory(sim.inventory, patient)
    rerun = cli("run", sim.inventory, "--only-failed", previous)
    assert set(rerun.targets()) == {("sim01", "alice", "home")}
    assert (
        f"--only-failed: rescanning 1 target of {previous}: 1 with a file whose outcome is unknown"
        in rerun.stdout
    )
    assert rerun.targets()[("sim01", "alice", "home")]["status"] == "clean"  # quarantined since
    assert rerun.code == 0
    assert sim.fleet.calls("sim01", function="start_scan", account="bob") == 1  # not rescanned


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


def test_only_failed_says_so_when_its_targets_are_on_servers_this_run_does_not_scan(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=2, accounts=1, infected_ratio=0.0, seed=95, scan_seconds=0.2)
    sim = simulate(spec)
    first = cli("run", sim.inventory)
    lost = ErrorInfo(ErrorKind.UNREACHABLE, "given up after 3 consecutive failed requests")
    previous = load_report(first.out / "report.json")
    failed = [
        replace(t, status=Status.FAILED, scan=None, error=lost) if t.server == "sim01" else t
        for t in previous.targets
    ]
    write_report(with_targets(previous, failed), tmp_path / "prev")
    rerun = cli(
        "run",
        sim.inventory,
        "--servers",
        "sim02",
        "--only-failed",
        tmp_path / "prev" / "report.json",
    )
    assert rerun.code == 0 and rerun.report["targets"] == []
    assert (
        "warning: --only-failed: nothing to scan: its 1 target that needs another pass is on a"
        " server this run does not scan (--servers, --shard)"
    ) in rerun.stdout
