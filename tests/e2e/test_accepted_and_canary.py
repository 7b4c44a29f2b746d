"""End to end: accepted findings (until they expire) and per-server canaries (a blind server's
clean verdicts are unproven), against the simulator with a destructive policy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from orchestrator.simulator import Faults, FleetSpec, ServerSpec, SimFile
from orchestrator.simulator.generate import with_canary
from tests.support import (
    QUARANTINE_ALL,
    Outcome,
    Sim,
    edit_inventory,
    small_account,
    write_policy,
)

FIXTURE = "public_html/vendor/phpmailer/tests/fixtures/x.php"
CANARY = {"account": "clamcanary", "path": "public_html/eicar.txt", "virus": "*EICAR*"}
NOT_DETECTED = "canary not detected on sim01: its clean verdicts are unproven"


def accepted_yaml(tmp_path: Path, expires: date, *extra: str) -> Path:
    path = tmp_path / "accepted.yaml"
    entries = [
        '  - when: {server: sim01, path: "*/public_html/vendor/*/tests/*", virus: "Php.Trojan.*"}\n'
        '    reason: "PHPMailer test fixture (OPS-123)"\n'
        f"    expires: {expires.isoformat()}\n",
        *extra,
    ]
    path.write_text("accepted:\n" + "".join(entries))
    return path


def fixture_fleet() -> FleetSpec:
    alice = small_account("alice")
    alice = alice.__class__(
        user="alice", files=(*alice.files, SimFile(FIXTURE, 700, "Php.Trojan.PHPMailer-2"))
    )
    server = ServerSpec("sim01", accounts=(alice, small_account("bob")))
    return FleetSpec(servers=(server,), scan_seconds=0.3, seed=5)


def files_of(outcome: Outcome, account: str) -> list[dict[str, Any]]:
    return [
        f for t in outcome.report["targets"] if t["account"] == account for f in t["infected_files"]
    ]


def test_an_accepted_file_keeps_its_target_clean_until_it_expires_then_counts_again(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(fixture_fleet())
    policy = write_policy(tmp_path, QUARANTINE_ALL)  # destructive, and not a dry run
    accepted = accepted_yaml(tmp_path, date.today() + timedelta(days=30))
    first = cli("run", sim.inventory, "--policy", policy, "--accepted", accepted)
    assert first.code == 0, first.stdout
    (fixture,) = files_of(first, "alice")
    assert fixture["accepted"] == {
        "reason": "PHPMailer test fixture (OPS-123)",
        "expires": (date.today() + timedelta(days=30)).isoformat(),
    }
    assert (fixture["action"], fixture["outcome"]) == ("report", "not-requested")
    assert "policy is not consulted" in fixture["message"]
    summary = first.report["summary"]
    assert (summary["infected_files"], summary["accepted"], summary["clean"]) == (0, 1, 2)
    assert sim.fleet.calls("sim01", function="disinfect_files") == 0
    assert sim.fleet.account_state("sim01", "alice").infected() == {
        FIXTURE: "Php.Trojan.PHPMailer-2"
    }
    assert "accepted: 1 infected file(s)" in first.stdout

    # From the expires day on, the same file is a finding again: exit 1, a warning, the policy.
    accepted_yaml(tmp_path, date.today())
    edit_inventory(
        sim.inventory, lambda d: d["settings"].update(accepted=str(accepted.relative_to(tmp_path)))
    )
    second = cli("run", sim.inventory, "--policy", policy)  # settings.accepted, relative path
    assert second.code == 1
    (fixture,) = files_of(second, "alice")
    assert fixture["accepted"] is None
    assert fixture["expired_acceptance"]["expires"] == date.today().isoformat()
    assert fixture["outcome"] == "quarantined"
    expected = (
        f"acceptance expired on {date.today().isoformat()} (PHPMailer test fixture (OPS-123))"
    )
    assert expected in second.stdout  # a "needs attention" line
    assert "counts as a finding again" in second.stdout


def test_entries_that_matched_nothing_are_listed_and_validate_lists_expiring_ones(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(fixture_fleet())
    soon = date.today() + timedelta(days=5)
    stale = (
        "  - when: {account: carol}\n"
        "    reason: carol left in 2024\n"
        f"    expires: {soon.isoformat()}\n"
    )
    accepted = accepted_yaml(tmp_path, date.today() + timedelta(days=400), stale)
    result = cli("run", sim.inventory, "--accepted", accepted)
    assert result.code == 0
    info = result.report["run"]["accepted"]
    assert (info["source"], info["entries"]) == (str(accepted), 2)
    assert info["stale"] == [
        {
            "line": 5,
            "reason": "carol left in 2024",
            "expires": soon.isoformat(),
            "when": {"account": "carol"},
        }
    ]
    assert f"{accepted}:5: matched no infected file this run" in result.stdout
    checked = cli("validate", sim.inventory, "--accepted", accepted)
    assert checked.code == 0
    assert f"{accepted}: OK, 2 accepted-findings entries" in checked.stdout
    assert (
        f"warning: {accepted}:5: expires {soon.isoformat()} (in 5 days): carol left in 2024"
        in checked.stdout
    )
    assert f"{accepted}:2:" not in checked.stdout, "400 days away is not expiring"


def canary_fleet(*, blind: str | None = None) -> FleetSpec:
    """Two servers, each a clean account, one with a web shell, and a canary account."""
    servers = tuple(
        ServerSpec(
            name,
            accounts=(small_account("alice"), small_account("bob", infected=name == "sim01")),
            faults=Faults(blind=name == blind),
        )
        for name in ("sim01", "sim02")
    )
    return with_canary(FleetSpec(servers=servers, scan_seconds=0.3, seed=9))


def test_a_blind_server_makes_its_clean_targets_unverified_and_the_run_exit_2(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = simulate(canary_fleet(blind="sim01"), server_keys={"canary": CANARY})
    night = cli("run", sim.inventory)
    assert night.code == 2, night.stdout
    assert NOT_DETECTED in night.stdout
    targets = night.targets()
    # sim01's web shell went unseen: "clean", but unproven; sim02 is unaffected.
    assert {k[1]: (t["status"], t["verified"]) for k, t in targets.items() if k[0] == "sim01"} == {
        "clamcanary": ("clean", False),
        "alice": ("clean", False),
        "bob": ("clean", False),
    }
    assert {k[1]: (t["status"], t["verified"]) for k, t in targets.items() if k[0] == "sim02"} == {
        "clamcanary": ("clean", True),
        "alice": ("clean", True),
        "bob": ("clean", True),
    }
    summary = night.report["summary"]
    assert (summary["unverified"], summary["infected_files"], summary["exit_code"]) == (3, 0, 2)
    rows = {(r["server"], r["account"]): r["verified"] for r in night.csv_rows("targets.csv")}
    assert rows[("sim01", "bob")] == "false" and rows[("sim02", "bob")] == "true"
    html = (night.out / "report.html").read_text()
    assert f'<div class="banner">{NOT_DETECTED}' in html
    # clamd fixed: --only-failed rescans the unproven targets (and the canary) and finds the shell.
    sim.fleet.set_faults("sim01", Faults())
    again = cli("run", sim.inventory, "--only-failed", night.out / "report.json")
    assert again.code == 1
    rescanned = again.targets()
    assert set(rescanned) == {("sim01", a, "home") for a in ("alice", "bob", "clamcanary")}
    assert rescanned[("sim01", "bob", "home")]["status"] == "infected"
    assert rescanned[("sim01", "alice", "home")]["verified"] is True


def test_the_canary_file_is_never_disinfected_but_a_shell_beside_it_is(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = canary_fleet()
    canary_account = spec.servers[0].account("clamcanary")
    assert canary_account is not None
    shell = SimFile("public_html/shell.php", 900, "Php.Webshell-1")
    eicar_elsewhere = SimFile("public_html/eicar.txt", 68, "Eicar-Signature")
    spec = FleetSpec(
        servers=(
            ServerSpec(
                "sim01",
                accounts=(
                    small_account("alice").__class__(
                        user="alice", files=(*small_account("alice").files, eicar_elsewhere)
                    ),
                    canary_account.__class__(
                        user="clamcanary",
                        files=(*canary_account.files, shell),
                        scan_seconds=canary_account.scan_seconds,
                    ),
                ),
            ),
        ),
        scan_seconds=0.3,
        seed=9,
    )
    sim = simulate(spec, server_keys={"canary": CANARY})
    policy = write_policy(tmp_path, QUARANTINE_ALL)
    result = cli("run", sim.inventory, "--policy", policy)
    assert result.code == 1
    canary_files = {f["path"]: f for f in files_of(result, "clamcanary")}
    eicar = canary_files["/home/clamcanary/public_html/eicar.txt"]
    assert (eicar.get("canary"), eicar["action"], eicar["outcome"]) == (
        True,
        "report",
        "not-requested",
    )
    assert canary_files["/home/clamcanary/public_html/shell.php"]["outcome"] == "quarantined"
    state = sim.fleet.account_state("sim01", "clamcanary")
    assert state.files["public_html/eicar.txt"].infected_by == "Eicar-Signature"
    assert "public_html/shell.php" not in state.files
    # An EICAR file in another account is an ordinary finding: the policy applies to it.
    (alice_eicar,) = files_of(result, "alice")
    assert alice_eicar["outcome"] == "quarantined" and "canary" not in alice_eicar
    assert result.report["summary"]["infected_files"] == 2


def test_cpanel_logins_of_a_blind_host_are_unverified_by_its_canary_entry(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = simulate(canary_fleet(blind="sim02"), auth="cpanel_token", server_keys={"canary": CANARY})
    result = cli("run", sim.inventory)
    assert result.code == 1  # sim01's shell is seen: that host's engine works
    canaries = result.report["run"]["canaries"]
    assert canaries["sim02-alice"]["by"] == "sim02-clamcanary"
    verified = {t["server"]: t["verified"] for t in result.report["targets"]}
    assert verified == {
        "sim01-alice": True,
        "sim01-bob": None,  # infected: no clean verdict to prove
        "sim01-clamcanary": True,
        "sim02-alice": False,
        "sim02-bob": False,
        "sim02-clamcanary": False,
    }
    assert (
        "canary not detected on sim02-clamcanary: the clean verdicts of sim02-alice,"
        " sim02-bob, sim02-clamcanary are unproven"
    ) in result.stdout
