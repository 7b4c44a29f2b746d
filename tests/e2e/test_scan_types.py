"""End to end: several scan types of one account, which share one scan at the server.

cPanel keeps one scan, one status file and one infected list per account, whatever the scan
type. Two targets of one account that overlap make one of them fail ("already in progress") or,
worse, read its sibling's scan: a target reported clean that holds a webshell. These tests
compare every target with what the simulator's own files say it must find.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.simulator import (
    AccountSpec,
    Faults,
    FleetSpec,
    ServerSpec,
    SimFile,
    generate_fleet,
)
from orchestrator.simulator.scan import SCOPES
from tests.support import Outcome, Sim

Files = dict[tuple[str, str, str], set[tuple[str, str]]]


def ground_truth(sim: Sim, server: str, accounts: list[str], scan_types: list[str]) -> Files:
    """What each target must report: the infected files under its scan type's scope."""
    out: Files = {}
    for account in accounts:
        view = sim.fleet.account_state(server, account)
        for scan_type in scan_types:
            prefix = SCOPES[scan_type]
            out[(server, account, scan_type)] = {
                (f"{view.home}/{rel}", virus)
                for rel, virus in view.infected().items()
                if rel.startswith(prefix) and not rel.startswith("quarantine_clamavconnector")
            }
    return out


def reported(outcome: Outcome) -> Files:
    return {
        (t["server"], t["account"], t["scan_type"]): {
            (f["path"], f["virus"]) for f in t["infected_files"]
        }
        for t in outcome.report["targets"]
    }


def unique_per_account(files: Files) -> int:
    return len({(s, a, path) for (s, a, _), found in files.items() for path, _ in found})


def accounts_of(sim: Sim) -> list[str]:
    return [a.user for a in sim.fleet.spec.servers[0].accounts]


@pytest.mark.parametrize("cap", [1, 2, 4])
def test_two_scan_types_per_account_find_every_infected_file_whatever_the_scan_cap(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], cap: int
) -> None:
    # a new user's first try: six infected accounts, home and mail, the shipped default cap 2
    spec = generate_fleet(servers=1, accounts=6, infected_ratio=1.0, scan_seconds=2, seed=11)
    types = ["home", "mail"]
    sim = simulate(spec, server_keys={"scan_types": types, "max_concurrent_scans": cap})
    truth = ground_truth(sim, "sim01", accounts_of(sim), types)
    result = cli("run", sim.inventory)
    assert result.code == 1
    assert reported(result) == truth  # every target: exactly its own scan's files
    assert all(t["error"] is None for t in result.report["targets"])
    # one start_scan per target, never refused
    assert sim.fleet.calls("sim01", function="start_scan") == len(truth)
    # a file that home and mail both found is one infected file of the account
    assert result.report["summary"]["infected_files"] == unique_per_account(truth)
    assert unique_per_account(truth) < sum(len(v) for v in truth.values())  # the case is real
    # the printed table agrees with the summary: its server rows add up to its total row
    table = [line.split() for line in result.stdout.splitlines() if line[:5] in ("sim01", "total")]
    assert [row[-1] for row in table] == [str(unique_per_account(truth))] * 2


def test_password_logins_with_home_and_public_html_scan_both_types_of_every_account(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=3, infected_ratio=1.0, scan_seconds=0.5, seed=5)
    types = ["home", "public_html"]
    sim = simulate(
        spec, auth="cpanel_password", server_keys={"scan_types": types, "max_concurrent_scans": 2}
    )
    result = cli("run", sim.inventory)
    failed = [t for t in result.report["targets"] if t["status"] == "failed"]
    assert failed == []
    truth: Files = {}
    for account in accounts_of(sim):  # one inventory entry (server) per account
        for key, files in ground_truth(sim, "sim01", [account], types).items():
            truth[(f"sim01-{account}", *key[1:])] = files
    assert reported(result) == truth
    assert len(truth) == 6


def test_a_file_found_by_two_scan_types_is_disinfected_once(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=1, accounts=3, infected_ratio=1.0, scan_seconds=0.5, seed=11)
    types = ["home", "mail"]
    sim = simulate(spec, server_keys={"scan_types": types, "max_concurrent_scans": 2})
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: ignore\n")  # cPanel leaves the files: mail finds them again
    result = cli("run", sim.inventory, "--policy", policy)
    targets = result.targets()
    twice = 0
    for account in accounts_of(sim):
        home = targets[("sim01", account, "home")]
        mail = targets[("sim01", account, "mail")]
        home_files = {f["path"]: f for f in home["infected_files"]}
        for f in mail["infected_files"]:
            assert f["path"] in home_files  # home contains mail/
            assert home_files[f["path"]]["outcome"] == "no-action"  # sent once, by home
            assert f["outcome"] == "not-requested"
            assert "already sent" in f["message"]
            twice += 1
    assert twice > 0
    # one disinfect_files per account with files: the mail targets sent nothing
    with_files = sum(1 for a in accounts_of(sim) if targets[("sim01", a, "home")]["infected_files"])
    assert sim.fleet.calls("sim01", function="disinfect_files") == with_files
    summary: dict[str, Any] = result.report["summary"]
    assert summary["outcomes"] == {"no-action": summary["infected_files"]}


