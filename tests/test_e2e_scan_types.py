"""Several scan types per account: cPanel keeps one scan per account, so they must not overlap."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.simulator import generate_fleet

from .conftest import Outcome, Sim


def test_two_scan_types_of_one_account_run_one_after_the_other_and_both_report(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    """The referee fails this test (scan-overlap) if a second type starts while one runs."""
    spec = generate_fleet(servers=1, accounts=3, infected_ratio=0.7, seed=5, scan_seconds=1.0)
    sim = simulate(spec, server_keys={"scan_types": ["home", "mail"], "max_concurrent_scans": 4})
    result = cli("run", sim.inventory)
    statuses = {key: t["status"] for key, t in result.targets().items()}
    assert len(statuses) == 6
    assert set(statuses.values()) <= {"clean", "infected"}, statuses
    for account in spec.servers[0].accounts:
        assert sim.fleet.calls("sim01", function="start_scan", account=account.user) == 2
