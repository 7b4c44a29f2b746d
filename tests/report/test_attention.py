"""The "needs attention" section: every kind of thing a person must look at after a night, with
why and the follow-up command, first in report.html and in the printed summary; and the one
predicate `--only-failed` shares with it."""

from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.model import (
    Action,
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    Outcome,
    ScanType,
    Status,
    Target,
    TargetResult,
)
from orchestrator.report import build_report
from orchestrator.report.attention import (
    Item,
    Kind,
    attention,
    attention_lines,
    follow_up,
    rerun_targets,
    unsettled_accounts,
)
from orchestrator.report.html import report_html
from tests.report.test_report import result, sample_report, sample_run

DEFERRED = ErrorInfo(ErrorKind.DEFERRED, "window closed at 06:00")
LIMIT = "max_destructive_per_account (1) reached"


def shell(
    outcome: Outcome, action: Action = Action.QUARANTINE, message: str | None = None
) -> InfectedFile:
    return InfectedFile("/home/x/public_html/shell.php", "Php.Webshell-1", action, outcome, message)


def night() -> list[TargetResult]:
    """One target of each kind that needs a person, and two that do not."""
    return [
        result("web01", "alice", Status.CLEAN),
        result(
            "web01",
            "bob",
            Status.INFECTED,
            files=(
                shell(Outcome.QUARANTINED),
                replace(shell(Outcome.NO_ACTION, Action.IGNORE), path="/home/bob/t"),
            ),
        ),
        result("web01", "carol", Status.FAILED, error=ErrorInfo(ErrorKind.UNREACHABLE, "given up")),
        result(
            "web01",
            "dave",
            Status.FAILED,
            error=ErrorInfo(ErrorKind.INTERRUPTED, "run interrupted while its scan was running"),
        ),
        result("web02", "erin", Status.SKIPPED, error=DEFERRED, scanned=None, duration=None),
        result(
            "web02",
            "frank",
            Status.INFECTED,
            files=(shell(Outcome.UNKNOWN, message="disinfection not done after 3600s"),),
            error=ErrorInfo(ErrorKind.TIMEOUT, "disinfection not done after 3600s"),
        ),
        result("web02", "grace", Status.INFECTED, files=(shell(Outcome.ERROR, message="locked"),)),
        result(
            "web02",
            "heidi",
            Status.INFECTED,
            files=(shell(Outcome.NOT_REQUESTED, message=f"not sent: {LIMIT}"),),
            error=ErrorInfo(ErrorKind.POLICY_LIMIT, LIMIT),
        ),
        result(
            "web02",
            "ivan",
            Status.INFECTED,
            files=(shell(Outcome.NOT_REQUESTED, Action.REPORT),),
        ),
        result("web02", "judy", Status.SKIPPED, error=ErrorInfo(ErrorKind.SKIPPED, "suspended")),
    ]


def test_every_kind_that_needs_a_person_is_listed_with_where_and_why() -> None:
    items = attention(build_report(sample_run(), night()))
    got = [(item.kind, item.target.account if item.target else None) for item in items]
    assert got == [
        (Kind.FAILED, "carol"),
        (Kind.INTERRUPTED, "dave"),
        (Kind.DEFERRED, "erin"),
        (Kind.UNKNOWN, "frank"),
        (Kind.ERROR, "grace"),
        (Kind.HELD_BACK, "heidi"),
        (Kind.NOT_ACTED_ON, None),  # ivan's file, counted: the infected table lists it
    ]
    why = {item.kind: item.why for item in items}
    assert why[Kind.FAILED] == "unreachable: given up"
    assert why[Kind.DEFERRED] == "window closed at 06:00"
    assert "may or may not be done" in why[Kind.UNKNOWN]
    assert why[Kind.ERROR] == "quarantine failed: locked"
    assert why[Kind.HELD_BACK] == f"quarantine not sent: {LIMIT}"
    assert why[Kind.NOT_ACTED_ON].startswith("1 infected file the policy only reports")
    files = [item for item in items if item.path is not None]
    assert {item.path for item in files} == {"/home/x/public_html/shell.php"}
    assert all(item.where.startswith(str(item.target)) for item in items if item.target)


def test_a_dry_run_says_its_files_were_not_acted_on_because_it_was_a_dry_run() -> None:
    run = sample_run(dry_run=True)
    report = build_report(
        run, [result("web01", "a", Status.INFECTED, files=(shell(Outcome.NOT_REQUESTED),))]
    )
    (item,) = attention(report)
    assert item.kind is Kind.NOT_ACTED_ON and "dry run" in item.why


def test_a_night_where_everything_was_handled_says_so_in_one_line() -> None:
    handled = [
        result("web01", "alice", Status.CLEAN),
        result("web01", "bob", Status.INFECTED, files=(shell(Outcome.QUARANTINED),)),
        result("web01", "judy", Status.SKIPPED, error=ErrorInfo(ErrorKind.SKIPPED, "suspended")),
    ]
    report = build_report(sample_run(), handled)
    assert attention(report) == []
    assert follow_up(report, "/r/report.json") is None
    assert attention_lines([], None) == ["needs attention: nothing"]
    page = report_html(report, "/r/report.json")
    assert "Nothing needs attention." in page and "--only-failed" not in page


