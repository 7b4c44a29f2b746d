"""The fault matrix: every fault class of the real world against the simulator.

For each fault: every inventory target is in the report with a terminal status, no scan is
started twice and nothing is disinfected twice, no token appears in any output or report file,
and the exit code is the right one.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import pytest

from orchestrator.client.channel import Channel
from orchestrator.simulator import Faults, FleetSpec, generate_fleet
from tests.support import Outcome, Sim, edit_inventory, infected_account, one_server

TERMINAL = {"clean", "infected", "failed", "skipped"}
POLLS = frozenset(
    {"get_scan_status", "list_infected_files", "check_disinfection_status", "listaccts"}
)


def assert_invariants(sim: Sim, spec: FleetSpec, result: Outcome, runs: int = 1) -> None:
    """`runs`: how many runs the simulator has seen (each may start every scan once)."""
    targets = result.targets()
    for server in spec.servers:
        rows = {key: t for key, t in targets.items() if key[0] == server.name}
        accounts = {acct for _, acct, _ in rows}
        if accounts == {"*"}:
            # `accounts: all` and listaccts itself failed: one failed row stands for the server
            assert all(t["status"] == "failed" for t in rows.values())
        else:
            assert accounts == {a.user for a in server.accounts}
    assert {t["status"] for t in targets.values()} <= TERMINAL
    for server in spec.servers:
        for account in server.accounts:
            for function in ("start_scan", "disinfect_files"):
                assert may_have_run(sim, server.name, function, account.user) <= runs, function
    secrets = list(sim.env.values())
    outputs = [result.stdout, result.stderr] + [
        p.read_text() for p in result.out.iterdir() if p.is_file()
    ]
    for secret in secrets:
        for text in outputs:
            assert secret not in text, "a token leaked into output or a report"
    summary = result.report["summary"]
    expected_code = 1 if summary["infected_files"] else 2 if summary["failed"] else 0
    assert result.code == expected_code == summary["exit_code"]


def may_have_run(sim: Sim, server: str, function: str, account: str) -> int:
    """Requests of a state-changing call that may have run: all but those answered with an
    error status line (the call did not run; sent again after a wait, that is no resend)."""
    log = sim.fleet.request_log(server)
    return sum(1 for r in log if r.function == function and r.account == account and r.status < 300)


class FleetArgs(TypedDict):
    """`generate_fleet`'s keyword arguments, so `generate_fleet(**BASE)` type-checks."""

    servers: int
    accounts: int
    infected_ratio: float
    seed: int
    scan_seconds: float


BASE: FleetArgs = {
    "servers": 2,
    "accounts": 3,
    "infected_ratio": 0.5,
    "seed": 31,
    "scan_seconds": 0.3,
}


@pytest.mark.parametrize(
    ("knobs", "sim02_status"),
    [
        pytest.param({"status_5xx_every": 3, "functions": POLLS}, "ok", id="5xx"),
        pytest.param({"retry_after_every": 3, "functions": POLLS}, "ok", id="429-retry-after"),
        pytest.param({"reset_every": 4, "functions": POLLS}, "ok", id="connection-reset"),
        pytest.param({"truncated_json_every": 3, "functions": POLLS}, "ok", id="truncated-json"),
        pytest.param({"slow_seconds": 0.2}, "ok", id="slow-replies"),
        pytest.param({"html_login": True}, "auth", id="html-login-page"),
        pytest.param({"clamd_down": True}, "api", id="clamd-down"),
        pytest.param({"fail_next": 100}, "unreachable", id="persistent-503"),
    ],
)
def test_fault_matrix(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    knobs: dict[str, Any],
    sim02_status: str,
) -> None:
    spec = generate_fleet(**BASE).with_faults("sim02", **knobs)
    sim = simulate(spec)
    result = cli("run", sim.inventory, "--log-level", "debug")
    assert_invariants(sim, spec, result)
    for (server, _, _), target in result.targets().items():
        if server == "sim02" and sim02_status != "ok":
            assert target["status"] == "failed"
            assert target["error"]["kind"] == sim02_status
        else:
            assert target["status"] in ("clean", "infected"), target
    if sim02_status == "auth":
        assert sim.fleet.calls("sim02") == 1, "an auth failure is never retried"


