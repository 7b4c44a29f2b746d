"""End to end: a real night's faults against `clamfleet run`, and what a user needs from it.

Each test plays one fault of a real night on `clamfleet simulate` (its `--fault` knobs:
simulator/outage.py, faults.py), runs `clamfleet run` on the inventory it wrote, then stops the
simulator and reads the protocol violations it printed. The simulator runs as its own process,
so its referee's record is this test's own assertion (the conftest fixture watches the fleets
of this process only): the tests stay strict xfails while the client breaks a rule, without a
teardown error, and pass once it keeps them.

They document the client's fixes to come (strict xfail: each fails today, for the reason given).
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.simulator import generate_fleet
from tests.support import Outcome, edit_inventory

pytestmark = pytest.mark.slow

#: The run's pace: fast polls and short deadlines; the fleet-wide rate the referee judges (the
#: inventory's default, as simulate wrote none). Servers keep the keys simulate wrote.
SETTINGS: dict[str, Any] = {
    "poll_interval": {"min": 0.05, "max": 0.5},
    "timeouts": {"request": 5, "scan": 60, "stall": 30, "disinfection": 30},
    "requests_per_second": 100,
}
VIOLATION = re.compile(r"^violation run=")
TOTAL = re.compile(r"^(\d+) protocol violations$")


@dataclass
class Night:
    """A `clamfleet simulate` process, the inventory it wrote and the secrets it exported."""

    proc: subprocess.Popen[str]
    inventory: Path
    fleet: dict[str, Any]  # generate_fleet's arguments: the same fleet, in this process
    env: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def violations(self) -> list[str]:
        """Stop the simulator; the violations it printed (its last line is their count)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        while (line := self._queue.get(timeout=30)) is not None:
            self.lines.append(line)
        found = [line for line in self.lines if VIOLATION.match(line)]
        total = next(m for line in reversed(self.lines) if (m := TOTAL.match(line)))
        assert int(total.group(1)) >= len(found)
        return found if int(total.group(1)) == len(found) else [*found, total.group(0)]

    def expected(self, entry_of: Callable[[str, str], str]) -> dict[tuple[str, str], set[Any]]:
        """(inventory entry, account) -> the (path, virus) a home scan finds there."""
        spec = generate_fleet(**self.fleet)
        return {
            (entry_of(s.name, a.user), a.user): {
                (f"{a.home}/{f.relpath}", f.infected_by) for f in a.files if f.infected_by
            }
            for s in spec.servers
            for a in s.accounts
        }


@pytest.fixture
def night(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Night]]:
    started: list[Night] = []

    def start(*args: str, exports: int, **fleet: Any) -> Night:
        inventory = tmp_path / f"night-{len(started)}.yaml"
        flags = [
            "--servers", str(fleet["servers"]), "--accounts", str(fleet["accounts"]),
            "--infected-ratio", str(fleet["infected_ratio"]), "--seed", str(fleet["seed"]),
            "--scan-seconds", str(fleet["scan_seconds"]),
        ]  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "simulate", *flags, *args,
             "--write-inventory", str(inventory)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        sim = Night(proc, inventory, fleet)
        started.append(sim)
        threading.Thread(target=_pump, args=(proc, sim._queue), daemon=True).start()
        while len(sim.env) < exports:
            line = sim._queue.get(timeout=60)
            assert line is not None, f"simulate exited early: {sim.lines}"
            sim.lines.append(line)
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").partition("=")
                sim.env[key] = value.strip("'")
        edit_inventory(inventory, lambda data: data.update(settings=dict(SETTINGS)))
        for key, value in sim.env.items():
            monkeypatch.setenv(key, value)
        return sim

    yield start
    for sim in started:
        if sim.proc.poll() is None:
            sim.proc.kill()
            sim.proc.wait(timeout=30)


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def by_server(server: str, user: str) -> str:
    return server


def per_account(server: str, user: str) -> str:
    return f"{server}-{user}"


def outcome(result: Outcome) -> dict[tuple[str, str], tuple[str, set[Any]]]:
    """(inventory entry, account) -> (status, the (path, virus) it reports)."""
    return {
        (t["server"], t["account"]): (
            t["status"],
            {(f["path"], f["virus"]) for f in t["infected_files"]},
        )
        for t in result.report["targets"]
    }


def assert_every_target_found_what_it_holds(
    night: Night, result: Outcome, entry_of: Callable[[str, str], str] = by_server
) -> None:
    expected = night.expected(entry_of)
    want = {key: ("infected" if files else "clean", files) for key, files in expected.items()}
    errors = [(t["server"], t["account"], t["error"]) for t in result.report["targets"]]
    assert outcome(result) == want, f"a target failed, or a finding was lost: {errors}"
    assert result.code == (1 if any(files for files in expected.values()) else 0)


# ---------------------------------------------------------------------------------------------


def test_a_503_outage_while_results_are_listed_costs_no_target_and_no_finding(
    night: Callable[..., Night], cli: Callable[..., Outcome]
) -> None:
    sim = night(
        "--requests-per-second", "50",
        "--fault", "sim01:outage_mode=503", "--fault", "sim01:outage_on=list_infected_files",
        "--fault", "sim01:outage_seconds=6", "--fault", "sim01:outage_retry_after=2",
        exports=1, servers=1, accounts=2, infected_ratio=1.0, seed=3, scan_seconds=0.5,
    )  # fmt: skip
    result = cli("run", sim.inventory)
    violations = sim.violations()
    assert_every_target_found_what_it_holds(sim, result)
    assert violations == []


def test_a_refused_port_in_the_middle_of_the_scans_costs_no_target_and_no_finding(
    night: Callable[..., Night], cli: Callable[..., Outcome]
) -> None:
    sim = night(
        "--requests-per-second", "50",
        "--fault", "sim01:outage_on=get_scan_status", "--fault", "sim01:outage_on_count=3",
        "--fault", "sim01:outage_seconds=6",
        exports=1, servers=1, accounts=2, infected_ratio=0.5, seed=5, scan_seconds=3.0,
    )  # fmt: skip
    result = cli("run", sim.inventory)
    violations = sim.violations()
    assert_every_target_found_what_it_holds(sim, result)
    assert violations == []


def test_throttled_starts_take_exactly_once_per_target_and_no_target_fails(
    night: Callable[..., Night], cli: Callable[..., Outcome]
) -> None:
    sim = night(
        "--requests-per-second", "50",
        "--fault", "sim01:throttle_start=2", "--fault", "sim01:throttle_mode=503",
        "--fault", "sim01:throttle_retry_after=0",
        "--fault", "sim02:throttle_start=1", "--fault", "sim02:throttle_retry_after=1",
        exports=2, servers=2, accounts=2, infected_ratio=0.5, seed=11, scan_seconds=0.3,
    )  # fmt: skip
    result = cli("run", sim.inventory)
    violations = sim.violations()  # scan-restarted: a second start that took for a target
    assert_every_target_found_what_it_holds(sim, result)
    assert violations == []


def test_token_entries_on_one_host_share_its_rate_and_scan_cap(
    night: Callable[..., Night], cli: Callable[..., Outcome]
) -> None:
    sim = night(
        "--auth", "cpanel_token", "--requests-per-second", "2", "--max-concurrent-scans", "1",
        exports=5, servers=1, accounts=5, infected_ratio=0.4, seed=13, scan_seconds=0.3,
    )  # fmt: skip
    result = cli("run", sim.inventory)
    violations = sim.violations()
    assert violations == [], "\n".join(violations)
    assert_every_target_found_what_it_holds(sim, result, per_account)
