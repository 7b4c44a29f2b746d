"""The CLI's contract with cron and CI: the exit-code verdict, `validate` offline, and the
event loop it runs on."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import commands
from orchestrator.simulator import FleetSpec, ServerSpec
from tests.support import Outcome, Sim, one_server, small_account

# ---------------------------------------------------------------------------------------------
# Exit codes and validate


def test_infected_wins_over_failed_in_the_exit_code(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    infected = ServerSpec("sim01", accounts=(small_account("alice", infected=True),))
    refusing = ServerSpec("sim02", accounts=(small_account("bob"),))
    sim = simulate(FleetSpec(servers=(infected, refusing), scan_seconds=0.3))
    monkeypatch.setenv(next(k for k in sim.env if "SIM02" in k), "not-the-token")
    result = cli("run", sim.inventory)
    summary = result.report["summary"]
    assert summary["failed"] >= 1 and summary["infected"] == 1
    assert result.code == summary["exit_code"] == 1


def test_validate_checks_inventory_and_policy_without_any_request(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(one_server(small_account("alice")))
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: report\nrules:\n  - when: {path: '*/mail/*'}\n    action: ignore\n")
    good = cli("validate", sim.inventory, "--policy", policy)
    assert good.code == 0, good.stderr
    assert "sim01" in good.stdout and "1 rules" in good.stdout

    policy.write_text("default: report\nrules:\n  - when: {pathz: x}\n    action: ignore\n")
    bad = cli("validate", sim.inventory, "--policy", policy)
    assert bad.code == 3
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{policy}:3:" in lines[0] and "pathz" in lines[0]

    broken = tmp_path / "inventory.yaml"
    broken.write_text(sim.inventory.read_text().replace("accounts: all", "acounts: all"))
    assert cli("validate", broken).code == 3
    assert sim.fleet.calls("sim01") == 0, "validate never touches the network"


# ---------------------------------------------------------------------------------------------
# The event loop


def test_uvloop_runs_the_event_loop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert commands._arun(loop_module).startswith("uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert commands._arun(loop_module).startswith("asyncio")
