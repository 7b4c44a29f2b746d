"""The policy: loading with exact errors, first-match decisions, plans, the destructive budget."""

from __future__ import annotations

import fnmatch
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import REPORT_ONLY, Limits, Policy, Rule
from orchestrator.config.policy import MAIL_ONLY, load_policy
from orchestrator.engine.policy import (
    DestructiveBudget,
    Plan,
    PlannedFile,
    decide,
    in_mail,
    plan,
)
from orchestrator.errors import ConfigError
from orchestrator.model import Action, Outcome, ScanType, Target

ROOT = Path(__file__).resolve().parents[2]
ALICE = Target("web01", "alice", ScanType.HOME)
SHELL = "/home/alice/public_html/x.php"
INBOX = "/home/alice/mail/example.com/alice/inbox"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def sent_actions(decided: Plan) -> dict[str, Action]:
    """What disinfect_files would get from this plan: path -> action of the files to send."""
    return {f.path: f.action for f in decided.files if f.send}


def load(text: str) -> Policy:
    Path("policy.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    return load_policy("policy.yaml")


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(text)
    return str(info.value)


# -- loading -----------------------------------------------------------------------------------


def test_the_design_example_loads() -> None:
    policy = load("""
        default: report
        rules:
          - name: test-signatures
            when: {virus: "Eicar-*"}
            action: ignore
          - when: {path: "*/mail/*", scan_type: mail}
            action: cleanse_mailbox
          - when: {path: "*/public_html/*"}
            action: quarantine
        limits:
          max_destructive_per_account: 100
          max_destructive_per_run: 1000
    """)
    assert policy == Policy(
        default=Action.REPORT,
        rules=(
            Rule(Action.IGNORE, name="test-signatures", virus="Eicar-*"),
            Rule(Action.CLEANSE_MAILBOX, path="*/mail/*", scan_type=ScanType.MAIL),
            Rule(Action.QUARANTINE, path="*/public_html/*"),
        ),
        limits=Limits(100, 1000),
        source="policy.yaml",
    )


def test_the_shipped_example_is_report_only() -> None:
    policy = load_policy(ROOT / "policy.example.yaml")
    assert (policy.default, policy.rules) == (Action.REPORT, ())
    assert policy.limits == Limits(100, 1000)
    files = [(SHELL, "Php.Webshell-1"), (INBOX, "Eicar-Signature")]
    assert sent_actions(plan(policy, ALICE, files, dry_run=False)) == {}


def test_the_shipped_example_uncommented_is_cpanels_ui_default() -> None:
    # The commented-out rules are the lines "  # - ..." and "  #   ...".
    text = (ROOT / "policy.example.yaml").read_text()
    lines = [
        line.replace("# ", "", 1) if line.startswith(("  # -", "  #   ")) else line
        for line in text.splitlines()
    ]
    policy = load("\n".join(lines))
    assert [r.action for r in policy.rules] == [
        Action.IGNORE,
        Action.CLEANSE_MAILBOX,
        Action.QUARANTINE,
    ]
    assert decide(policy, ALICE, INBOX, "Php.Trojan") is Action.CLEANSE_MAILBOX
    assert decide(policy, ALICE, SHELL, "Php.Trojan") is Action.QUARANTINE
    assert decide(policy, ALICE, SHELL, "Eicar-Signature") is Action.IGNORE


def test_minimal_policies() -> None:
    assert load("default: quarantine\n") == Policy(Action.QUARANTINE, source="policy.yaml")
    assert load("rules:\n").rules == ()
    assert load("limits: {max_destructive_per_run: null}\n").limits == Limits()
    assert load("rules:\n  - action: delete\n").rules == (Rule(Action.DELETE),)


def test_cleanse_mailbox_with_a_glob_or_a_mail_path_is_allowed() -> None:
    policy = load("""
        rules:
          - {when: {path: "/home/*/public_html/*"}, action: cleanse_mailbox}
          - {when: {path: /home/alice/mail/inbox}, action: cleanse_mailbox}
    """)
    assert len(policy.rules) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "default: report\nrule: []\n",
            "policy.yaml:2: rule: unknown key 'rule' (allowed: default, rules, limits)",
            id="unknown-top-key",
        ),
        pytest.param(
            "rules:\n  - when: {virus: x, file: y}\n    action: delete\n",
            "policy.yaml:2: rules[0].when.file: unknown key 'file' (allowed: virus, path,"
            " account, server, scan_type)",
            id="unknown-when-key",
        ),
        pytest.param(
            "rules:\n  - when: {virus: x}\n    do: delete\n",
            "policy.yaml:3: rules[0].do: unknown key 'do' (allowed: name, when, action)",
            id="unknown-rule-key",
        ),
        pytest.param(
            "default: remove\n",
            "policy.yaml:1: default: expected one of report | ignore | quarantine | delete |"
            " cleanse_mailbox, got the string 'remove'",
            id="bad-default",
        ),
        pytest.param(
            "rules:\n  - when: {virus: x}\n",
            "policy.yaml:2: rules[0].action: is required",
            id="no-action",
        ),
        pytest.param(
            "rules:\n  - when: {scan_type: www}\n    action: delete\n",
            "policy.yaml:2: rules[0].when.scan_type: expected one of home | mail | public_html |"
            " public_ftp, got the string 'www'",
            id="bad-scan-type",
        ),
        pytest.param(
            "rules:\n  - when: {virus: [a, b]}\n    action: delete\n",
            "policy.yaml:2: rules[0].when.virus: expected a string, got a list",
            id="glob-not-a-string",
        ),
        pytest.param(
            "rules:\n  - when:\n      path: /home/alice/public_html/x.php\n"
            "    action: cleanse_mailbox\n",
            f"policy.yaml:3: rules[0].when.path: {MAIL_ONLY}, and this path is not under a"
            " mail/ directory",
            id="cleanse-literal-outside-mail",
        ),
        pytest.param(
            "rules:\n  - {name: a, action: report}\n  - {name: a, action: delete}\n",
            "policy.yaml:3: rules[1].name: duplicate rule name (first at line 2)",
            id="duplicate-rule-name",
        ),
        pytest.param(
            "limits: {max_destructive_per_account: -1}\n",
            "policy.yaml:1: limits.max_destructive_per_account: expected an integer >= 0,"
            " got -1 (an integer)",
            id="negative-limit",
        ),
        pytest.param(
            "limits: {max_destructive_per_run: 1.5}\n",
            "policy.yaml:1: limits.max_destructive_per_run: expected an integer >= 0,"
            " got 1.5 (a decimal number)",
            id="fractional-limit",
        ),
        pytest.param(
            "limits: {max_destructive: 1}\n",
            "policy.yaml:1: limits.max_destructive: unknown key 'max_destructive' (allowed:"
            " max_destructive_per_account, max_destructive_per_run)",
            id="unknown-limit",
        ),
        pytest.param(
            "default: report\ndefault: delete\n",
            "policy.yaml:2: default: duplicate key (first at line 1)",
            id="duplicate-key",
        ),
        pytest.param(
            "rules:\n  - {action: delete\n",
            "policy.yaml:3: invalid YAML: while parsing a flow mapping, expected ',' or '}',"
            " but got '<stream end>'",
            id="yaml-syntax",
        ),
        pytest.param(
            "", "policy.yaml: the policy is empty: write at least `default: report`", id="empty"
        ),
        pytest.param(
            "- delete\n", "policy.yaml:1: expected a mapping, got a list", id="not-a-mapping"
        ),
    ],
)
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    assert error(text) == expected


