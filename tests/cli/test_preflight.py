"""validate --check-connectivity against the simulator on 127.0.0.1."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli.preflight import check_connectivity
from orchestrator.client import RetryPolicy
from orchestrator.config import Inventory
from orchestrator.config.inventory import load_inventory
from orchestrator.simulator import (
    AccountSpec,
    Faults,
    FleetSpec,
    ServerSpec,
    SimulatorThread,
    generate_fleet,
)
from tests.support import Outcome, Sim

SETTINGS = {"timeouts": {"request": 5}, "requests_per_second": 1000}
SERVER_KEYS = {"requests_per_second": 200}
QUICK = RetryPolicy(attempts=2, total=2.0, initial=0.01, max=0.02, jitter=0.0)
BAD_TOKEN_ENV = "CLAMFLEET_TEST_BAD_TOKEN"


class Checked:
    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text

    def row(self, server: str) -> str:
        rows = [line for line in self.text.splitlines() if line.startswith(f"{server} ")]
        assert len(rows) == 1, self.text
        return rows[0]


Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def preflight(tmp_path: Path) -> Iterator[Callable[..., tuple[SimulatorThread, Checked]]]:
    """Start a simulated fleet, write (and optionally edit) its inventory, run the pre-flight."""
    with ExitStack() as stack:

        def run(
            spec: FleetSpec,
            *,
            tls: bool = False,
            auth: str = "whm",
            edit: Edit | None = None,
            server_keys: dict[str, Any] | None = None,
        ) -> tuple[SimulatorThread, Checked]:
            fleet = stack.enter_context(SimulatorThread(spec, tls=tls))
            path = tmp_path / "inventory.yaml"
            keys = {**SERVER_KEYS, **(server_keys or {})}
            env = fleet.write_inventory(path, auth=auth, settings=SETTINGS, extra_server_keys=keys)
            if edit is not None:
                document = yaml.safe_load(path.read_text())
                edit(document)
                path.write_text(yaml.safe_dump(document, sort_keys=False))
            env = {**os.environ, **env, BAD_TOKEN_ENV: "WRONGTOKENWRONGTOKENWRONGTOKEN12"}
            inventory: Inventory = load_inventory(path, env=env)
            out = io.StringIO()
            code = check_connectivity(inventory, out=out, retry=QUICK)
            return fleet, Checked(code, out.getvalue())

        yield run


def server_entry(document: dict[str, Any], name: str) -> dict[str, Any]:
    entry: dict[str, Any] = next(s for s in document["servers"] if s["name"] == name)
    return entry


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed now: connections to it are refused


def small_fleet(servers: int = 2) -> FleetSpec:
    return generate_fleet(servers=servers, accounts=3, infected_ratio=0.3, seed=1, scan_seconds=0.5)


# ---------------------------------------------------------------------------------------------


def test_a_good_fleet_passes_with_read_only_calls(preflight: Any) -> None:
    fleet, checked = preflight(small_fleet())
    assert checked.code == 0, checked.text
    for name in ("sim01", "sim02"):
        row = checked.row(name)
        assert row.endswith("OK"), row
        assert " yes " in row and " ok " in row
        assert fleet.calls(name, function="listaccts") == 1
        assert fleet.calls(name, function="get_scan_paths") == 3
        assert fleet.calls(name) == 4  # nothing but reads
    assert "2 of 2 servers pass" in checked.text
    assert checked.text.splitlines()[0].split()[:3] == ["server", "url", "reachable"]


def test_a_refused_token_fails_that_server_after_one_request(preflight: Any) -> None:
    def bad_token(document: dict[str, Any]) -> None:
        server_entry(document, "sim02")["auth"]["token_env"] = BAD_TOKEN_ENV

    fleet, checked = preflight(small_fleet(), edit=bad_token)
    assert checked.code == 2
    row = checked.row("sim02")
    assert "FAIL auth:" in row and "refused" in row
    assert fleet.calls("sim02") == 1
    assert checked.row("sim01").endswith("OK")
    assert "WRONGTOKEN" not in checked.text


def test_cpanel_token_entries_stop_at_the_first_refused_login_on_their_host(
    preflight: Any,
) -> None:
    spec = small_fleet(servers=2)
    stale = [f"sim01-{a.user}" for a in spec.servers[0].accounts]

    def bad_tokens(document: dict[str, Any]) -> None:
        for name in stale:
            server_entry(document, name)["auth"]["token_env"] = BAD_TOKEN_ENV

    fleet, checked = preflight(spec, auth="cpanel_token", edit=bad_tokens)
    assert checked.code == 2
    refused = [r for r in fleet.request_log("sim01") if r.status == 403]
    assert len(refused) == 1, "cPHulk counts per host: one refused login, not one per entry"
    rows = [checked.row(name) for name in stale]
    assert sum("credentials refused" in row for row in rows) == 1
    skipped = [row for row in rows if "FAIL auth: not attempted" in row]
    assert len(skipped) == len(stale) - 1
    for row in skipped:
        assert "cPHulk" in row and " ?  " in row  # nothing sent: reachability unknown
    for account in spec.servers[1].accounts:  # another host keeps its own budget
        assert checked.row(f"sim02-{account.user}").endswith("OK")
        assert fleet.calls("sim02", function="get_scan_paths", account=account.user) == 1


def test_an_untrusted_certificate_is_a_tls_failure(preflight: Any) -> None:
    def untrusted(document: dict[str, Any]) -> None:
        server_entry(document, "sim01")["tls"] = {"verify": True}  # the system CAs only

    fleet, checked = preflight(small_fleet(), tls=True, edit=untrusted)
    assert checked.code == 2
    row = checked.row("sim01")
    assert "FAIL tls:" in row and " failed " in row
    assert fleet.calls("sim01") == 0  # the handshake failed: no request was ever read
    assert checked.row("sim02").endswith("OK")


def test_verify_false_passes_but_is_flagged(preflight: Any) -> None:
    def unverified(document: dict[str, Any]) -> None:
        server_entry(document, "sim01")["tls"] = {"verify": False}

    _, checked = preflight(small_fleet(), tls=True, edit=unverified)
    assert checked.code == 0, checked.text
    row = checked.row("sim01")
    assert "UNVERIFIED" in row and "verify: false" in row
    assert "UNVERIFIED" not in checked.row("sim02")


def test_an_unreachable_server(preflight: Any) -> None:
    port = closed_port()

    def elsewhere(document: dict[str, Any]) -> None:
        server_entry(document, "sim02")["url"] = f"http://127.0.0.1:{port}"

    _, checked = preflight(small_fleet(), edit=elsewhere)
    assert checked.code == 2
    row = checked.row("sim02")
    assert "FAIL unreachable:" in row and " no " in row
    assert checked.row("sim01").endswith("OK")


def test_scan_types_an_account_may_not_use_are_flagged(preflight: Any) -> None:
    accounts = (
        AccountSpec("alice"),
        AccountSpec("bob", allowed_scan_types=("home",)),
        AccountSpec("carol", has_feature=False),
        AccountSpec("dave", suspended=True, allowed_scan_types=()),
    )
    spec = FleetSpec(servers=(ServerSpec("web01", accounts=accounts),))
    fleet, checked = preflight(spec, server_keys={"scan_types": ["home", "mail"]})
    assert checked.code == 2
    row = checked.row("web01")
    assert "bob: mail not allowed" in row
    assert "carol:" in row and "alice" not in row
    assert "FAIL" in row
    assert fleet.calls("web01", account="dave") == 0  # suspended: a run skips it, so do we


def test_an_account_missing_from_the_server_is_flagged(preflight: Any) -> None:
    def ghost(document: dict[str, Any]) -> None:
        server_entry(document, "sim01")["accounts"] = ["ghost"]

    _, checked = preflight(small_fleet(servers=1), edit=ghost)
    assert checked.code == 2
    assert "ghost: no such account" in checked.row("sim01")


def test_garbage_answers_are_a_verdict_not_a_traceback(preflight: Any) -> None:
    spec = small_fleet()
    broken = ServerSpec(
        "sim02", accounts=spec.servers[1].accounts, faults=Faults(truncated_json_every=1)
    )
    login = ServerSpec("sim03", accounts=spec.servers[1].accounts, faults=Faults(html_login=True))
    spec = FleetSpec(servers=(spec.servers[0], broken, login), scan_seconds=0.5)
    _, checked = preflight(spec)
    assert checked.code == 2
    assert "FAIL protocol:" in checked.row("sim02")
    assert "FAIL auth:" in checked.row("sim03")
    assert checked.row("sim01").endswith("OK")


def test_the_cli_runs_it(simulate: Any, cli: Any) -> None:
    sim = simulate(small_fleet())
    outcome = cli("validate", sim.inventory, "--check-connectivity")
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    assert "2 of 2 servers pass" in outcome.stdout
    assert "Traceback" not in outcome.stderr


# ---------------------------------------------------------------------------------------------
# validate --check-connectivity through the CLI: one table, exit 2 unless every server passes


def _functions(sim: Sim, name: str) -> set[str | None]:
    return {r.function for r in sim.fleet.request_log(name)}


def test_validate_cli_table_and_exit_code_for_good_bad_token_tls_and_unreachable_servers(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = generate_fleet(servers=3, accounts=2, infected_ratio=0.0, seed=92, scan_seconds=0.3)
    sim = simulate(spec, tls=True)
    monkeypatch.setenv(BAD_TOKEN_ENV, "WRONGWRONGWRONGWRONGWRONGWRONG12")
    document = yaml.safe_load(sim.inventory.read_text())
    entries = {s["name"]: s for s in document["servers"]}
    entries["sim02"]["auth"]["token_env"] = BAD_TOKEN_ENV
    entries["sim03"]["tls"] = {"verify": True}  # the system CAs only: the simulator's is unknown
    ghost = {**entries["sim01"], "name": "ghost", "url": f"https://127.0.0.1:{closed_port()}"}
    document["servers"].append(ghost)
    sim.inventory.write_text(yaml.safe_dump(document, sort_keys=False))

    result = cli("validate", sim.inventory, "--check-connectivity")
    assert result.code == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["server", "url", "reachable"]

    def row(name: str) -> str:
        (found,) = [ln for ln in lines if ln.startswith(f"{name} ")]
        return found

    assert row("sim01").endswith("OK")
    assert "FAIL auth:" in row("sim02")
    assert "FAIL tls:" in row("sim03")
    assert "FAIL unreachable:" in row("ghost")
    assert "1 of 4 servers pass" in result.stdout
    assert sim.fleet.calls("sim02") == 1, "an auth failure stops at one request"
    assert sim.fleet.calls("sim03") == 0, "no request after a failed handshake"
    assert {c for n in ("sim01", "sim02") for c in _functions(sim, n)} <= {
        "listaccts",
        "get_scan_paths",
    }, "read-only calls only"
    assert "WRONGWRONG" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
