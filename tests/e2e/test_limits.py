"""The concurrency and rate limits as the simulated servers see them (their request logs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orchestrator.simulator import generate_fleet
from tests.support import Outcome, Sim

# ---------------------------------------------------------------------------------------------
# Scans per server, servers at once, the global request rate


def running_scans(sim: Sim, server: str) -> list[tuple[float, float]]:
    """Per account: from its start_scan to its list_infected_files, as the server saw them."""
    starts: dict[str, float] = {}
    spans = []
    for record in sim.fleet.request_log(server):
        if record.function == "start_scan" and record.account:
            starts[record.account] = record.t
        elif record.function == "list_infected_files" and record.account in starts:
            spans.append((starts.pop(record.account), record.t))
    assert not starts, f"scans never listed: {starts}"
    return spans


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


@pytest.mark.parametrize("cap", [1, 2])
def test_max_concurrent_scans_is_the_most_scans_a_server_ever_runs_at_once(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], cap: int
) -> None:
    spec = generate_fleet(servers=1, accounts=4, infected_ratio=0.5, seed=71, scan_seconds=0.3)
    sim = simulate(spec, server_keys={"max_concurrent_scans": cap})
    result = cli("run", sim.inventory)
    assert result.code in (0, 1)
    spans = running_scans(sim, "sim01")
    assert len(spans) == 4
    assert most_at_once(spans) == cap


def test_max_concurrent_servers_one_works_on_one_server_at_a_time(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=2, accounts=2, infected_ratio=0.0, seed=72, scan_seconds=0.2)
    sim = simulate(spec, settings={"max_concurrent_servers": 1})
    result = cli("run", sim.inventory)
    assert result.code == 0
    first, second = (
        sorted(r.t for r in sim.fleet.request_log(name)) for name in ("sim01", "sim02")
    )
    assert first and second
    assert first[-1] < second[0] or second[-1] < first[0], "the two servers' work overlapped"


def test_global_request_rate_holds_across_servers(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=2, accounts=1, infected_ratio=0.0, seed=73, scan_seconds=0.3)
    sim = simulate(spec, settings={"requests_per_second": 10})  # servers allow 500/s each
    result = cli("run", sim.inventory)
    assert result.code == 0
    times = sorted(r.t for name in ("sim01", "sim02") for r in sim.fleet.request_log(name))
    assert len(times) > 10
    for i, start in enumerate(times):  # 2 ms slack for loopback jitter
        assert len([t for t in times[i:] if t < start + 1.0 - 0.002]) <= 10
