"""`clamfleet simulate` as its own process: the inventory it writes is one `run` scans as the
seed says, and its fault knobs reach the named server only.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.simulator import generate_fleet
from tests.support import FAST_SERVER, FAST_SETTINGS, Outcome, edit_inventory

# ---------------------------------------------------------------------------------------------
# simulate --write-inventory, then run on what it wrote


class Simulate:
    """A `clamfleet simulate` process; its announced URLs and exported variables."""

    def __init__(self, args: list[str], exports: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "simulate", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self.lines: list[str] = []
        self.env: dict[str, str] = {}
        while len(self.env) < exports:
            line = lines.get(timeout=30)
            if line is None:
                raise AssertionError(f"simulate exited early: {self.lines}")
            self.lines.append(line)
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").partition("=")
                self.env[key] = value.strip("'")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def simulate_process() -> Iterator[Callable[[list[str], int], Simulate]]:
    started: list[Simulate] = []

    def start(args: list[str], exports: int) -> Simulate:
        sim = Simulate(args, exports)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


def speed_up(inventory: Path) -> None:
    """Only the run's pace (polls, rates): servers, URLs and auth stay as simulate wrote them."""

    def edit(data: dict[str, Any]) -> None:
        data["settings"] = dict(FAST_SETTINGS)
        for server in data["servers"]:
            server.update(FAST_SERVER)

    edit_inventory(inventory, edit)


def test_simulate_standalone_writes_an_inventory_that_run_scans_as_the_seed_says(
    simulate_process: Callable[[list[str], int], Simulate],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inventory = tmp_path / "fleet.yaml"
    args = ["--servers", "2", "--accounts", "3", "--infected-ratio", "0.5", "--seed", "17"]
    sim = simulate_process([*args, "--scan-seconds", "0.3", "--write-inventory", str(inventory)], 2)
    urls = dict(line.split(" ", 1) for line in sim.lines if line.startswith("sim0"))
    assert set(urls) == {"sim01", "sim02"}
    assert all(url.startswith("http://127.0.0.1:") for url in urls.values())
    assert f"inventory: {inventory}" in sim.lines
    assert all(value not in inventory.read_text() for value in sim.env.values()), (
        "the inventory references tokens, never holds them"
    )
    speed_up(inventory)
    for key, value in sim.env.items():
        monkeypatch.setenv(key, value)
    result = cli("run", inventory)

    # the same arguments give the same fleet: the report is what the seed says it is
    spec = generate_fleet(servers=2, accounts=3, infected_ratio=0.5, seed=17, scan_seconds=0.3)
    expected = {
        (s.name, a.user): "infected" if any(f.infected_by for f in a.files) else "clean"
        for s in spec.servers
        for a in s.accounts
    }
    got = {(t["server"], t["account"]): t["status"] for t in result.report["targets"]}
    assert got == expected
    assert result.code == (1 if "infected" in expected.values() else 0)


def test_simulate_fault_knobs_reach_the_named_server_only(
    cli: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = tmp_path / "fleet.yaml"
    sim = Simulate(
        ["--servers", "2", "--accounts", "2", "--infected-ratio", "0", "--scan-seconds", "0.2",
         "--fault", "sim02:html_login=1", "--write-inventory", str(inventory)],
        2,
    )  # fmt: skip
    try:
        speed_up(inventory)
        for key, value in sim.env.items():
            monkeypatch.setenv(key, value)
        result = cli("run", inventory)
    finally:
        sim.stop()
    for (server, _, _), target in result.targets().items():
        if server == "sim02":
            assert target["status"] == "failed" and target["error"]["kind"] == "auth"
        else:
            assert target["status"] == "clean"
    assert result.code == 2
    bad = subprocess.run(
        [sys.executable, "-m", "orchestrator", "simulate", "--fault", "sim09:html_login=1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 3 and "sim09" in bad.stderr
