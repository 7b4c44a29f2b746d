"""End to end: remediation policy against the simulator (issue: policy-driven disinfection)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.simulator import generate_fleet

from .conftest import QUARANTINE_ALL, Outcome, Sim


def write_policy(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


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
