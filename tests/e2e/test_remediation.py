"""End to end: remediation policy against the simulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.simulator import (
    AccountSpec,
    Faults,
    FleetSpec,
    ServerSpec,
    SimFile,
    generate_fleet,
)
from tests.support import QUARANTINE_ALL, Outcome, Sim, write_policy


def infected_fleet(seed: int = 21, accounts: int = 3):  # type: ignore[no-untyped-def]
    return generate_fleet(
        servers=1, accounts=accounts, infected_ratio=1.0, seed=seed, scan_seconds=0.3
    )


@pytest.mark.parametrize("auth", ["whm", "cpanel_token"])
def test_policy_disinfects_exactly_what_it_chose_and_the_next_scan_is_clean(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path, auth: str
) -> None:
    sim = simulate(infected_fleet(), auth=auth)
    policy = write_policy(tmp_path, QUARANTINE_ALL)
    first = cli("run", sim.inventory, "--policy", policy)
    assert first.code == 1
    files = [f for t in first.report["targets"] for f in t["infected_files"]]
    assert files
    for f in files:
        expected_action = "cleanse_mailbox" if "/mail/" in f["path"] else "quarantine"
        assert f["action"] == expected_action
        assert (
            f["outcome"]
            == {"quarantine": "quarantined", "cleanse_mailbox": "mailbox-cleansed"}[expected_action]
        )
    outcomes = first.report["summary"]["outcomes"]
    assert sum(outcomes.values()) == len(files)
    csv_outcomes = [(r["path"], r["action"], r["outcome"]) for r in first.csv_rows("infected.csv")]
    assert csv_outcomes == [(f["path"], f["action"], f["outcome"]) for f in files]
    if auth == "whm":
        # nested JSON cannot go through uapi_cpanel: the session route carries it
        assert sim.fleet.calls("sim01", function="create_user_session") == len(
            first.report["targets"]
        )
    second = cli("run", sim.inventory, "--policy", policy)
    assert {t["status"] for t in second.report["targets"]} == {"clean"}
    assert second.code == 0


def test_no_policy_and_dry_run_send_nothing(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(infected_fleet(seed=22))
    plain = cli("run", sim.inventory)
    assert plain.code == 1
    dry = cli("run", sim.inventory, "--policy", write_policy(tmp_path, QUARANTINE_ALL), "--dry-run")
    assert dry.code == 1
    assert sim.fleet.calls("sim01", function="disinfect_files") == 0
    assert sim.fleet.calls("sim01", function="create_user_session") == 0
    for f in (f for t in dry.report["targets"] for f in t["infected_files"]):
        assert f["outcome"] == "not-requested"
        assert f["action"] in ("quarantine", "cleanse_mailbox")
    assert dry.report["run"]["dry_run"] is True


def test_ignore_rule_leaves_the_file_and_reports_no_action(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(infected_fleet(seed=23, accounts=2))
    policy = write_policy(tmp_path, "default: ignore\n")
    result = cli("run", sim.inventory, "--policy", policy)
    files = [f for t in result.report["targets"] for f in t["infected_files"]]
    assert files
    assert {f["outcome"] for f in files} == {"no-action"}
    again = cli("run", sim.inventory)
    assert {t["status"] for t in again.report["targets"]} == {"infected"}, (
        "ignored files are still there"
    )


def test_destructive_cap_sends_nothing_for_a_target_over_it(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(infected_fleet(seed=24))
    policy = write_policy(tmp_path, "default: delete\nlimits: {max_destructive_per_account: 0}\n")
    result = cli("run", sim.inventory, "--policy", policy)
    assert sim.fleet.calls("sim01", function="disinfect_files") == 0
    for target in result.report["targets"]:
        assert target["status"] == "infected"
        assert target["error"]["kind"] == "policy_limit"
        assert {f["outcome"] for f in target["infected_files"]} == {"not-requested"}
    # the files are untouched: the next scan still finds every one of them
    again = cli("run", sim.inventory)
    assert [len(t["infected_files"]) for t in again.report["targets"]] == [
        len(t["infected_files"]) for t in result.report["targets"]
    ]


def test_run_wide_cap_stops_destruction_once_spent(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(infected_fleet(seed=25, accounts=4))
    policy = write_policy(tmp_path, "default: quarantine\nlimits: {max_destructive_per_run: 1}\n")
    result = cli("run", sim.inventory, "--policy", policy)
    limited = [
        t for t in result.report["targets"] if (t["error"] or {}).get("kind") == "policy_limit"
    ]
    sent = [t for t in result.report["targets"] if not t["error"]]
    destructive_sent = sum(len(t["infected_files"]) for t in sent)
    assert destructive_sent <= 1
    assert limited
    assert sim.fleet.calls("sim01", function="disinfect_files") == len(sent)


def test_cleanse_mailbox_outside_mail_is_an_error_outcome_and_never_sent(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(infected_fleet(seed=26))
    policy = write_policy(tmp_path, "default: cleanse_mailbox\n")
    result = cli("run", sim.inventory, "--policy", policy)
    for f in (f for t in result.report["targets"] for f in t["infected_files"]):
        if "/mail/" in f["path"]:
            assert f["outcome"] == "mailbox-cleansed"
        else:
            assert f["outcome"] == "error"
            assert "mail/" in (f["message"] or "")


# ---------------------------------------------------------------------------------------------
# A mixed policy checked against what the server did to each file; deadlines; validate


QUARANTINE = "quarantine_clamavconnector"

MIXED_POLICY = """\
default: report
rules:
  - name: test-signatures
    when: {virus: "Eicar-*"}
    action: ignore
  - name: mail
    when: {path: "*/mail/*"}
    action: cleanse_mailbox
  - name: bob-is-compromised
    when: {account: "bob"}
    action: delete
  - name: web
    when: {path: "*/public_html/*"}
    action: quarantine