def test_stalled_scan_fails_with_stalled_and_the_rest_finish(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(**BASE)
    victim = spec.servers[0].accounts[0].user
    spec = spec.with_faults("sim01", stall_accounts=frozenset({victim}))
    sim = simulate(
        spec, settings={"timeouts": {"request": 5, "scan": 60, "stall": 1.5, "disinfection": 30}}
    )
    result = cli("run", sim.inventory)
    assert_invariants(sim, spec, result)
    for (server, account, _), target in result.targets().items():
        if (server, account) == ("sim01", victim):
            assert target["error"]["kind"] == "stalled"
            assert target["status"] == "failed"
        else:
            assert target["status"] in ("clean", "infected")


def test_scan_deadline_fails_with_timeout(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=1, infected_ratio=0.0, seed=32, scan_seconds=5.0)
    sim = simulate(
        spec, settings={"timeouts": {"request": 5, "scan": 0.8, "stall": 30, "disinfection": 30}}
    )
    result = cli("run", sim.inventory)
    assert_invariants(sim, spec, result)
    (target,) = result.targets().values()
    assert target["error"]["kind"] == "timeout"


def test_lockout_refuses_good_credentials_and_clamfleet_stops_at_one_attempt(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = generate_fleet(**BASE).with_faults("sim02", lockout_failures=1, lockout_seconds=60)
    sim = simulate(spec)
    token_var = next(k for k in sim.env if "SIM02" in k)
    monkeypatch.setenv(token_var, "wrong-token")
    bad = cli("run", sim.inventory)
    assert sim.fleet.calls("sim02") == 1
    monkeypatch.setenv(token_var, sim.env[token_var])  # the right token, during the lockout
    locked = cli("run", sim.inventory)
    assert_invariants(sim, spec, locked, runs=2)
    for (server, _, _), target in locked.targets().items():
        if server == "sim02":
            assert target["error"]["kind"] == "auth"
    assert sim.fleet.calls("sim02") == 2
    assert bad.report["summary"]["failed"] == locked.report["summary"]["failed"]


def test_server_down_is_unreachable_without_hammering_it(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    import socket

    import yaml

    spec = generate_fleet(**BASE)
    sim = simulate(spec)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    data = yaml.safe_load(sim.inventory.read_text())
    for server in data["servers"]:
        if server["name"] == "sim02":
            server["url"] = f"http://127.0.0.1:{dead_port}"
            server["accounts"] = [a.user for a in spec.servers[1].accounts]
    sim.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    result = cli("run", sim.inventory)
    assert_invariants(sim, spec, result)
    for (server, _, _), target in result.targets().items():
        if server == "sim02":
            assert target["error"]["kind"] == "unreachable"
            # a host that never answered is given up at once, not waited for (server_down)
            assert target["error"]["message"].startswith("never answered in this run")
    (stretch,) = result.report["run"]["outages"]["sim02"]
    assert stretch["gave_up"]


def test_reset_on_start_scan_is_checked_not_blindly_resent(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    """A start_scan whose answer is lost may or may not have started a scan: look first."""
    spec = generate_fleet(**BASE).with_faults(
        "sim01", reset_every=1, functions=frozenset({"start_scan"})
    )
    sim = simulate(spec)
    result = cli("run", sim.inventory)
    targets = result.targets()
    for (server, account, _), target in targets.items():
        assert target["status"] in TERMINAL
        if server == "sim01":
            # every start_scan was dropped: at most one retry, each after a status check
            assert sim.fleet.calls("sim01", function="start_scan", account=account) <= 2
            assert target["status"] == "failed"
            assert target["error"]["kind"] == "unreachable"


# ---------------------------------------------------------------------------------------------
# start_scan whose answer is lost while the previous scan's status is still shown


def test_an_ambiguous_start_scan_in_the_stale_window_is_not_sent_twice(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = one_server(infected_account("alice"), seed=4)
    sim = simulate(spec)
    first = cli("run", sim.inventory)  # leaves a completed scan behind
    assert first.code == 1
    # every start_scan answer is cut in half (the scan did start), and for 1 s after it the
    # server still shows the first scan's completed status, as cPanel may
    sim.fleet.set_faults(
        "sim01",
        Faults(truncated_json_every=1, functions=frozenset({"start_scan"}), stale_seconds=1.0),
    )
    second = cli("run", sim.inventory)
    (target,) = second.report["targets"]
    assert target["status"] == "infected"
    assert sim.fleet.calls("sim01", function="start_scan", account="alice") == 2, (
        "one start_scan per run: a scan that took must not be started again"
    )


# ---------------------------------------------------------------------------------------------
# The breaker: a server that went away is waited for, then given up after timeouts.server_down


def test_a_server_down_past_server_down_gives_up_its_targets_saying_since_when(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=2, accounts=8, infected_ratio=0.0, seed=91, scan_seconds=0.2)
    broken = frozenset({"get_scan_status", "start_scan", "list_infected_files"})
    servers = [
        dataclasses.replace(s, faults=Faults(fail_next=10_000, functions=broken))
        if s.name == "sim02"
        else s
        for s in spec.servers
    ]
    spec = dataclasses.replace(spec, servers=tuple(servers))
    timeouts = {"request": 5, "scan": 60, "stall": 10, "disinfection": 30, "server_down": 3}
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1}, settings={"timeouts": timeouts})
    result = cli("run", sim.inventory)
    assert_invariants(sim, spec, result)
    rows = {k: t for k, t in result.targets().items() if k[0] == "sim02"}
    assert len(rows) == 8
    assert {t["status"] for t in rows.values()} == {"failed"}
    assert {t["error"]["kind"] for t in rows.values()} == {"unreachable"}
    for t in rows.values():
        assert t["error"]["message"].startswith("server down since "), t["error"]
        assert "(timeouts.server_down 3s)" in t["error"]["message"]
    # listaccts answered; then the one target in flight opens the breaker (two failures), and
    # while it is open only probes go, one per cool-down (1 s, then 2 s, cut at 3 s)
    polls = sim.fleet.calls("sim02", function="get_scan_status")
    assert 3 <= polls <= 2 + 3, polls
    assert sim.fleet.calls("sim02", function="start_scan") == 0
    assert {t["status"] for k, t in result.targets().items() if k[0] == "sim01"} == {"clean"}
    (stretch,) = result.report["run"]["outages"]["sim02"]
    assert stretch["gave_up"] and stretch["back_at"] is None and stretch["down_s"] >= 3
    assert "sim01" not in result.report["run"]["outages"]


# ---------------------------------------------------------------------------------------------
# The request deadline


def test_a_server_slower_than_the_request_timeout_fails_and_the_run_goes_on(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=2, accounts=2, infected_ratio=0.0, seed=92, scan_seconds=0.2)
    servers = [
        dataclasses.replace(s, faults=Faults(slow_seconds=3.0)) if s.name == "sim02" else s
        for s in spec.servers
    ]
    spec = dataclasses.replace(spec, servers=tuple(servers))
    sim = simulate(
        spec, settings={"timeouts": {"request": 0.3, "scan": 60, "stall": 10, "disinfection": 30}}
    )
    result = cli("run", sim.inventory)
    assert_invariants(sim, spec, result)
    for (server, _, _), target in result.targets().items():
        if server == "sim02":
            assert target["status"] == "failed"
            assert target["error"]["kind"] in ("timeout", "unreachable")
            assert "timed out" in target["error"]["message"]
        else:
            assert target["status"] == "clean"
    assert result.code == 2


# ---------------------------------------------------------------------------------------------
# HTTPS through `run`: trusted, untrusted and unverified servers


def test_https_trusted_untrusted_and_unverified_servers_in_one_run(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = generate_fleet(servers=3, accounts=2, infected_ratio=0.0, seed=94, scan_seconds=0.2)
    sim = simulate(spec, tls=True)

    def edit(data: dict[str, Any]) -> None:
        for server in data["servers"]:
            if server["name"] == "sim02":
                del server["tls"]  # the simulator's CA is not in the system store
            elif server["name"] == "sim03":
                server["tls"] = {"verify": False}

    edit_inventory(sim.inventory, edit)
    sends: Counter[str] = Counter()
    original = Channel.send

    async def counting(self: Channel, *args: Any, **kwargs: Any) -> Any:
        sends[self.server.name] += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Channel, "send", counting)
    result = cli("run", sim.inventory)
    for (server, _, _), target in result.targets().items():
        if server == "sim02":
            assert target["status"] == "failed"
            assert target["error"]["kind"] == "tls"
        else:
            assert target["status"] == "clean", target["error"]
    assert sends["sim02"] == 1, "a TLS failure is never retried"
    warnings = [line for line in result.stderr.splitlines() if "verify_disabled" in line]
    assert len(warnings) == 1 and "sim03" in warnings[0]
    assert result.code == 2


def test_a_lost_start_over_a_reset_status_is_not_taken_for_a_running_scan(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    # cPanel's UI left the status reset (a start refused while clamd was down), and every
    # start_scan of this run is dropped before it runs: no scan is ever started
    faults = Faults(reset_every=1, functions=frozenset({"start_scan"}))
    sim = simulate(
        one_server(infected_account("alice"), faults=faults),
        settings={"timeouts": {"request": 5, "scan": 60, "stall": 2, "disinfection": 30}},
    )
    sim.fleet.fail_start_as_ui("sim01", "alice")
    result = cli("run", sim.inventory)
    [target] = result.report["targets"]
    assert sim.fleet.scans_started("sim01") == {}  # the setup holds: nothing ever scanned
    assert target["status"] == "failed"
    assert target["error"]["kind"] != "stalled", target["error"]  # no scan ever ran to stall
