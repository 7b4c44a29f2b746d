"""Accepted files and canaries in the report: counted apart, never infections, the same in every
format; a canary not detected makes its servers' clean targets unverified (exit 2)."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from orchestrator.model import (
    Acceptance,
    AcceptedInfo,
    CanaryInfo,
    InfectedFile,
    ScanType,
    StaleEntry,
    Status,
    Target,
    TargetResult,
)
from orchestrator.report import (
    FORMATS,
    Report,
    apply_baseline,
    build_report,
    merge_reports,
    notification_payload,
    render,
    report_from_dict,
    report_to_dict,
    validate_report_dict,
    write_report,
)
from orchestrator.report.verification import canary_checks
from tests.report.test_formats import prometheus_families, sarif_validator
from tests.report.test_report import result, sample_run

FIXTURE = "/home/alice/public_html/vendor/mailer/tests/x.php"
ACCEPTANCE = Acceptance("PHPMailer test fixture (OPS-123)", date(2027, 3, 1))
EICAR = "/home/clamcanary/public_html/eicar.txt"
CANARY = CanaryInfo("clamcanary", "public_html/eicar.txt", "*EICAR*", "web01")
NOT_DETECTED = (
    "canary not detected on web01: its clean verdicts are unproven"
    " (expected public_html/eicar.txt of clamcanary, *EICAR*)"
)


def accepted_file(**changes: Any) -> InfectedFile:
    return replace(InfectedFile(FIXTURE, "Php.Trojan.PHPMailer-2", accepted=ACCEPTANCE), **changes)


def canary_target(found: bool = True, server: str = "web01") -> TargetResult:
    files = (InfectedFile(EICAR, "Eicar-Signature", canary=True),) if found else ()
    return result(server, "clamcanary", Status.CLEAN, scan_type=ScanType.PUBLIC_HTML, files=files)


def fleet(found: bool = True) -> list[TargetResult]:
    """web01: a canary, alice clean but for an accepted fixture, bob clean; web02: no canary."""
    return [
        canary_target(found),
        result("web01", "alice", Status.CLEAN, files=(accepted_file(),)),
        result("web01", "bob", Status.CLEAN),
        result("web02", "carol", Status.CLEAN),
    ]


def report(found: bool = True, **run: Any) -> Report:
    info = sample_run(canaries={"web01": CANARY}, **run)
    return build_report(info, fleet(found))


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- accepted files --------------------------------------------------------------------------------


def test_an_accepted_file_is_listed_counted_apart_and_no_infection() -> None:
    r = report()
    s = r.summary
    assert (s.infected, s.infected_files, s.accepted, s.exit_code) == (0, 0, 1, 0)
    assert s.outcomes == {}, "outcomes count findings, as infected_files"
    alice = r.targets[1]
    assert alice.status is Status.CLEAN and alice.infected_files[0].accepted == ACCEPTANCE
    doc = report_to_dict(r)
    validate_report_dict(doc)
    assert doc["targets"][1]["infected_files"][0]["accepted"] == {
        "reason": "PHPMailer test fixture (OPS-123)",
        "expires": "2027-03-01",
    }
    infected = rows(render(r, ["csv"])["infected.csv"])
    fixture = next(row for row in infected if row["path"] == FIXTURE)
    assert (fixture["accepted"], fixture["accepted_reason"], fixture["accepted_expires"]) == (
        "yes",
        "PHPMailer test fixture (OPS-123)",
        "2027-03-01",
    )
    targets = {row["account"]: row for row in rows(render(r, ["csv"])["targets.csv"])}
    assert targets["alice"]["infected_count"] == "0"


def test_an_expired_acceptance_is_a_finding_that_says_so() -> None:
    expired = accepted_file(accepted=None, expired_acceptance=ACCEPTANCE)
    r = build_report(sample_run(), [result("web01", "alice", Status.INFECTED, files=(expired,))])
    assert (r.summary.infected_files, r.summary.accepted, r.summary.exit_code) == (1, 0, 1)
    doc = report_to_dict(r)
    validate_report_dict(doc)
    (file,) = doc["targets"][0]["infected_files"]
    assert file["accepted"] is None
    assert file["expired_acceptance"] == {"reason": ACCEPTANCE.reason, "expires": "2027-03-01"}
    (row,) = rows(render(r, ["csv"])["infected.csv"])
    assert (row["accepted"], row["accepted_expires"]) == ("expired", "2027-03-01")
    html = render(r, ["html"])["report.html"]
    assert "acceptance expired on 2027-03-01: PHPMailer test fixture (OPS-123)" in html


def test_sarif_suppresses_accepted_files_and_leaves_the_canary_out(tmp_path: Path) -> None:
    write_report(report(), tmp_path, ["sarif"])
    log = json.loads((tmp_path / "report.sarif").read_text("utf-8"))
    sarif_validator().validate(log)
    (run,) = log["runs"]
    (fixture,) = run["results"]
    assert fixture["ruleId"] == "Php.Trojan.PHPMailer-2"
    assert fixture["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": "PHPMailer test fixture (OPS-123)",
            "properties": {"expires": "2027-03-01"},
        }
    ]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["Php.Trojan.PHPMailer-2"]
    assert run["properties"]["accepted"] == 1


def test_junit_passes_accepted_and_canary_files_and_lists_them() -> None:
    root = ET.fromstring(render(report(), ["junit"])["junit.xml"])
    assert (root.get("failures"), root.get("errors")) == ("0", "0")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    out = cases["alice/home"].find("system-out")
    assert out is not None and out.text == (
        f"accepted until 2027-03-01: {FIXTURE}: Php.Trojan.PHPMailer-2:"
        " PHPMailer test fixture (OPS-123)"
    )
    canary_out = cases["clamcanary/public_html"].find("system-out")
    assert (
        canary_out is not None and canary_out.text == f"canary detected: {EICAR}: Eicar-Signature"
    )


def test_html_has_an_accepted_section_with_stale_entries() -> None:
    stale = StaleEntry(9, "old vendor copy", date(2027, 1, 1), {"path": "*/old/*"})
    r = report(accepted=AcceptedInfo("accepted.yaml", 2, (stale,)))
    html = render(r, ["html"])["report.html"]
    section = html.split("<h2>Accepted findings</h2>", 1)[1].split("<h2>", 1)[0]
    assert FIXTURE in section and "PHPMailer test fixture (OPS-123)" in section
    assert "the policy is not consulted" in section
    assert "old vendor copy" in section and "path: */old/*" in section
    infected = html.split("<h2>Infected files</h2>", 1)[1].split("<h2>", 1)[0]
    assert FIXTURE not in infected and EICAR not in infected


# -- canaries --------------------------------------------------------------------------------------


def test_a_detected_canary_verifies_its_servers_clean_targets_only() -> None:
    r = report()
    verified = {(t.server, t.account): t.verified for t in r.targets}
    assert verified == {
        ("web01", "clamcanary"): True,
        ("web01", "alice"): True,
        ("web01", "bob"): True,
        ("web02", "carol"): None,
    }
    assert (r.summary.unverified, r.summary.infected_files, r.summary.exit_code) == (0, 0, 0)


def test_a_canary_not_detected_makes_clean_targets_unverified_and_the_exit_code_2() -> None:
    r = report(found=False)
    verified = {(t.server, t.account): t.verified for t in r.targets}
    assert verified[("web01", "alice")] is False and verified[("web02", "carol")] is None
    assert (r.summary.unverified, r.summary.exit_code) == (3, 2)
    (check,) = canary_checks(r.run.canaries, r.targets)
    assert check.message() == NOT_DETECTED
    html = render(r, ["html"])["report.html"]
    assert f'<div class="banner">{NOT_DETECTED}</div>' in html
    assert "No infection found, but a canary was not detected" in html
    targets = {row["account"]: row["verified"] for row in rows(render(r, ["csv"])["targets.csv"])}
    assert targets == {"clamcanary": "false", "alice": "false", "bob": "false", "carol": ""}
    root = ET.fromstring(render(r, ["junit"])["junit.xml"])
    errors = [e.get("message") for e in root.iter("error") if e.get("type") == "unverified"]
    assert errors == [NOT_DETECTED] * 3


def test_an_infection_still_wins_over_an_unverified_server() -> None:
    targets = [
        *fleet(found=False),
        result("web02", "dave", Status.INFECTED, files=(InfectedFile("/x", "V"),)),
    ]
    r = build_report(sample_run(canaries={"web01": CANARY}), targets)
    assert (r.summary.exit_code, r.summary.unverified) == (1, 3)


def test_a_failed_canary_scan_names_its_error(tmp_path: Path) -> None:
    from orchestrator.model import ErrorInfo, ErrorKind

    failed = replace(
        canary_target(found=False),
        status=Status.FAILED,
        error=ErrorInfo(ErrorKind.UNREACHABLE, "connection refused"),
    )
    r = build_report(sample_run(canaries={"web01": CANARY}), [failed, *fleet()[1:]])
    (check,) = canary_checks(r.run.canaries, r.targets)
    assert check.message() == (
        "canary not scanned on web01 (unreachable: connection refused):"
        " its clean verdicts are unproven"
    )
    assert r.summary.unverified == 2 and r.summary.exit_code == 2
    write_report(r, tmp_path, ["prometheus"])
    families = prometheus_families(tmp_path / "clamfleet.prom")
    (detected,) = families["clamfleet_server_canary_detected"].samples
    assert (detected.labels, detected.value) == ({"server": "web01"}, 0)
    (unverified,) = families["clamfleet_unverified_targets"].samples
    assert unverified.value == 2


def test_the_canary_file_is_no_infected_file_in_any_count() -> None:
    r = report()
    assert r.summary.infected_files == 0 and r.targets[0].status is Status.CLEAN
    assert notification_payload(r)["text"].startswith(
        "clamfleet inventory.yaml: 4 targets, 0 infected files, 1 accepted, 0 failed"
    )
    eicar = next(row for row in rows(render(r, ["csv"])["infected.csv"]) if row["path"] == EICAR)
    assert eicar["canary"] == "true"


# -- round trip, merge, baseline -------------------------------------------------------------------


def test_every_new_field_round_trips_through_report_json(tmp_path: Path) -> None:
    stale = StaleEntry(9, "old", date(2027, 1, 1), {"account": "x"})
    for r in (report(accepted=AcceptedInfo("a.yaml", 3, (stale,))), report(found=False)):
        doc = report_to_dict(r)
        validate_report_dict(doc)
        assert report_from_dict(json.loads(json.dumps(doc)), "report.json") == r
        paths = write_report(r, tmp_path, FORMATS)
        assert paths


def test_a_report_of_an_earlier_version_still_reads() -> None:
    doc = report_to_dict(build_report(sample_run(), [result("web01", "a", Status.CLEAN)]))
    for key in ("accepted", "unverified"):
        del doc["summary"][key]
    del doc["targets"][0]["verified"]
    read = report_from_dict(doc, "old.json")
    assert read.summary.accepted == 0 and read.targets[0].verified is None


def test_merge_recomputes_verified_when_the_canary_was_scanned_in_another_shard() -> None:
    canary = CanaryInfo("clamcanary", "public_html/eicar.txt", "*EICAR*", "web01-canary")
    canaries = {"web01-alice": canary, "web01-canary": canary}
    alice = result("web01-alice", "alice", Status.CLEAN)
    scanner = canary_target(server="web01-canary")
    servers = ("web01-alice", "web01-canary")
    one = build_report(
        sample_run(id="r1", shard="1/2", servers=servers, canaries={"web01-alice": canary}), [alice]
    )
    two = build_report(
        sample_run(id="r2", shard="2/2", servers=servers, canaries={"web01-canary": canary}),
        [scanner],
    )
    assert one.targets[0].verified is False and one.summary.exit_code == 2
    merged = merge_reports([one, two]).report
    assert dict(merged.run.canaries) == canaries
    assert [t.verified for t in merged.targets] == [True, True]
    assert merged.summary.exit_code == 0


def test_merge_lists_an_entry_stale_only_when_no_shard_matched_it() -> None:
    a = StaleEntry(3, "a", date(2027, 1, 1), {"account": "a"})
    b = StaleEntry(7, "b", date(2027, 1, 1), {"account": "b"})
    one = build_report(
        sample_run(id="r1", shard="1/2", accepted=AcceptedInfo("x.yaml", 2, (a, b))),
        [result("web01", "a", Status.CLEAN)],
    )
    two = build_report(
        sample_run(id="r2", shard="2/2", accepted=AcceptedInfo("x.yaml", 2, (b,))),
        [result("web02", "b", Status.CLEAN)],
    )
    merged = merge_reports([one, two]).report
    assert merged.run.accepted == AcceptedInfo("x.yaml", 2, (b,))


def test_a_baseline_counts_findings_and_the_canary_is_never_resolved() -> None:
    baseline = report()
    missing = report(found=False)
    compared = apply_baseline(missing, baseline)
    assert compared.summary.delta is not None
    assert (compared.summary.delta.new, compared.summary.delta.recurring) == (0, 0)
    assert compared.resolved == (), "a canary not detected tonight is not resolved"
    shell = InfectedFile("/home/bob/shell.php", "Php.Webshell-1")
    now = build_report(
        baseline.run,
        [*fleet()[:2], result("web01", "bob", Status.INFECTED, files=(shell,)), fleet()[3]],
    )
    delta = apply_baseline(now, baseline).summary.delta
    assert delta is not None and (delta.new, delta.recurring) == (1, 0)
    alice = apply_baseline(now, baseline).targets[1].infected_files[0]
    assert alice.delta == "recurring" and alice.accepted == ACCEPTANCE


def test_targets_of_an_unmarked_fleet_keep_their_contract_values() -> None:
    """No canary and no accepted file: nothing new but the additive keys' empty values."""
    r = build_report(sample_run(), [result("web01", "a", Status.CLEAN)])
    doc = report_to_dict(r)
    assert "canaries" not in doc["run"] and "accepted" not in doc["run"]
    assert doc["targets"][0]["verified"] is None
    assert (doc["summary"]["accepted"], doc["summary"]["unverified"]) == (0, 0)
    assert Target("web01", "a", ScanType.HOME) == r.targets[0].target