# -- deciding and planning -----------------------------------------------------------------------


def test_first_matching_rule_wins_and_every_when_key_must_match() -> None:
    policy = Policy(
        default=Action.REPORT,
        rules=(
            Rule(Action.IGNORE, virus="Eicar-*", server="web*"),
            Rule(Action.DELETE, account="bob"),
            Rule(Action.QUARANTINE, path="*/public_html/*", scan_type=ScanType.PUBLIC_HTML),
            Rule(Action.QUARANTINE, path="*/PUBLIC_HTML/*"),
        ),
    )
    html = Target("web01", "alice", ScanType.PUBLIC_HTML)
    assert decide(policy, ALICE, SHELL, "Eicar-Signature") is Action.IGNORE
    assert decide(policy, Target("db1", "bob", ScanType.HOME), SHELL, "Eicar-x") is Action.DELETE
    assert decide(policy, html, SHELL, "Php.Webshell") is Action.QUARANTINE
    assert decide(policy, ALICE, SHELL, "Php.Webshell") is Action.REPORT  # scan_type is exact
    assert decide(policy, ALICE, SHELL, "eicar-signature") is Action.REPORT  # case-sensitive


def test_plan_sends_only_what_the_policy_asks() -> None:
    policy = Policy(
        default=Action.QUARANTINE,
        rules=(
            Rule(Action.REPORT, virus="Heuristics.*"),
            Rule(Action.IGNORE, virus="Eicar-*"),
            Rule(Action.CLEANSE_MAILBOX, virus="Mail.*"),
        ),
    )
    files = [
        (SHELL, "Php.Webshell"),
        ("/home/alice/a.exe", "Heuristics.Broken"),
        ("/home/alice/eicar.com", "Eicar-Signature"),
        (INBOX, "Mail.Phish"),
        ("/home/alice/public_html/mail.php", "Mail.Phish"),
    ]
    decided = plan(policy, ALICE, files, dry_run=False)
    assert decided.files == (
        PlannedFile(SHELL, "Php.Webshell", Action.QUARANTINE, True, None, None),
        PlannedFile(
            "/home/alice/a.exe",
            "Heuristics.Broken",
            Action.REPORT,
            False,
            Outcome.NOT_REQUESTED,
            None,
        ),
        PlannedFile("/home/alice/eicar.com", "Eicar-Signature", Action.IGNORE, True, None, None),
        PlannedFile(INBOX, "Mail.Phish", Action.CLEANSE_MAILBOX, True, None, None),
        PlannedFile(
            "/home/alice/public_html/mail.php",
            "Mail.Phish",
            Action.CLEANSE_MAILBOX,
            False,
            Outcome.ERROR,
            MAIL_ONLY,
        ),
    )
    assert sent_actions(decided) == {
        SHELL: Action.QUARANTINE,
        "/home/alice/eicar.com": Action.IGNORE,
        INBOX: Action.CLEANSE_MAILBOX,
    }
    assert decided.destructive_count() == 2  # ignore is sent but not destructive


