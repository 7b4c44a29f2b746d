"""Issue 3 acceptance gaps: a mixed policy's exact actions checked against what the server did
to its files (not only against the report), a long transient `none`, no disinfection for a scan
that did not complete, `validate --policy`, and the first-match property through the workflow
(HTML-escaped paths included) rather than through `policy.plan` alone.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator import workflow
from orchestrator.config import Policy, Rule
from orchestrator.events import (
    ActionsPlanned,
    Disinfect,
    Finish,
    InfectedListReply,
    ListInfected,
    PlanActions,
    ScanStarted,
    ScanStatusReply,
    StatusData,
    Tick,
)
from orchestrator.model import Action, Outcome, ScanType, Target
from orchestrator.policy import DestructiveBudget, in_mail
from orchestrator.runner import RunOptions, _plan
from orchestrator.simulator import AccountSpec, Faults, FleetSpec, ServerSpec, SimFile

from .conftest import Outcome as RunOutcome
from .conftest import Sim

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


def write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("auth", ["whm", "cpanel_token"])
def test_a_mixed_policy_does_exactly_what_its_first_matching_rules_say_on_the_server(
    simulate: Callable[..., Sim],
    cli: Callable[..., RunOutcome],
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
    simulate: Callable[..., Sim], cli: Callable[..., RunOutcome], tmp_path: Path
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
    cli: Callable[..., RunOutcome],
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
    simulate: Callable[..., Sim], cli: Callable[..., RunOutcome], tmp_path: Path
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


# ---------------------------------------------------------------------------------------------
# Property: through the workflow, what disinfect_files gets is exactly the first matching rule


TARGET = Target("web01", "alice", ScanType.HOME)
CFG = workflow.WorkflowConfig(poll_min=1, poll_max=5)
# Paths as cPanel reports them: HTML-escaped. The policy sees them unescaped.
PATHS = st.sampled_from(
    [
        "/home/alice/public_html/x.php",
        "/home/alice/public_html/Q&amp;A/shell.php",
        "/home/alice/public_html/tom&#x27;s-blog/x.php",
        "/home/alice/mail/inbox",
        "/home/alice/mail/.Q&amp;A folder/inbox",
        "/home/alice/tmp/a.out",
        "/home/alice/backups/site &amp; db.tar.gz",
    ]
)
VIRUSES = st.sampled_from(["Eicar-Signature", "Php.Webshell-1", "Html.Phishing.Bank-2", "A&amp;B"])
GLOBS = st.sampled_from(
    ["*", "*/mail/*", "*/public_html/*", "*Q&A*", "*&amp;*", "Eicar-*", "Php.*", "*'*", "A&B"]
)
RULES = st.builds(
    Rule,
    action=st.sampled_from(list(Action)),
    virus=st.none() | GLOBS,
    path=st.none() | GLOBS,
    account=st.none() | st.sampled_from(["alice", "bob", "a*"]),
    scan_type=st.none() | st.sampled_from(list(ScanType)),
)
POLICIES = st.builds(
    Policy, default=st.sampled_from(list(Action)), rules=st.lists(RULES, max_size=5).map(tuple)
)
LISTINGS = st.lists(st.tuples(PATHS, VIRUSES), max_size=6, unique_by=lambda f: f[0])


def first_match(policy: Policy, path: str, virus: str) -> Action:
    from fnmatch import fnmatchcase

    for rule in policy.rules:
        if all(
            (
                rule.virus is None or fnmatchcase(virus, rule.virus),
                rule.path is None or fnmatchcase(path, rule.path),
                rule.account is None or fnmatchcase(TARGET.account, rule.account),
                rule.server is None or fnmatchcase(TARGET.server, rule.server),
                rule.scan_type in (None, TARGET.scan_type),
            )
        ):
            return rule.action
    return policy.default


def drive(policy: Policy, listing: list[tuple[str, str]], dry_run: bool) -> tuple[Any, Any]:
    """Start, complete, list `listing`; plan as the runner does; return (command, state)."""
    state, _ = workflow.begin(TARGET, CFG, 0)
    state, _ = workflow.step(state, ScanStatusReply(None), 0)
    state, _ = workflow.step(state, ScanStarted(), 0)
    state, _ = workflow.step(state, Tick(), 1)
    state, cmd = workflow.step(state, ScanStatusReply(StatusData(True, 100, 5, 50, 5)), 1)
    assert cmd == ListInfected()
    state, cmd = workflow.step(state, InfectedListReply(tuple(listing)), 1)
    if not listing:
        return cmd, state
    assert isinstance(cmd, PlanActions)
    run = SimpleNamespace(
        options=RunOptions(policy=policy, dry_run=dry_run),
        budget=DestructiveBudget(policy.limits),
        sent={},
    )
    planned: ActionsPlanned = _plan(cast(Any, run), TARGET, cmd.files)
    return workflow.step(state, planned, 1)[::-1]


@given(policy=POLICIES, listing=LISTINGS)
def test_disinfect_files_gets_exactly_the_first_matching_rules_actions(
    policy: Policy, listing: list[tuple[str, str]]
) -> None:
    cmd, state = drive(policy, listing, dry_run=False)
    expected: dict[str, Action] = {}
    for raw_path, raw_virus in listing:
        path, virus = html.unescape(raw_path), html.unescape(raw_virus)
        action = first_match(policy, path, virus)
        if action is Action.REPORT:
            continue
        if action is Action.CLEANSE_MAILBOX and not in_mail(TARGET.account, path):
            continue  # refused before sending: a per-file error outcome
        expected[path] = action
    if expected:
        assert isinstance(cmd, Disinfect), cmd
        assert dict(cmd.actions) == expected
    else:
        assert isinstance(cmd, Finish), "nothing to send: no disinfect_files request"
    for f in workflow.infected_files(state):
        assert f.action is first_match(policy, f.path, f.virus)
        if f.path not in expected:
            assert f.outcome in (Outcome.NOT_REQUESTED, Outcome.ERROR)


@given(policy=POLICIES, listing=LISTINGS)
def test_a_dry_run_never_reaches_disinfect_files_whatever_the_policy(
    policy: Policy, listing: list[tuple[str, str]]
) -> None:
    cmd, _ = drive(policy, listing, dry_run=True)
    assert isinstance(cmd, Finish)
    for f in cmd.verdict.files:
        assert f.outcome is Outcome.NOT_REQUESTED
        assert f.action is first_match(policy, f.path, f.virus)
