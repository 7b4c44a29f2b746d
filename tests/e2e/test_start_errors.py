"""End to end: start_scan answered with an HTTP error is not an ambiguous send: it is retried
after the wait the server asked for (status read first), until the target's deadline, and a
failure names the HTTP status."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from orchestrator.simulator import generate_fleet
from tests.support import Outcome, Sim


def test_a_5xx_on_every_start_scan_is_retried_after_status_reads_until_the_deadline(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.0, seed=3, scan_seconds=0.3)
    spec = spec.with_faults("sim01", status_5xx_every=1, functions=frozenset({"start_scan"}))
    deadline = 2.0  # timeouts.scan: the target's deadline counts from its first start_scan
    timeouts = {"request": 5, "scan": deadline, "stall": 10, "disinfection": 30}
    sim = simulate(spec, settings={"timeouts": timeouts})
    result = cli("run", sim.inventory)
    assert result.code == 2
    for target in result.report["targets"]:
        assert target["status"] == "failed"
        error = target["error"]
        assert error["kind"] == "unreachable"
        assert "start_scan not accepted in" in error["message"]
        assert "start_scan: HTTP 50" in error["message"]
    for account in (a.user for a in spec.servers[0].accounts):
        log = [r for r in sim.fleet.request_log("sim01") if r.account == account]
        starts = [r for r in log if r.function == "start_scan"]
        assert len(starts) >= 3, "not twice and done"
        assert starts[-1].t - starts[0].t <= deadline + 0.5
        # never a second start_scan without a status read before it
        functions = [r.function for r in log if r.function in ("start_scan", "get_scan_status")]
        assert "start_scan,start_scan" not in ",".join(functions)
        gaps = [b.t - a.t for a, b in itertools.pairwise(starts)]
        assert max(gaps) > 2 * gaps[0], "the wait between starts grows (backoff)"


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
