"""End to end: the real CLI against simulated cPanel servers on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.simulator import AccountSpec, Faults, generate_fleet
from orchestrator.simulator.referee import RATE_WINDOW
from tests.support import Outcome, Sim, one_server, run_subprocess, small_account


def infected_truth(account: AccountSpec) -> bool:
    return any(f.virus or any(m for m in f.mail_messages or []) for f in account.files)


@pytest.mark.parametrize("auth", ["whm", "cpanel_token", "cpanel_password"])
def test_every_account_is_scanned_and_reported_as_the_server_knows_it(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], auth: str
) -> None:
    spec = generate_fleet(servers=2, accounts=4, infected_ratio=0.5, seed=3, scan_seconds=0.3)
    sim = simulate(spec, auth=auth)
    result = cli("run", sim.inventory)
    targets = result.targets()
    expected_accounts = {(s.name, a.user) for s in spec.servers for a in s.accounts}
    assert {(srv.split("-")[0], acct) for srv, acct, _ in targets} == expected_accounts
    for server in spec.servers:
        for account in server.accounts:
            key = next(k for k in targets if k[1] == account.user and k[0].startswith(server.name))
            status = targets[key]["status"]
            assert status == ("infected" if infected_truth(account) else "clean"), key
    any_infected = any(infected_truth(a) for s in spec.servers for a in s.accounts)
    assert result.code == (1 if any_infected else 0)
    summary = result.report["summary"]
    assert summary["targets"] == len(targets)
    assert summary["exit_code"] == result.code


def test_accounts_all_skips_suspended_accounts_and_infected_paths_are_unescaped(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(
        servers=1, accounts=6, infected_ratio=1.0, suspended_ratio=0.34, seed=11, scan_seconds=0.3
    )
    suspended = {a.user for a in spec.servers[0].accounts if a.suspended}
    assert suspended, "the seed must give at least one suspended account"
    sim = simulate(spec)
    result = cli("run", sim.inventory)
    for (_, account, _), target in result.targets().items():
        if account in suspended:
            assert target["status"] == "skipped"
            assert target["error"]["kind"] == "skipped"
            assert target["api_calls"] == 0
        else:
            assert target["status"] == "infected"
            for f in target["infected_files"]:
                assert "&amp;" not in f["path"] and "&#39;" not in f["path"]
                assert f["action"] == "report" and f["outcome"] == "not-requested"
    assert sim.fleet.calls("sim01", function="start_scan") == 6 - len(suspended)


def test_stale_completed_status_of_an_earlier_scan_is_not_taken_for_the_new_one(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=1.0, seed=5, scan_seconds=1.0)
    spec = spec.with_faults("sim01", stale_seconds=0.6)
    sim = simulate(spec)
    first = cli("run", sim.inventory)
    assert {t["status"] for t in first.targets().values()} == {"infected"}
    # Second run: for 0.6 s the server still shows the first scan as complete; accepting it
    # would list the new scan's partial (empty) infected list and call the account clean.
    second = cli("run", sim.inventory)
    assert {t["status"] for t in second.targets().values()} == {"infected"}
    for key, target in second.targets().items():
        assert len(target["infected_files"]) == len(first.targets()[key]["infected_files"])


def test_account_whose_start_scan_fails_is_failed_with_cpanels_reason(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(
        servers=1, accounts=3, infected_ratio=0.0, no_feature_ratio=0.34, seed=2, scan_seconds=0.3
    )
    without = {a.user for a in spec.servers[0].accounts if not a.has_feature}
    assert without
    sim = simulate(spec)
    result = cli("run", sim.inventory)
    for (_, account, _), target in result.targets().items():
        if account in without:
            assert target["status"] == "failed"
            assert target["error"]["kind"] == "api"
            assert "clamavconnector_scan" in target["error"]["message"]
            assert target["scan"] is None
        else:
            assert target["status"] == "clean"
    assert result.code == 2
    assert sim.fleet.calls("sim01", function="get_scan_status", account=next(iter(without))) <= 1


def test_bad_credentials_fail_that_server_with_auth_and_leave_the_others_alone(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = generate_fleet(servers=2, accounts=3, infected_ratio=0.0, seed=4, scan_seconds=0.3)
    sim = simulate(spec)
    bad_var = next(k for k in sim.env if "SIM02" in k)
    monkeypatch.setenv(bad_var, "not-the-token")
    result = cli("run", sim.inventory)
    targets = result.targets()
    for (server, _, _), target in targets.items():
        if server == "sim02":
            assert target["status"] == "failed"
            assert target["error"]["kind"] == "auth"
        else:
            assert target["status"] == "clean"
    assert result.code == 2
    # one refused request, never a retry storm (cPHulk would block the whole IP)
    assert sim.fleet.calls("sim02") == 1


def test_json_and_csv_reports_agree(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=2, accounts=3, infected_ratio=0.6, seed=8, scan_seconds=0.3)
    sim = simulate(spec)
    result = cli("run", sim.inventory)
    report = result.report
    rows = result.csv_rows("targets.csv")
    assert [(r["server"], r["account"], r["scan_type"], r["status"]) for r in rows] == [
        (t["server"], t["account"], t["scan_type"], t["status"]) for t in report["targets"]
    ]
    assert [int(r["infected_count"]) for r in rows] == [
        len(t["infected_files"]) for t in report["targets"]
    ]
    infected_rows = result.csv_rows("infected.csv")
    from_json = [
        (t["server"], t["account"], f["path"], f["virus"], f["outcome"])
        for t in report["targets"]
        for f in t["infected_files"]
    ]
    assert [
        (r["server"], r["account"], r["path"], r["virus"], r["outcome"]) for r in infected_rows
    ] == from_json
    assert report["summary"]["infected_files"] == len(from_json)


def test_per_server_request_rate_is_never_exceeded(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=4, infected_ratio=0.5, seed=9, scan_seconds=0.5)
    sim = simulate(spec, server_keys={"requests_per_second": 10, "max_concurrent_scans": 4})
    result = cli("run", sim.inventory)
    assert result.code in (0, 1)
    times = sorted(r.t for r in sim.fleet.request_log("sim01"))
    assert len(times) > 10
    # any one-second window holds at most 10 requests: counted, like the referee does, in windows
    # of RATE_WINDOW (0.95 s), since requests sent 1/R apart arrive with loopback jitter (a
    # loaded machine's scheduler delays some by tens of milliseconds)
    for i, start in enumerate(times):
        window = [t for t in times[i:] if t < start + RATE_WINDOW]
        assert len(window) <= 10


def test_demo_runs_end_to_end(cli: Callable[..., Outcome]) -> None:
    result = cli("demo")
    assert result.code == 0
    assert (result.out / "report.json").exists()
    assert "a real run would have exited with code" in result.stdout
    assert "report:" in result.stdout
    assert "0 protocol violations" in result.stdout  # the simulator's referee saw none
    report = result.report
    assert report["summary"]["exit_code"] == 1, "its real infections stay findings"
    assert "a real run would have exited with code 1" in result.stdout
    accepted = [f for t in report["targets"] for f in t["infected_files"] if f["accepted"]]
    assert len(accepted) == 1 and report["summary"]["accepted"] == 1
    assert "PHPMailer" in accepted[0]["accepted"]["reason"]
    canaries = [f for t in report["targets"] for f in t["infected_files"] if f.get("canary")]
    assert len(canaries) == len(report["run"]["canaries"]) == 3  # one per server, all found
    assert report["summary"]["unverified"] == 0
    assert "canaries: 3 of 3 detected" in result.stdout


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("servers: [\n  {name: a, host: h, bogus: 1}\n]\n", "bogus"),
        (
            "defaults:\n"
            "  auth: {method: whm_token, user: root, token_env: CLAMFLEET_UNSET_VAR}\n"
            "servers:\n  - {name: a, host: h}\n",
            "CLAMFLEET_UNSET_VAR",
        ),
        ("servers: [\n", "inventory.yaml:"),
    ],
)
def test_malformed_inventory_exits_3_with_one_line_and_no_traceback(
    tmp_path: Path, content: str, needle: str
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(content)
    proc = run_subprocess("run", inventory, "--out", tmp_path / "out", env={})
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "inventory.yaml" in lines[0]


def test_usage_errors_exit_3(cli: Callable[..., Outcome]) -> None:
    assert cli("run").code == 3
    assert cli("frobnicate").code == 3
    assert cli("run", "x.yaml", "--shard", "5/4").code == 3


# ---------------------------------------------------------------------------------------------
# start_scan refused by cPanel (status 0): that target fails with cPanel's reason, never polled


@pytest.mark.parametrize(
    ("refused", "faults", "reason"),
    [
        pytest.param(
            small_account("bob", allowed_scan_types=("mail",)),
            Faults(),
            "disabled for this account",
            id="scan-type-disabled",
        ),
        pytest.param(small_account("bob"), Faults(clamd_down=True), "ClamAV", id="clamd-down"),
    ],
)
def test_a_refused_start_scan_fails_that_target_and_is_not_polled(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    refused: AccountSpec,
    faults: Faults,
    reason: str,
) -> None:
    spec = one_server(small_account("alice"), refused, faults=faults)
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    result = cli("run", sim.inventory)
    targets = result.targets()
    if not faults.clamd_down:  # (clamd down refuses every account's scan)
        assert targets[("sim01", "alice", "home")]["status"] == "clean"
    bob = targets[("sim01", "bob", "home")]
    assert bob["status"] == "failed"
    assert bob["error"]["kind"] == "api"
    assert reason in bob["error"]["message"]
    assert bob["infected_files"] == []
    # one start_scan, the status read before it and nothing after: no polling of a scan that
    # never started (cPanel has reset the status file, so polling would wait for nothing)
    assert sim.fleet.calls("sim01", function="start_scan", account="bob") == 1
    assert sim.fleet.calls("sim01", function="get_scan_status", account="bob") == 1
    assert sim.fleet.calls("sim01", function="list_infected_files", account="bob") == 0
    assert result.code == 2


# ---------------------------------------------------------------------------------------------
# A scan someone else started is waited for, then this run's own scan is started and read


def start_scan_directly(base_url: str, spec: AccountSpec) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/execute/ClamScanner/start_scan?scan_type=home",
        headers={"Authorization": f"cpanel {spec.user}:{spec.cpanel_token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_a_scan_already_running_is_waited_for_then_scanned_once_more_by_this_run(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    alice = replace(small_account("alice", infected=True), scan_seconds=1.0)
    sim = simulate(one_server(alice))
    assert start_scan_directly(sim.fleet.base_url("sim01"), alice)["status"] == 1
    result = cli("run", sim.inventory)
    (target,) = result.report["targets"]
    assert target["status"] == "infected", target["error"]
    assert target["error"] is None
    assert [f["path"] for f in target["infected_files"]] == ["/home/alice/public_html/shell.php"]
    # the foreign scan plus this run's own: never a start_scan into the running scan
    assert sim.fleet.calls("sim01", function="start_scan", account="alice") == 2
    assert result.code == 1


# ---------------------------------------------------------------------------------------------
# accounts: all with include_suspended and exclude_accounts


def test_include_suspended_scans_suspended_accounts(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = one_server(small_account("alice"), small_account("bob", infected=True, suspended=True))
    sim = simulate(spec, server_keys={"include_suspended": True})
    result = cli("run", sim.inventory)
    bob = result.targets()[("sim01", "bob", "home")]
    assert bob["status"] == "infected"
    assert sim.fleet.calls("sim01", function="start_scan", account="bob") == 1
    assert result.code == 1


def test_excluded_accounts_are_reported_skipped_and_never_scanned(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = one_server(small_account("alice"), small_account("tmp-bob", infected=True))
    sim = simulate(spec, server_keys={"exclude_accounts": ["tmp-*"]})
    result = cli("run", sim.inventory)
    assert sim.fleet.calls("sim01", account="tmp-bob") == 0
    assert result.code == 0
    targets = result.targets()
    assert targets[("sim01", "alice", "home")]["status"] == "clean"
    bob = targets[("sim01", "tmp-bob", "home")]
    assert bob["status"] == "skipped"
    assert bob["error"]["kind"] == "skipped"