def test_dry_run_sends_nothing_but_shows_the_planned_actions() -> None:
    policy = Policy(default=Action.CLEANSE_MAILBOX)
    decided = plan(policy, ALICE, [(INBOX, "v"), (SHELL, "v")], dry_run=True)
    assert sent_actions(decided) == {}
    assert decided.destructive_count() == 0
    assert [(f.action, f.outcome) for f in decided.files] == [
        (Action.CLEANSE_MAILBOX, Outcome.NOT_REQUESTED),
        (Action.CLEANSE_MAILBOX, Outcome.NOT_REQUESTED),
    ]
    assert [f.message for f in decided.files] == [None, MAIL_ONLY]


@pytest.mark.parametrize(
    ("path", "under_mail"),
    [
        ("/home/alice/mail/inbox", True),
        ("/home2/alice/mail/example.com/alice/cur/1.eml", True),
        ("mail/inbox", True),
        ("/home/alice/public_html/mail/x.php", False),
        ("/home/bob/mail/inbox", False),  # another account's mail is not this account's
        ("/home/alice/mailbox/x", False),
    ],
)
def test_cleanse_mailbox_only_under_the_accounts_mail(path: str, under_mail: bool) -> None:
    (planned,) = plan(Policy(Action.CLEANSE_MAILBOX), ALICE, [(path, "v")], dry_run=False).files
    assert planned.send is under_mail
    assert planned.outcome is (None if under_mail else Outcome.ERROR)


def test_the_built_in_policy_sends_nothing() -> None:
    decided = plan(REPORT_ONLY, ALICE, [(SHELL, "v"), (INBOX, "v")], dry_run=False)
    assert sent_actions(decided) == {}
    assert {f.outcome for f in decided.files} == {Outcome.NOT_REQUESTED}


# -- property: what is sent is exactly what the first matching rule says ------------------------

GLOBS = st.sampled_from(["*", "a*", "*b", "?", "a", "b", "[ab]*", "*/mail/*", "*x*"])
WORDS = st.sampled_from(["a", "b", "ab", "ba", "x", "axb", "/home/a/mail/x", "/home/b/mail/y"])
ACTIONS = st.sampled_from(list(Action))
RULES = st.builds(
    Rule,
    action=ACTIONS,
    virus=st.none() | GLOBS,
    path=st.none() | GLOBS,
    account=st.none() | GLOBS,
    server=st.none() | GLOBS,
    scan_type=st.none() | st.sampled_from(list(ScanType)),
)
POLICIES = st.builds(Policy, default=ACTIONS, rules=st.lists(RULES, max_size=6).map(tuple))
TARGETS = st.builds(
    Target,
    server=WORDS,
    account=st.sampled_from(["a", "b"]),
    scan_type=st.sampled_from(list(ScanType)),
)
FILES = st.lists(st.tuples(WORDS, WORDS), max_size=8)


def first_match(policy: Policy, target: Target, path: str, virus: str) -> Action:
    """A second, independent statement of the matching rule."""
    for rule in policy.rules:
        checks = [
            rule.virus is None or fnmatch.fnmatchcase(virus, rule.virus),
            rule.path is None or fnmatch.fnmatchcase(path, rule.path),
            rule.account is None or fnmatch.fnmatchcase(target.account, rule.account),
            rule.server is None or fnmatch.fnmatchcase(target.server, rule.server),
            rule.scan_type in (None, target.scan_type),
        ]
        if all(checks):
            return rule.action
    return policy.default


