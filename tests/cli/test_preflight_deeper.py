"""A deeper pre-flight, against the simulator: systemloadavg where `load.max` is set, the cPanel
session a policy's disinfect_files needs (opened, then logged out), and an auth column that
agrees with the verdict."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.preflight import ServerCheck, check_connectivity, render_table
from orchestrator.config import AuthMethod, Credentials, Policy, Rule, Server
from orchestrator.config.inventory import load_inventory
from orchestrator.errors import HostRefused
from orchestrator.model import Action, Secret
from orchestrator.simulator import Faults, FleetSpec, ServerSpec, SimulatorThread
from tests.cli.test_preflight import QUICK, SERVER_KEYS, SETTINGS, Checked, small_fleet
from tests.support import write_policy

Preflight = Callable[..., tuple[SimulatorThread, Checked]]


@pytest.fixture
def preflight(tmp_path: Path) -> Iterator[Preflight]:
    """Start a simulated fleet, write its inventory, run the pre-flight (with a policy)."""
    with ExitStack() as stack:

        def run(
            spec: FleetSpec,
            *,
            server_keys: dict[str, Any] | None = None,
            policy: Policy | None = None,
        ) -> tuple[SimulatorThread, Checked]:
            fleet = stack.enter_context(SimulatorThread(spec))
            path = tmp_path / "inventory.yaml"
            keys = {**SERVER_KEYS, **(server_keys or {})}
            env = fleet.write_inventory(path, auth="whm", settings=SETTINGS, extra_server_keys=keys)
            inventory = load_inventory(path, env={**os.environ, **env})
            out = io.StringIO()
            code = check_connectivity(inventory, out=out, retry=QUICK, policy=policy)
            return fleet, Checked(code, out.getvalue())

        yield run


QUARANTINE = Policy(default=Action.QUARANTINE)
LOAD = {"load": {"max": 3}}


def with_faults(spec: FleetSpec, name: str, faults: Faults) -> FleetSpec:
    servers = tuple(
        ServerSpec(s.name, accounts=s.accounts, faults=faults) if s.name == name else s
        for s in spec.servers
    )
    return FleetSpec(servers=servers, scan_seconds=spec.scan_seconds, seed=spec.seed)


def test_servers_with_load_max_have_their_load_read(preflight: Preflight) -> None:
    fleet, checked = preflight(small_fleet(), server_keys=LOAD)
    assert checked.code == 0, checked.text
    for name in ("sim01", "sim02"):
        assert fleet.calls(name, function="systemloadavg") == 1
        row = checked.row(name)
        assert "(max 3)" in row and row.endswith("OK"), row
    assert checked.text.splitlines()[0].split()[-3:] == ["load", "session", "verdict"]


def test_servers_without_load_max_are_not_read(preflight: Preflight) -> None:
    fleet, checked = preflight(small_fleet())
    assert checked.code == 0, checked.text
    assert fleet.calls("sim01", function="systemloadavg") == 0


def test_a_load_that_cannot_be_read_fails_the_server(preflight: Preflight) -> None:
    spec = with_faults(small_fleet(), "sim02", Faults(loadavg_unavailable=True))
    _, checked = preflight(spec, server_keys=LOAD)
    assert checked.code == 2
    row = checked.row("sim02")
    assert "FAIL load: systemloadavg failed:" in row and "ignore load.max" in row, row
    assert " failed " in row
    assert checked.row("sim01").endswith("OK")


def test_a_policy_that_sends_actions_tries_the_session_and_ends_it(
    preflight: Preflight,
) -> None:
    fleet, checked = preflight(small_fleet(), policy=QUARANTINE)
    assert checked.code == 0, checked.text
    for name in ("sim01", "sim02"):
        assert fleet.calls(name, function="create_user_session") == 1
        assert fleet.calls(name, function="logout") == 1
        assert fleet.open_sessions(name) == 0, "logged out, not left to expire"
        assert fleet.calls(name, function="disinfect_files") == 0
        assert fleet.calls(name, function="start_scan") == 0
        assert " ok " in checked.row(name).split("(max")[0]


def test_a_report_only_policy_opens_no_session(preflight: Preflight) -> None:
    report_only = Policy(rules=(Rule(Action.REPORT, name="all"),))
    fleet, checked = preflight(small_fleet(), policy=report_only)
    assert checked.code == 0, checked.text
    assert fleet.calls("sim01", function="create_user_session") == 0


def test_a_session_that_cannot_be_opened_fails_the_server(preflight: Preflight) -> None:
    refused = Faults(session_login_no_cookie=True)  # the session's login sets no cookie
    spec = with_faults(small_fleet(), "sim01", refused)
    _, checked = preflight(spec, policy=QUARANTINE)
    assert checked.code == 2
    row = checked.row("sim01")
    assert "FAIL session: no cPanel session for" in row, row
    assert "disinfect_files could not be sent" in row
    assert checked.row("sim02").endswith("OK")


def test_the_cli_passes_the_policy_to_the_connectivity_check(
    simulate: Any, cli: Any, tmp_path: Path
) -> None:
    sim = simulate(small_fleet())
    result = cli(
        "validate", sim.inventory, "--check-connectivity", "--policy", write_policy(tmp_path)
    )
    assert result.code == 0, result.stdout + result.stderr
    assert sim.fleet.calls("sim01", function="create_user_session") == 1


def test_the_auth_column_never_says_ok_beside_an_auth_failure() -> None:
    auth = Credentials(AuthMethod.WHM_TOKEN, "root", Secret("t0ken"))
    check = ServerCheck(Server("web01", "http://127.0.0.1:1", auth))
    check.answered()  # listaccts was answered: the token works
    check.failed(HostRefused("not attempted: another login on this host was refused"))
    (_, row) = render_table([check]).splitlines()
    assert "FAIL auth: not attempted" in row
    assert " ok " not in row and " blocked " in row, row
