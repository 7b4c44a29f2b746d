"""`api_calls` in report.json counts what README "Report" says: the ClamScanner calls a target's
workflow made, one per call, however many HTTP attempts the client's retries took; WHM's
listaccts and the session login before disinfect_files are not the target's calls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.simulator import generate_fleet
from tests.support import QUARANTINE_ALL, Outcome, Sim

CLAMSCANNER = {
    "get_scan_status",
    "start_scan",
    "list_infected_files",
    "disinfect_files",
    "check_disinfection_status",
}


def calls_by_account(sim: Sim, server: str, *, answered_only: bool) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in sim.fleet.request_log(server):
        if r.function in CLAMSCANNER and r.account is not None:
            if answered_only and not 200 <= r.status < 300:
                continue
            counts[r.account] = counts.get(r.account, 0) + 1
    return counts


def test_api_calls_count_each_call_once_however_many_attempts_it_took(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=4, infected_ratio=0.5, seed=95, scan_seconds=0.3)
    polls = frozenset({"get_scan_status"})
    spec = spec.with_faults("sim01", status_5xx_every=3, functions=polls)
    sim = simulate(spec, auth="cpanel_token")
    result = cli("run", sim.inventory, "--scan-type", "home")
    reported = {t["account"]: t["api_calls"] for t in result.report["targets"]}
    server = "sim01"  # the simulated server (inventory entries may be named per account)
    every_attempt = calls_by_account(sim, server, answered_only=False)
    answered = calls_by_account(sim, server, answered_only=True)
    assert reported == answered
    retried = [a for a in reported if every_attempt[a] > reported[a]]
    assert retried, "some poll was retried (else this test shows nothing)"


def test_api_calls_leave_out_listaccts_and_the_session_login_of_disinfection(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=1, accounts=3, infected_ratio=1.0, seed=96, scan_seconds=0.3)
    sim = simulate(spec, auth="whm")
    policy = tmp_path / "policy.yaml"
    policy.write_text(QUARANTINE_ALL)
    result = cli("run", sim.inventory, "--scan-type", "home", "--policy", policy)
    assert result.code == 1
    reported = {t["account"]: t["api_calls"] for t in result.report["targets"]}
    server = "sim01"  # the simulated server (inventory entries may be named per account)
    assert reported == calls_by_account(sim, server, answered_only=False)
    sessions = sim.fleet.calls(server, function="create_user_session")
    assert sessions >= len(reported) and sim.fleet.calls(server, function="listaccts") >= 1
