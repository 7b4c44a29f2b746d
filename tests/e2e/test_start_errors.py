"""End to end: start_scan answered with an HTTP error is not an ambiguous send: it is retried
after the wait the server asked for (status read first), and a failure names the HTTP status."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.simulator import generate_fleet
from tests.support import Outcome, Sim


def test_a_5xx_on_every_start_scan_fails_fast_naming_the_status(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.0, seed=3, scan_seconds=0.3)
    spec = spec.with_faults("sim01", status_5xx_every=1, functions=frozenset({"start_scan"}))
    sim = simulate(spec)
    result = cli("run", sim.inventory)
    assert result.code == 2
    for target in result.report["targets"]:
        assert target["status"] == "failed"
        error = target["error"]
        assert error["kind"] == "unreachable"
        assert "start_scan: HTTP 50" in error["message"]
        assert "(2 attempts)" in error["message"]
        # status, start, status, start: no stale-window verification loop after a definite no
        assert target["api_calls"] <= 4
    # no verification polls between the attempts: two starts and two status reads per account
    for account in (a.user for a in spec.servers[0].accounts):
        assert sim.fleet.calls("sim01", function="start_scan", account=account) == 2
        assert sim.fleet.calls("sim01", function="get_scan_status", account=account) == 2


def test_a_429_with_retry_after_on_start_scan_is_honoured_and_the_scan_then_runs(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=1, infected_ratio=1.0, seed=3, scan_seconds=0.3)
    spec = spec.with_faults("sim01", retry_after_every=2, functions=frozenset({"start_scan"}))
    # the second start_scan of the server is refused with 429, Retry-After: 1
    sim = simulate(spec, server_keys={"scan_types": ["home", "mail"]})
    result = cli("run", sim.inventory)
    assert result.code == 1
    assert {t["status"] for t in result.report["targets"]} <= {"infected", "clean"}
    assert all(t["error"] is None for t in result.report["targets"])
    log = [r for r in sim.fleet.request_log("sim01") if r.function == "start_scan"]
    assert [r.status for r in log] == [200, 429, 200]
    assert log[2].t - log[1].t >= 1.0  # Retry-After: 1 was waited out