@given(policy=POLICIES, target=TARGETS, files=FILES)
def test_sent_actions_are_the_first_matching_rules(
    policy: Policy, target: Target, files: list[tuple[str, str]]
) -> None:
    decided = plan(policy, target, files, dry_run=False)
    assert len(decided.files) == len(files)
    for planned, (path, virus) in zip(decided.files, files, strict=True):
        assert planned.action is first_match(policy, target, path, virus)
        if planned.send:
            assert planned.action is not Action.REPORT
            assert planned.outcome is None
        else:
            assert planned.outcome in (Outcome.NOT_REQUESTED, Outcome.ERROR)
        if planned.action is Action.REPORT:
            assert not planned.send
    expected: dict[str, Action] = {}  # every file but report-only and a misplaced cleanse
    for path, virus in files:
        action = first_match(policy, target, path, virus)
        misplaced = action is Action.CLEANSE_MAILBOX and not in_mail(target.account, path)
        if action is not Action.REPORT and not misplaced:
            expected[path] = action
    assert sent_actions(decided) == expected
    assert Action.REPORT not in sent_actions(decided).values()


@given(policy=POLICIES, target=TARGETS, files=FILES)
def test_dry_run_never_sends_anything(
    policy: Policy, target: Target, files: list[tuple[str, str]]
) -> None:
    decided = plan(policy, target, files, dry_run=True)
    assert sent_actions(decided) == {}
    assert decided.destructive_count() == 0
    assert all(f.outcome is Outcome.NOT_REQUESTED for f in decided.files)
    assert [f.action for f in decided.files] == [
        first_match(policy, target, path, virus) for path, virus in files
    ]


# -- the destructive budget ----------------------------------------------------------------------


def test_budget_per_account_is_all_or_nothing() -> None:
    budget = DestructiveBudget(Limits(max_destructive_per_account=3))
    assert budget.reserve("web01", "alice", 2) is None
    assert budget.reserve("web01", "alice", 2) == (
        "would exceed max_destructive_per_account=3 for account alice on web01"
        " (2 granted, 2 requested)"
    )
    assert budget.reserve("web01", "alice", 1) is None  # the refused 2 were not recorded
    assert budget.reserve("web01", "alice", 1) is not None
    assert budget.reserve("web02", "alice", 3) is None  # another server's alice
    assert budget.reserve("web01", "bob", 3) is None


def test_budget_per_run_is_all_or_nothing() -> None:
    budget = DestructiveBudget(Limits(max_destructive_per_account=10, max_destructive_per_run=5))
    assert budget.reserve("s1", "a", 3) is None
    assert budget.reserve("s2", "b", 3) == (
        "would exceed max_destructive_per_run=5 (3 granted, 3 requested)"
    )
    assert budget.reserve("s2", "b", 2) is None
    assert budget.reserve("s3", "c", 1) is not None
    assert budget.reserve("s3", "c", 0) is None


def test_a_refused_per_run_request_does_not_spend_the_account_budget() -> None:
    budget = DestructiveBudget(Limits(max_destructive_per_account=4, max_destructive_per_run=4))
    assert budget.reserve("s1", "a", 3) is None
    assert budget.reserve("s1", "b", 2) is not None  # over the run cap
    assert budget.reserve("s1", "a", 1) is None


def test_zero_limit_refuses_any_destructive_action_and_no_limit_refuses_none() -> None:
    assert DestructiveBudget(Limits(max_destructive_per_account=0)).reserve("s", "a", 1)
    unlimited = DestructiveBudget(Limits())
    assert all(unlimited.reserve("s", "a", 1000) is None for _ in range(10))


@given(
    requests=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 5)), max_size=30),
    per_account=st.none() | st.integers(0, 8),
    per_run=st.none() | st.integers(0, 15),
)
def test_budget_never_grants_past_either_cap(
    requests: list[tuple[str, int]], per_account: int | None, per_run: int | None
) -> None:
    budget = DestructiveBudget(Limits(per_account, per_run))
    granted: dict[str, int] = {}
    for account, count in requests:
        if budget.reserve("s", account, count) is None:
            granted[account] = granted.get(account, 0) + count
        else:
            used = granted.get(account, 0)
            over_account = per_account is not None and used + count > per_account
            over_run = per_run is not None and sum(granted.values()) + count > per_run
            assert over_account or over_run  # refusals only when a cap would be crossed
    assert per_account is None or all(v <= per_account for v in granted.values())
    assert per_run is None or sum(granted.values()) <= per_run
