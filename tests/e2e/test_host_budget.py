"""One host, one budget: inventory entries on one scheme+host+port (one per account with a
cPanel login) share its request rate and its scan cap, whatever each entry says."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from orchestrator.simulator import generate_fleet
from tests.support import Outcome, Sim

# Each entry promises 10 requests/s, as `simulate --auth cpanel_token --requests-per-second 10`
# writes it; the referee holds each simulated server (one host) to 10/s.
RATE = {"requests_per_second": 10}


@contextmanager
def peak_scans(sim: Sim, server: str) -> Iterator[list[int]]:
    """The most scans running at once on `server` while the block runs (sampled every 5 ms)."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], sim.fleet.running_scans(server))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def test_cpanel_login_entries_of_one_host_share_its_rate_and_the_referee_sees_no_violation(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=2, accounts=4, infected_ratio=0.3, seed=5, scan_seconds=0.3)
    sim = simulate(spec, auth="cpanel_token", server_keys={**RATE, "max_concurrent_scans": 4})
    result = cli("run", sim.inventory)
    assert result.code in (0, 1), result.stderr
    assert len(result.report["targets"]) == 8
    assert {t["status"] for t in result.report["targets"]} <= {"clean", "infected"}
    # (the autouse referee fails this test on any server-rate violation)


def test_cpanel_password_entries_of_one_host_never_run_more_scans_than_its_cap(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=5, infected_ratio=0.0, seed=8, scan_seconds=0.6)
    # five entries of cap 2 each: 2 scans at once on the host, not 10 (nor 5 in one second)
    sim = simulate(spec, auth="cpanel_password", server_keys={"max_concurrent_scans": 2})
    with peak_scans(sim, "sim01") as peak:
        result = cli("run", sim.inventory)
    assert result.code == 0, result.stderr
    assert {t["status"] for t in result.report["targets"]} == {"clean"}
    assert peak[0] == 2


def test_the_smallest_cap_of_a_hosts_entries_is_the_hosts_cap(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=4, infected_ratio=0.0, seed=9, scan_seconds=0.5)
    sim = simulate(spec, auth="cpanel_token", server_keys={"max_concurrent_scans": 3})
    text = sim.inventory.read_text()
    first = text.index("max_concurrent_scans: 3")  # the first entry alone says 1
    sim.inventory.write_text(text[:first] + "max_concurrent_scans: 1" + text[first + 23 :])
    with peak_scans(sim, "sim01") as peak:
        result = cli("run", sim.inventory)
    assert result.code == 0, result.stderr
    assert peak[0] == 1