limits:
  max_destructive_per_account: 10
"""

#: relpath -> (virus, expected action, expected outcome), per account
EXPECTED: dict[str, dict[str, tuple[str, str, str]]] = {
    "alice": {
        "public_html/Q&A/shell.php": ("Php.Webshell-1", "quarantine", "quarantined"),
        "public_html/eicar.php": ("Eicar-Signature", "ignore", "no-action"),
        "tmp/eicar.com": ("Eicar-Test-2", "ignore", "no-action"),
        "mail/example.com/info/inbox": (
            "Html.Phishing.Bank-2",
            "cleanse_mailbox",
            "mailbox-cleansed",
        ),
        "bin/miner": ("Unix.Trojan.Mirai-9", "report", "not-requested"),
    },
    "bob": {
        "backups/site & db.tar.gz": ("Win.Trojan.Agent-1", "delete", "deleted"),
        "public_html/x.php": ("Php.Trojan.Shell-3", "delete", "deleted"),
    },
    "carol": {
        "bin/miner": ("Unix.Trojan.Mirai-9", "report", "not-requested"),
    },
}


def mixed_fleet() -> FleetSpec:
    accounts = []
    for user, files in EXPECTED.items():
        sim_files = [SimFile("public_html/index.php", 3000), SimFile("etc/passwd", 300)]
        for relpath, (virus, _, _) in files.items():
            if relpath.startswith("mail/"):
                sim_files.append(SimFile(relpath, 3000, None, [None, virus, None]))
            else:
                sim_files.append(SimFile(relpath, 1500, virus))
        accounts.append(AccountSpec(user=user, files=tuple(sim_files)))
    return FleetSpec(servers=(ServerSpec("sim01", accounts=tuple(accounts)),), scan_seconds=0.3)


@pytest.mark.parametrize("auth", ["whm", "cpanel_token"])
def test_a_mixed_policy_does_exactly_what_its_first_matching_rules_say_on_the_server(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    auth: str,
) -> None:
    sim = simulate(mixed_fleet(), auth=auth)
    result = cli("run", sim.inventory, "--policy", write_policy(tmp_path, MIXED_POLICY))
    assert result.code == 1

    # the report: every file with the first matching rule's action and cPanel's outcome
    reported = {
        (t["account"], f["path"]): (f["virus"], f["action"], f["outcome"])
        for t in result.report["targets"]
        for f in t["infected_files"]
    }
    assert reported == {
        (user, f"/home/{user}/{relpath}"): expected
        for user, files in EXPECTED.items()
        for relpath, expected in files.items()
    }
    assert [t["error"] for t in result.report["targets"]] == [None, None, None]
    csv_rows = {(r["account"], r["path"]): (r["virus"], r["action"], r["outcome"]) for r in
                result.csv_rows("infected.csv")}  # fmt: skip
    assert csv_rows == reported
    outcomes: dict[str, int] = {}
    for _, _, outcome in reported.values():
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert result.report["summary"]["outcomes"] == outcomes

    # the server: each file got exactly that action (escaped paths matched, nothing extra)
    for user, files in EXPECTED.items():
        state = sim.fleet.account_state("sim01", user)
        still = state.infected()
        for relpath, (_, action, _) in files.items():
            if action == "quarantine":
                assert relpath not in state.files
                assert f"{QUARANTINE}/{relpath.replace('/', '_')}" in state.files
            elif action == "delete":
                assert relpath not in state.files
            elif action == "cleanse_mailbox":
                assert relpath in state.files and relpath not in still
                messages = state.files[relpath].mail_messages or []
                assert list(messages) == [None, None], "only the infected message went"
            else:  # ignore, report: untouched
                assert still.get(relpath) == files[relpath][0]
        assert "public_html/index.php" in state.files
    # carol's only file is report-only: no disinfect_files request at all for her
    sent = {u: sim.fleet.calls("sim01", function="disinfect_files", account=u) for u in EXPECTED}
    assert sent == {"alice": 1, "bob": 1, "carol": 0}

    # and a second scan finds exactly what was left in place
    again = cli("run", sim.inventory)
    left = {(t["account"], f["path"]) for t in again.report["targets"] for f in t["infected_files"]}
    assert left == {
        (user, f"/home/{user}/{relpath}")
        for user, files in EXPECTED.items()
        for relpath, (_, action, _) in files.items()
        if action in ("ignore", "report")
    }


def test_a_long_transient_none_is_waited_through_and_the_done_record_is_kept(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    """The task starts 1 s after queueing: many polls answer `none` first (cpanel-api.md 3.6)."""
    alice = AccountSpec(
        user="alice",
        files=(SimFile("public_html/a.php", 900, "Php.Webshell-1"), SimFile("tmp/b", 90, "X-1")),
    )
    server = ServerSpec("sim01", accounts=(alice,), faults=Faults(disinfect_start_delay=1.0))
    sim = simulate(FleetSpec(servers=(server,), scan_seconds=0.3))
    result = cli("run", sim.inventory, "--policy", write_policy(tmp_path, "default: quarantine\n"))
    (target,) = result.report["targets"]
    assert target["error"] is None
    assert {f["outcome"] for f in target["infected_files"]} == {"quarantined"}
    assert sim.fleet.calls("sim01", function="check_disinfection_status") >= 3
    assert sim.fleet.calls("sim01", function="disinfect_files") == 1
    files = sim.fleet.account_state("sim01", "alice").files
    assert "public_html/a.php" not in files and "tmp/b" not in files
    assert {f"{QUARANTINE}/public_html_a.php", f"{QUARANTINE}/tmp_b"} <= set(files)


@pytest.mark.parametrize(
    ("fault", "scan_seconds", "timeouts"),
    [
        ("stall", 1.0, {"request": 5, "scan": 60, "stall": 0.6, "disinfection": 30}),
        ("deadline", 4.0, {"request": 5, "scan": 1.0, "stall": 30, "disinfection": 30}),
    ],
)
def test_no_disinfection_is_requested_for_a_scan_that_did_not_complete(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    fault: str,
    scan_seconds: float,
    timeouts: dict[str, float],
) -> None:
    files = (
        SimFile("public_html/a.php", 900, "Php.Webshell-1"),
        *(SimFile(f"public_html/f{i}.js", 20_000) for i in range(20)),
    )
    victim = AccountSpec(user="alice", files=files, scan_seconds=scan_seconds)
    faults = Faults(stall_accounts=frozenset({"alice"})) if fault == "stall" else Faults()
    sim = simulate(
        FleetSpec(servers=(ServerSpec("sim01", accounts=(victim,), faults=faults),)),
        settings={"timeouts": timeouts},
    )
    result = cli("run", sim.inventory, "--policy", write_policy(tmp_path, "default: delete\n"))
    (target,) = result.report["targets"]
    assert target["status"] == "failed"
    assert target["error"]["kind"] == ("stalled" if fault == "stall" else "timeout")
    assert sim.fleet.calls("sim01", function="list_infected_files") == 0
    assert sim.fleet.calls("sim01", function="disinfect_files") == 0
    assert sim.fleet.calls("sim01", function="create_user_session") == 0
    assert result.code == 2


def test_validate_policy_refuses_a_literal_cleanse_path_outside_mail(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(mixed_fleet())
    good = cli("validate", sim.inventory, "--policy", write_policy(tmp_path, MIXED_POLICY))
    assert good.code == 0
    assert "4 rules" in good.stdout and "default report" in good.stdout
    bad = write_policy(
        tmp_path,
        "rules:\n  - when: {path: /home/alice/public_html/x.php}\n    action: cleanse_mailbox\n",
    )
    refused = cli("validate", sim.inventory, "--policy", bad)
    assert refused.code == 3
    (line,) = [x for x in refused.stderr.splitlines() if x.strip()]
    assert f"{bad}:2:" in line and "rules[0].when.path" in line and "mail/" in line
    run = cli("run", sim.inventory, "--policy", bad)
    assert run.code == 3
    assert sim.fleet.calls("sim01") == 0, "a refused policy scans nothing"
