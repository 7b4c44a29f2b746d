"""The canary and accepted files: set aside before the policy, marked on every result, and the
canary's target chosen, kept and started first."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from orchestrator.client.parse import Account
from orchestrator.config import (
    Accepted,
    AcceptedEntry,
    AuthMethod,
    Canary,
    Credentials,
    Limits,
    Policy,
    Server,
    When,
)
from orchestrator.engine import targets
from orchestrator.engine.driver import plan_actions
from orchestrator.engine.exempt import ACCEPTED_MESSAGE, CANARY_MESSAGE, Judge, accepted_info
from orchestrator.engine.policy import DestructiveBudget
from orchestrator.model import (
    Acceptance,
    Action,
    InfectedFile,
    ScanType,
    Secret,
    Status,
    Target,
    TargetResult,
)

CANARY = Canary("clamcanary", "public_html/eicar.txt", "*EICAR*", ScanType.PUBLIC_HTML, "web01")
FIXTURE = "/home/alice/public_html/vendor/mailer/tests/x.php"
SHELL = "/home/alice/public_html/shell.php"
ENTRY = AcceptedEntry(
    When(server="web01", path="*/vendor/*/tests/*"), "PHPMailer fixture", date(2027, 3, 1), 3
)
LATER = AcceptedEntry(When(virus="Php.Trojan.*"), "renewed", date(2028, 1, 1), 7)
STALE = AcceptedEntry(When(account="nobody"), "gone long ago", date(2030, 1, 1), 11)
ALICE = Target("web01", "alice", ScanType.HOME)
CANARY_HOME = Target("web01", "clamcanary", ScanType.HOME)


def server(canary: Canary | None = CANARY, **changes: object) -> Server:
    auth = Credentials(AuthMethod.WHM_TOKEN, "root", Secret("t"))
    base = Server("web01", "https://web01.example.com:2087", auth, canary=canary)
    return replace(base, **changes)  # type: ignore[arg-type]


def judge(*entries: AcceptedEntry, today: date = date(2027, 2, 28)) -> Judge:
    return Judge.for_run([server()], Accepted("accepted.yaml", entries), today)


# -- which files are exempt ----------------------------------------------------------------------


def test_the_canary_is_its_path_in_its_account_with_a_matching_signature_in_any_case() -> None:
    j = judge()
    path = "/home/clamcanary/public_html/eicar.txt"
    assert j.is_canary(CANARY_HOME, path, "Eicar-Signature")
    assert j.is_canary(
        CANARY_HOME, "/home2/clamcanary/public_html/eicar.txt", "Win.Test.EICAR_HDB-1"
    )
    assert not j.is_canary(CANARY_HOME, path, "Php.Webshell-1"), "a shell at that path is real"
    assert not j.is_canary(
        CANARY_HOME, "/home/clamcanary/public_html/x/eicar.txt", "Eicar-Signature"
    )
    assert not j.is_canary(ALICE, "/home/alice/public_html/eicar.txt", "Eicar-Signature")
    other = Judge.for_run([server(name="web02")], None, date(2027, 1, 1))
    assert not other.is_canary(
        Target("web02", "clamcanary", ScanType.HOME), path, "Eicar-Signature"
    )


def test_the_first_entry_in_force_accepts_and_an_expired_one_only_says_so() -> None:
    assert judge(ENTRY).entries(ALICE, FIXTURE, "Php.Trojan.PHPMailer-2") == (ENTRY, None)
    on_the_day = judge(ENTRY, today=date(2027, 3, 1))
    assert on_the_day.entries(ALICE, FIXTURE, "Php.Trojan.PHPMailer-2") == (None, ENTRY)
    renewed = judge(ENTRY, LATER, today=date(2027, 3, 1))
    assert renewed.entries(ALICE, FIXTURE, "Php.Trojan.PHPMailer-2") == (LATER, None)
    assert judge(ENTRY).entries(ALICE, SHELL, "Php.Webshell-1") == (None, None)


def test_marking_a_result_makes_a_target_with_only_exempt_files_clean() -> None:
    files = (
        InfectedFile(FIXTURE, "Php.Trojan.PHPMailer-2"),
        InfectedFile("/home/alice/public_html/eicar.txt", "Eicar-Signature"),
    )
    result = TargetResult(ALICE, Status.INFECTED, infected_files=files)
    marked = judge(ENTRY).mark(result)
    assert marked.status is Status.INFECTED, "eicar.txt outside the canary account is real"
    assert marked.infected_files[0].accepted == Acceptance("PHPMailer fixture", date(2027, 3, 1))
    assert [f.finding for f in marked.infected_files] == [False, True]
    only_fixture = judge(ENTRY).mark(TargetResult(ALICE, Status.INFECTED, infected_files=files[:1]))
    assert only_fixture.status is Status.CLEAN and not only_fixture.findings
    expired = judge(ENTRY, today=date(2027, 3, 1)).mark(only_fixture)
    assert expired.status is Status.CLEAN, "a marked result is never re-judged into infected"
    fresh = judge(ENTRY, today=date(2027, 3, 1)).mark(
        TargetResult(ALICE, Status.INFECTED, infected_files=files[:1])
    )
    assert fresh.status is Status.INFECTED
    (file,) = fresh.infected_files
    assert file.accepted is None and file.expired_acceptance == Acceptance(
        "PHPMailer fixture", date(2027, 3, 1)
    )
    canary = judge().mark(
        TargetResult(
            CANARY_HOME,
            Status.INFECTED,
            infected_files=(
                InfectedFile("/home/clamcanary/public_html/eicar.txt", "Eicar-Signature"),
            ),
        )
    )
    assert canary.status is Status.CLEAN and canary.infected_files[0].canary


def test_stale_entries_are_those_that_matched_no_file() -> None:
    results = [
        TargetResult(ALICE, Status.CLEAN, infected_files=(InfectedFile(FIXTURE, "X"),)),
        TargetResult(
            CANARY_HOME,
            Status.CLEAN,
            infected_files=(
                InfectedFile(
                    "/home/clamcanary/public_html/eicar.txt", "Eicar-Signature", canary=True
                ),
            ),
        ),
    ]
    canary_entry = AcceptedEntry(
        When(account="clamcanary"), "the canary is no finding", date(2030, 1, 1)
    )
    info = accepted_info(Accepted("a.yaml", (ENTRY, STALE, canary_entry)), results)
    assert (info.source, info.entries) == ("a.yaml", 3)
    assert [(e.line, e.reason, dict(e.when)) for e in info.stale] == [
        (11, "gone long ago", {"account": "nobody"}),
        (0, "the canary is no finding", {"account": "clamcanary"}),
    ]


# -- the policy is not consulted for them ------------------------------------------------------


@dataclass
class FakeOptions:
    policy: Policy
    dry_run: bool = False


@dataclass
class FakeRun:
    """What plan_actions needs of a run."""

    options: FakeOptions
    judge: Judge
    budget: DestructiveBudget = field(default_factory=lambda: DestructiveBudget(Limits()))
    sent: dict[tuple[str, str], dict[str, ScanType]] = field(default_factory=dict)


def test_exempt_files_are_never_sent_whatever_the_policy() -> None:
    delete_all = Policy(default=Action.DELETE)
    run = FakeRun(FakeOptions(delete_all), judge(ENTRY))
    files = ((FIXTURE, "Php.Trojan.PHPMailer-2"), (SHELL, "Php.Webshell-1"))
    planned = plan_actions(run, ALICE, files)  # type: ignore[arg-type]
    fixture, shell = planned.files
    assert (fixture.send, fixture.action, fixture.outcome) == (
        False,
        Action.REPORT,
        "not-requested",
    )
    assert fixture.message == ACCEPTED_MESSAGE
    assert (shell.send, shell.action) == (True, Action.DELETE)
    canary_files = (("/home/clamcanary/public_html/eicar.txt", "Eicar-Signature"),)
    (canary,) = plan_actions(run, CANARY_HOME, canary_files).files  # type: ignore[arg-type]
    assert (canary.send, canary.message) == (False, CANARY_MESSAGE)
    # planning sends nothing yet (a path is "sent" once its POST leaves): none of it is exempt
    sent = {path for paths in run.sent.values() for path in paths}
    assert FIXTURE not in sent and canary_files[0][0] not in sent


def test_an_expired_acceptance_goes_to_the_policy_again() -> None:
    run = FakeRun(
        FakeOptions(Policy(default=Action.QUARANTINE)), judge(ENTRY, today=date(2027, 3, 1))
    )
    (fixture,) = plan_actions(run, ALICE, ((FIXTURE, "Php.Trojan.PHPMailer-2"),)).files  # type: ignore[arg-type]
    assert (fixture.send, fixture.action) == (True, Action.QUARANTINE)


# -- the canary's target -------------------------------------------------------------------------


def accounts(*names: str, suspended: str = "") -> list[Account]:
    return [Account(user=n, domain=f"{n}.example.com", suspended=n == suspended) for n in names]


def test_the_canary_account_is_added_with_the_canary_type_when_not_otherwise_scanned() -> None:
    web01 = server(accounts=("alice", "bob"))
    chosen = targets.select(web01, (ScanType.HOME,), None)
    canary = Target("web01", "clamcanary", ScanType.PUBLIC_HTML)
    assert chosen.canary == canary
    assert chosen.targets == (
        canary,
        Target("web01", "alice", ScanType.HOME),
        Target("web01", "bob", ScanType.HOME),
    )


def test_a_listed_canary_account_uses_its_own_target_that_reads_the_file() -> None:
    listed = accounts("alice", "clamcanary")
    home = targets.select(server(), (ScanType.HOME, ScanType.MAIL), listed)
    assert home.canary == CANARY_HOME
    assert home.targets.count(CANARY_HOME) == 1 and len(home.targets) == 4
    mail_only = targets.select(server(), (ScanType.MAIL,), listed)
    assert mail_only.canary == Target("web01", "clamcanary", ScanType.PUBLIC_HTML)
    assert mail_only.targets[0] == mail_only.canary and len(mail_only.targets) == 3


def test_a_suspended_or_excluded_canary_account_is_skipped_like_any_other() -> None:
    suspended = targets.select(
        server(), (ScanType.HOME,), accounts("alice", "clamcanary", suspended="clamcanary")
    )
    assert suspended.canary in suspended.skips
    excluded = targets.select(
        server(exclude_accounts=("clam*",)), (ScanType.HOME,), accounts("alice", "clamcanary")
    )
    assert excluded.canary in excluded.skips


def test_only_failed_keeps_the_canary_and_it_starts_first() -> None:
    listed = accounts("alice", "big", "clamcanary")
    only = frozenset(
        {Target("web01", "alice", ScanType.HOME), Target("web01", "big", ScanType.HOME)}
    )
    chosen = targets.select(server(), (ScanType.HOME,), listed, only)
    assert set(chosen.targets) == {*only, CANARY_HOME}
    order = targets.start_order(chosen.targets, {"big": 900.0, "alice": 10.0}, lead=chosen.canary)
    assert order[0] == CANARY_HOME and order[1].account == "big"
    resumed = targets.start_order(chosen.targets, {"big": 900.0}, first={"alice"}, lead=CANARY_HOME)
    assert resumed[0].account == "alice", "a scan already running at the server goes first"


def test_an_entry_verified_by_another_scans_no_canary_itself() -> None:
    relying = server(
        canary=Canary(
            "clamcanary", "public_html/eicar.txt", "*EICAR*", ScanType.PUBLIC_HTML, "web01-canary"
        )
    )
    chosen = targets.select(relying, (ScanType.HOME,), accounts("alice"))
    assert chosen.canary is None and len(chosen.targets) == 1
