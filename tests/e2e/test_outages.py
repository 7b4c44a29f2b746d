"""End to end: a server that goes away mid-run (a cpsrvd restart, a 503 proxy) at any phase of a
target costs no target and no finding, and is not hammered meanwhile: one probe per cool-down.

The simulator's referee judges the 503 outages (its `outage-hammering` rule, in every test's
teardown); a refused connection never reaches it, so the requests clamfleet tried to send are
recorded here, at the transport, and judged the same way for both modes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from orchestrator import workflow
from orchestrator.cli import execute
from orchestrator.client.transport import Http
from orchestrator.engine.journal import Journal
from orchestrator.model import EXIT_INTERNAL
from orchestrator.simulator import Faults, FleetSpec, generate_fleet
from orchestrator.simulator.referee import GRACE_EXTRA, MIN_PROBE_INTERVAL, PROBE_JITTER
from tests.e2e.test_resume import stopping_after_results
from tests.support import Outcome, Sim, assert_outcomes_are_what_the_server_did, write_policy

pytestmark = pytest.mark.slow

CAP = 2  # max_concurrent_scans: what may be in flight when the host goes away


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str]]:
    """(wall time, function) of every request clamfleet tried to send, refused ones too."""
    seen: list[tuple[float, str]] = []
    original = Http.send

    async def recording(self: Http, *args: Any, **kwargs: Any) -> Any:
        seen.append((time.time(), kwargs["where"][1]))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Http, "send", recording)
    return seen


def night(**knobs: Any) -> FleetSpec:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=1.0, seed=3, scan_seconds=1.0)
    return spec.with_faults("sim01", **knobs)


def assert_every_target_found_what_it_holds(spec: FleetSpec, result: Outcome) -> None:
    holds = {
        (a.user, f"{a.home}/{f.relpath}", f.infected_by)
        for a in spec.servers[0].accounts
        for f in a.files
        if f.infected_by
    }
    found = {
        (t["account"], f["path"], f["virus"])
        for t in result.report["targets"]
        for f in t["infected_files"]
    }
    errors = [(t["account"], t["error"]) for t in result.report["targets"] if t["error"]]
    assert errors == [], "a target was lost to the outage"
    assert found == holds, "a finding was lost to the outage"


def assert_probes_only(sim: Sim, sends: list[tuple[float, str]]) -> None:
    """Within each outage: after what was in flight and the breaker's two failures, the
    requests are at least a cool-down (>= 1 s) apart."""
    (outage,) = sim.fleet.outages("sim01")
    inside = [t for t, _ in sends if outage.start <= t < outage.end]
    later = inside[CAP + GRACE_EXTRA :]
    gaps = [b - a for a, b in zip(inside[CAP + GRACE_EXTRA - 1 :], later, strict=False)]
    assert all(gap >= MIN_PROBE_INTERVAL - PROBE_JITTER for gap in gaps), (outage, inside)


@pytest.mark.parametrize(
    ("phase", "mode", "knobs"),
    [
        ("precheck", "503", {"outage_on": "get_scan_status"}),
        ("start", "refused", {"outage_on": "start_scan"}),
        ("scanning", "503", {"outage_on": "get_scan_status", "outage_on_count": 4}),
        ("listing", "refused", {"outage_on": "list_infected_files"}),
        ("disinfecting", "503", {"outage_on": "disinfect_files"}),
        ("following", "refused", {"outage_on": "check_disinfection_status"}),
    ],
)
def test_an_outage_at_any_phase_costs_no_target_and_no_finding(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    sends: list[tuple[float, str]],
    phase: str,
    mode: str,
    knobs: dict[str, Any],
) -> None:
    spec = night(outage_mode=mode, outage_seconds=2.5, **knobs)
    sim = simulate(spec, server_keys={"max_concurrent_scans": CAP})
    result = cli("run", sim.inventory, "--policy", write_policy(tmp_path))
    assert_every_target_found_what_it_holds(spec, result)
    outcomes = {f["outcome"] for t in result.report["targets"] for f in t["infected_files"]}
    assert outcomes <= {"quarantined", "mailbox-cleansed"}, "every file disinfected"
    assert_outcomes_are_what_the_server_did(sim, result.report)
    starts = [r for r in sim.fleet.request_log("sim01") if r.function == "start_scan"]
    assert len([r for r in starts if r.status == 200]) == 2, "one accepted start per target"
    assert_probes_only(sim, sends)
    (stretch,) = result.report["run"]["outages"]["sim01"]
    assert stretch["back_at"] is not None and not stretch["gave_up"]
    assert "outage: sim01 down 1 time" in result.stdout + result.stderr


def test_a_refused_port_for_a_dozen_seconds_while_scanning_costs_nothing(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    sends: list[tuple[float, str]],
) -> None:
    """A restart as long as a real one: the breaker's cool-down grows (1, 2, 4, 8 s)."""
    spec = night(outage_on="get_scan_status", outage_on_count=4, outage_seconds=12)
    timeouts = {"request": 5, "scan": 60, "stall": 30, "disinfection": 30}
    sim = simulate(spec, server_keys={"max_concurrent_scans": CAP}, settings={"timeouts": timeouts})
    result = cli("run", sim.inventory)
    assert_every_target_found_what_it_holds(spec, result)
    assert_probes_only(sim, sends)
    (outage,) = sim.fleet.outages("sim01")
    probes = [t for t, _ in sends if outage.start <= t < outage.end]
    assert len(probes) <= CAP + GRACE_EXTRA + 4, "one probe per cool-down: 1, 2, 4, 8 s"


