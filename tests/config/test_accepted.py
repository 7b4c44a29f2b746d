"""The accepted-findings file: entries, required keys, dates, file:line errors, expiry."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from orchestrator.config import AcceptedEntry, Rule, When, load_accepted, load_policy
from orchestrator.config.accepted import expired, expiring
from orchestrator.errors import ConfigError
from orchestrator.model import Action, ScanType, Target


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # errors name the file as given


def write(text: str, name: str = "accepted.yaml") -> str:
    Path(name).write_text(textwrap.dedent(text).lstrip("\n"))
    return name


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_accepted(write(text))
    return str(info.value)


GOOD = """
accepted:
  - when: {server: web01, path: "/home/alice/public_html/vendor/*/tests/*", virus: "Php.Trojan.*"}
    reason: "PHPMailer test fixture (OPS-123)"
    expires: 2027-03-01
  - when: {account: bob, scan_type: mail}
    reason: quoted date
    expires: "2026-12-10"
"""


def test_entries_are_read_with_their_line_and_either_date_form() -> None:
    accepted = load_accepted(write(GOOD))
    first, second = accepted.entries
    assert accepted.source == "accepted.yaml"
    assert first == AcceptedEntry(
        when=When(
            server="web01", path="/home/alice/public_html/vendor/*/tests/*", virus="Php.Trojan.*"
        ),
        reason="PHPMailer test fixture (OPS-123)",
        expires=date(2027, 3, 1),
        line=2,
    )
    assert (second.when, second.expires, second.line) == (
        When(account="bob", scan_type=ScanType.MAIL),
        date(2026, 12, 10),
        5,
    )


def test_an_empty_file_or_list_accepts_nothing() -> None:
    assert load_accepted(write("# nothing yet\n")).entries == ()
    assert load_accepted(write("accepted: []\n")).entries == ()
    assert load_accepted(write("accepted:\n")).entries == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "accepted:\n  - when: {account: bob}\n    expires: 2027-01-01\n",
            "accepted.yaml:2: accepted[0].reason: is required: say why the finding is accepted",
            id="no-reason",
        ),
        pytest.param(
            "accepted:\n  - when: {account: bob}\n    reason: r\n",
            "accepted.yaml:2: accepted[0].expires: is required: a date YYYY-MM-DD from which"
            " the file counts again (a far date is your explicit choice)",
            id="no-expires",
        ),
        pytest.param(
            "accepted:\n  - reason: r\n    expires: 2027-01-01\n",
            "accepted.yaml:2: accepted[0].when: is required: which files this entry accepts",
            id="no-when",
        ),
        pytest.param(
            "accepted:\n  - when: {}\n    reason: r\n    expires: 2027-01-01\n",
            "accepted.yaml:2: accepted[0].when: names nothing: give at least one of virus, path,"
            " account, server, scan_type (an empty when would accept every infected file)",
            id="empty-when",
        ),
        pytest.param(
            "accepted:\n  - when: {acount: bob}\n    reason: r\n    expires: 2027-01-01\n",
            "accepted.yaml:2: accepted[0].when.acount: unknown key 'acount' (allowed: virus,"
            " path, account, server, scan_type)",
            id="when-typo",
        ),
        pytest.param(
            "accepted:\n  - when: {account: bob}\n    reason: r\n    expires: next year\n",
            "accepted.yaml:4: accepted[0].expires: expected a date YYYY-MM-DD, got the string"
            " 'next year'",
            id="not-a-date",
        ),
        pytest.param(
            "accepted:\n  - when: {account: bob}\n    reason: r\n    expires: '2027-02-30'\n",
            "accepted.yaml:4: accepted[0].expires: 2027-02-30 is not a valid date",
            id="no-such-day",
        ),
        pytest.param(
            "accepted:\n  - when: {account: bob}\n    reason: r\n    expires: 2027-01-01\n"
            "    until: x\n",
            "accepted.yaml:5: accepted[0].until: unknown key 'until' (allowed: when, reason,"
            " expires)",
            id="unknown-key",
        ),
        pytest.param(
            "accepted: {when: {account: bob}}\n",
            "accepted.yaml:1: accepted: expected a list, got a mapping",
            id="not-a-list",
        ),
    ],
)
def test_errors_name_file_line_and_field(text: str, message: str) -> None:
    assert error(text) == message


def test_an_entry_is_in_force_until_the_day_before_it_expires() -> None:
    entry = load_accepted(write(GOOD)).entries[0]  # expires 2027-03-01
    assert entry.in_force(date(2027, 2, 28))
    assert not entry.in_force(date(2027, 3, 1)), "from that day on it counts again"


def test_expiring_lists_entries_within_14_days_and_expired_the_rest() -> None:
    accepted = load_accepted(write(GOOD))  # 2027-03-01 and 2026-12-10
    today = date(2026, 11, 30)
    assert [e.line for e in expiring(accepted, today)] == [5]
    assert expired(accepted, today) == []
    assert [e.line for e in expired(accepted, date(2026, 12, 10))] == [5]
    assert expiring(accepted, date(2026, 12, 10)) == []
    assert [e.line for e in expiring(accepted, date(2027, 2, 20))] == [2]


def test_policy_rules_and_accepted_entries_read_and_match_when_alike() -> None:
    """One `when`: the same block parses to the same matcher in both files."""
    block = '{server: "web*", account: alice, path: "*/public_html/*", scan_type: home}'
    policy = load_policy(write(f"rules:\n  - when: {block}\n    action: ignore\n", "p.yaml"))
    accepted = load_accepted(
        write(f"accepted:\n  - when: {block}\n    reason: r\n    expires: 2030-01-01\n")
    )
    (rule,) = policy.rules
    entry = accepted.entries[0]
    assert isinstance(rule, When) and rule == Rule(
        Action.IGNORE,
        virus=entry.when.virus,
        path=entry.when.path,
        account=entry.when.account,
        server=entry.when.server,
        scan_type=entry.when.scan_type,
    )
    target = Target("web01", "alice", ScanType.HOME)
    for path, virus in [("/home/alice/public_html/x.php", "X"), ("/home/alice/mail/x", "X")]:
        assert rule.matches(target, path, virus) is entry.when.matches(target, path, virus)
    assert entry.when.matches(target, "/home/alice/public_html/x.php", "X")
    assert not entry.when.matches(Target("db01", "alice", ScanType.HOME), "/p/public_html/x", "X")