def test_only_failed_selects_exactly_the_targets_the_section_says_to_rescan() -> None:
    report = build_report(sample_run(), night())
    chosen = rerun_targets(report)
    assert {t.account: k for t, k in chosen.items()} == {
        "carol": Kind.FAILED,
        "dave": Kind.INTERRUPTED,
        "erin": Kind.DEFERRED,
        "frank": Kind.UNKNOWN,
        "grace": Kind.ERROR,
        "heidi": Kind.HELD_BACK,
    }
    assert {i.target for i in attention(report) if i.rerun} == set(chosen)
    assert unsettled_accounts(report) == {("web02", "frank")}  # its disinfection may still run
    command = follow_up(report, "/var/reports/night 1/report.json")
    assert command == (
        "clamfleet run inventory.yaml --only-failed '/var/reports/night 1/report.json'"
    )


OUTCOMES = st.sampled_from(list(Outcome))
STATUSES = st.sampled_from(list(Status))
KINDS = st.one_of(st.none(), st.sampled_from(list(ErrorKind)))


@st.composite
def targets(draw: st.DrawFn) -> TargetResult:
    account = draw(st.sampled_from(["a", "b", "c", "d"]))
    files = tuple(
        InfectedFile(
            f"/home/{account}/{i}", "V", draw(st.sampled_from(list(Action))), draw(OUTCOMES)
        )
        for i in range(draw(st.integers(0, 2)))
    )
    kind = draw(KINDS)
    error = None if kind is None else ErrorInfo(kind, "m")
    return replace(result("web01", account, draw(STATUSES), files=files, error=error))


@settings(max_examples=200, deadline=None)
@given(st.lists(targets(), max_size=6, unique_by=lambda t: t.target))
def test_a_report_that_needs_another_pass_never_gives_an_empty_selection(
    results: list[TargetResult],
) -> None:
    """By construction: the section's rescan items, the follow-up command and --only-failed's
    selection all come from one predicate."""
    report = build_report(sample_run(), results)
    items = attention(report)
    chosen = rerun_targets(report)
    assert {i.target for i in items if i.rerun} == set(chosen)
    assert (follow_up(report, "r.json") is None) == (not chosen)
    needy = [
        t
        for t in results
        if t.status is Status.FAILED
        or (t.error is not None and t.error.kind in (ErrorKind.DEFERRED, ErrorKind.INTERRUPTED))
        or any(f.outcome in (Outcome.UNKNOWN, Outcome.ERROR) for f in t.infected_files)
    ]
    assert {t.target for t in needy} <= set(chosen)


def test_the_printed_section_caps_each_kind_and_ends_with_the_command() -> None:
    many = [
        Item(Kind.FAILED, "unreachable: given up", Target("web01", f"u{i}", ScanType.HOME))
        for i in range(13)
    ]
    lines = attention_lines(many, "clamfleet run inv.yaml --only-failed r.json", per_kind=10)
    assert lines[0] == "needs attention (13):"
    assert len([line for line in lines if "web01/u" in line]) == 10
    assert "... and 3 more (see report.html)" in lines[-2]
    assert lines[-1] == "  scan them again: clamfleet run inv.yaml --only-failed r.json"


# ---------------------------------------------------------------------------------------------
# report.html


def test_the_html_opens_with_the_section_and_colours_outcomes_handled_or_for_a_person() -> None:
    report = build_report(sample_run(), night())
    page = report_html(report, "/srv/out/report.json")
    body = page.split("<body>", 1)[1]
    order = [
        body.index(x) for x in ('class="verdict', 'id="attention"', 'class="cards"', "<h2>Servers")
    ]
    assert order == sorted(order), "verdict, then what needs attention, then the numbers"
    section = body.split('id="attention"', 1)[1].split("</section>", 1)[0]
    assert "Needs attention (7)" in section
    for text in ("web01/carol/home", "window closed at 06:00", "quarantine failed: locked"):
        assert text in section
    assert "clamfleet run inventory.yaml --only-failed /srv/out/report.json" in section
    infected = page.split("<h2>Infected files</h2>", 1)[1].split("<h2>", 1)[0]
    cells = re.findall(r'<td class="(handled|human)" title="[^"]+">([^<]+)</td>', infected)
    by_outcome = {outcome: css for css, outcome in cells}
    assert by_outcome == {
        "quarantined": "handled",
        "no-action": "handled",
        "unknown": "human",
        "error": "human",
        "not-requested": "human",
    }


def test_deferred_targets_are_listed_under_failed_and_deferred_not_none() -> None:
    report = build_report(
        sample_run(),
        [
            result("web01", "a", Status.CLEAN),
            result("web01", "b", Status.SKIPPED, error=DEFERRED, scanned=None, duration=None),
        ],
    )
    assert report.summary.exit_code == 2
    page = report_html(report)
    table = page.split("<h2>Failed and deferred targets</h2>", 1)[1].split("<h2>", 1)[0]
    assert "window closed at 06:00" in table and "None." not in table
    assert "Failures" not in page


def test_a_path_in_the_section_is_escaped() -> None:
    page = report_html(sample_report())
    section = page.split('id="attention"', 1)[1].split("</section>", 1)[0]
    assert "<script>" not in section and "&lt;script&gt;" in section