def test_a_host_down_past_server_down_ends_its_remaining_targets_with_the_time_it_went_down(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = night(outage_mode="503", outage_on="get_scan_status", outage_on_count=4)
    spec = spec.with_faults("sim01", outage_seconds=600)
    timeouts = {"request": 5, "scan": 60, "stall": 30, "disinfection": 30, "server_down": "3s"}
    sim = simulate(spec, server_keys={"max_concurrent_scans": CAP}, settings={"timeouts": timeouts})
    result = cli("run", sim.inventory)
    assert result.code == 2
    for target in result.report["targets"]:
        assert target["status"] == "failed" and target["error"]["kind"] == "unreachable"
        assert target["error"]["message"].startswith("server down since "), target["error"]
        assert "(timeouts.server_down 3s)" in target["error"]["message"]
    (stretch,) = result.report["run"]["outages"]["sim01"]
    assert stretch["gave_up"] and stretch["down_s"] >= 3
    assert "server.given_up" in result.stderr


def test_a_run_resumed_while_its_host_is_away_waits_for_it_instead_of_giving_it_up(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """The interrupted run had answers from the host: the resumed one, meeting a restart from
    its first request, waits for it like any outage (not "never answered")."""
    spec = night()
    sim = simulate(spec, server_keys={"max_concurrent_scans": CAP})
    args: list[str | Path] = ["run", sim.inventory, "--journal", tmp_path / "journal.sqlite"]
    with mock.patch.object(execute, "FleetRun", stopping_after_results(1)):
        assert cli(*args).code == EXIT_INTERNAL  # stopped, a scan still running
    sim.fleet.set_faults("sim01", Faults(outage_seconds=3.0))  # cpsrvd restarts: refused
    resumed = cli(*args, "--resume")
    assert_every_target_found_what_it_holds(spec, resumed)
    (stretch,) = resumed.report["run"]["outages"]["sim01"]
    assert stretch["back_at"] is not None and not stretch["gave_up"]


class Killed(Exception):
    """The process dies here: nothing after it reaches the journal or the server."""


def test_a_run_resumed_while_its_host_is_away_waits_even_if_only_a_status_check_was_answered(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """The interrupted run died right after its first answers (the checks of the stale
    status), before any target's next step reached the journal: only the journal's note that
    the host answered tells the resumed run that this host comes back (the fleet fuzz found
    such a host given up as "never answered")."""
    spec = night()
    sim = simulate(spec, server_keys={"max_concurrent_scans": CAP})
    args: list[str | Path] = ["run", sim.inventory, "--journal", tmp_path / "journal.sqlite"]
    original = Journal.save_state

    def save_state(self: Journal, state: workflow.State) -> None:
        if state.phase not in (workflow.Phase.SETTLING, workflow.Phase.PRECHECK):
            raise Killed("killed after the status check was answered")
        original(self, state)

    with mock.patch.object(Journal, "save_state", save_state):
        assert cli(*args).code == EXIT_INTERNAL
    assert sim.fleet.calls("sim01", function="start_scan") == 0
    sim.fleet.set_faults("sim01", Faults(outage_seconds=3.0))  # cpsrvd restarts: refused
    resumed = cli(*args, "--resume")
    assert_every_target_found_what_it_holds(spec, resumed)
    (stretch,) = resumed.report["run"]["outages"]["sim01"]
    assert stretch["back_at"] is not None and not stretch["gave_up"]