def sibling_fleet(faults: Faults) -> FleetSpec:
    account = AccountSpec(
        "alice",
        files=(
            SimFile("public_html/shell.php", 900, "Php.Webshell-1"),
            SimFile("tmp/a.out", 500, "Unix.Trojan.Mirai-9"),  # only `home` sees it
        ),
    )
    return FleetSpec(
        servers=(ServerSpec("sim01", accounts=(account,), faults=faults),), scan_seconds=1.0
    )


def test_a_sibling_scan_type_waits_for_a_disinfection_its_sibling_stopped_following(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    # the first target's disinfection task is queued, but starts only after 3 s: the target
    # stops following it after its 2 s of `none` (none_grace); cPanel still runs it, and its
    # end would delete the infected list of a scan started now
    faults = Faults(disinfect_start_delay=3.0)
    sim = simulate(sibling_fleet(faults), server_keys={"scan_types": ["public_html", "home"]})
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: quarantine\n")
    result = cli("run", sim.inventory, "--policy", policy)
    targets = result.targets()
    first = targets[("sim01", "alice", "public_html")]
    assert [f["outcome"] for f in first["infected_files"]] == ["unknown"]  # the setup holds
    run_id = result.report["run"]["id"]
    found = sim.fleet.scans_started("sim01")[(run_id, "alice", "home")]
    assert ("tmp/a.out", "Unix.Trojan.Mirai-9") in found  # home's own scan found the trojan
    home = targets[("sim01", "alice", "home")]
    assert ("/home/alice/tmp/a.out", "Unix.Trojan.Mirai-9") in {
        (f["path"], f["virus"]) for f in home["infected_files"]
    }, f"home reported {home['status']}: its infected list was deleted under it"
    # (the referee fixture: no start_scan while the disinfection was pending)


def test_a_sibling_is_not_scanned_rather_than_read_clean_while_a_disinfection_may_run(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    # every disinfection poll answers garbage: nobody can know when the task ends (the host
    # answers, so this is no outage to wait through)
    faults = Faults(truncated_json_every=1, functions=frozenset({"check_disinfection_status"}))
    sim = simulate(
        sibling_fleet(faults),
        server_keys={"scan_types": ["public_html", "home"]},
        settings={"timeouts": {"request": 5, "scan": 60, "stall": 10, "disinfection": 2}},
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: quarantine\n")
    result = cli("run", sim.inventory, "--policy", policy)
    home = result.targets()[("sim01", "alice", "home")]
    assert home["status"] == "failed"
    assert home["error"]["kind"] == "api"
    assert "not scanned" in home["error"]["message"]
    assert sim.fleet.scans_started("sim01") == {
        (result.report["run"]["id"], "alice", "public_html"): [
            ("public_html/shell.php", "Php.Webshell-1")
        ]
    }
    assert result.code == 1  # the web shell: infected wins over the incomplete sibling


@pytest.mark.expect_violations("scan-overlap")  # the refused start: the race is the point
def test_a_start_refused_by_a_scan_started_from_cpanels_ui_follows_it_then_scans_its_own(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    # someone starts a scan in cPanel's UI between our status read and our start_scan
    # seed 1: a web shell in public_html, and a backup outside it that only home would see
    spec = generate_fleet(servers=1, accounts=1, infected_ratio=1.0, scan_seconds=1.0, seed=1)
    user = spec.servers[0].accounts[0].user
    spec = spec.with_faults("sim01", ui_race_accounts=frozenset({user}))
    sim = simulate(spec, server_keys={"scan_types": ["public_html"]})
    result = cli("run", sim.inventory)
    (target,) = result.report["targets"]
    assert target["error"] is None, target["error"]
    starts = [r.status for r in sim.fleet.request_log("sim01") if r.function == "start_scan"]
    assert len(starts) == 2  # refused ("already in progress"), then ours after theirs ended
    run_id = result.report["run"]["id"]
    own = sim.fleet.scans_started("sim01")[(run_id, user, "public_html")]
    assert own, "the account has infected web files"
    view = sim.fleet.account_state("sim01", user)
    assert {(f["path"], f["virus"]) for f in target["infected_files"]} == {
        (f"{view.home}/{rel}", virus) for rel, virus in own
    }  # its own public_html scan's files, never the UI's home scan's
    assert all("public_html/" in f["path"] for f in target["infected_files"])
