"""The report's side of pacing: deferred targets, run.pacing through JSON, merge and HTML."""

from __future__ import annotations

import json

import pytest

from orchestrator.errors import ConfigError
from orchestrator.model import (
    EXIT_INCOMPLETE,
    EXIT_INFECTED,
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    PacingSample,
    ServerPacing,
    Status,
    TargetResult,
)
from orchestrator.report import (
    build_report,
    merge_reports,
    report_from_dict,
    report_to_dict,
    validate_report_dict,
)
from orchestrator.report.html import report_html
from tests.report.test_report import result, sample_run

DEFERRED = ErrorInfo(ErrorKind.DEFERRED, "window closed at 06:00")
PACED = ServerPacing(
    max_load=3.2,
    cap=4,
    peak_load=3.6,
    seconds_over=30.0,
    readings=3,
    failed_readings=1,
    history=(
        PacingSample(0.0, 0, 2, 0.4),
        PacingSample(30.0, 2, 3, 3.6),
        PacingSample(60.0, 2, 2, None),
        PacingSample(90.0, 1, 2, 2.5),
    ),
)


def deferred(server: str, account: str) -> TargetResult:
    return result(server, account, Status.SKIPPED, error=DEFERRED, scanned=None, duration=None)


def test_a_deferred_target_is_skipped_but_makes_the_run_incomplete() -> None:
    clean = result("web01", "alice", Status.CLEAN)
    report = build_report(sample_run(), [clean, deferred("web01", "bob")])
    assert report.summary.skipped == 1 and report.summary.failed == 0
    assert report.summary.exit_code == EXIT_INCOMPLETE
    doc = report_to_dict(report)
    assert doc["targets"][1]["error"] == {"kind": "deferred", "message": "window closed at 06:00"}
    validate_report_dict(json.loads(json.dumps(doc)))


def test_an_infection_still_wins_over_deferred_targets() -> None:
    infected = result(
        "web01", "alice", Status.INFECTED, files=(InfectedFile("/home/alice/x", "Eicar"),)
    )
    report = build_report(sample_run(), [infected, deferred("web01", "bob")])
    assert report.summary.exit_code == EXIT_INFECTED


def test_a_suspended_skip_alone_stays_clean() -> None:
    skipped = result(
        "web01", "bob", Status.SKIPPED, error=ErrorInfo(ErrorKind.SKIPPED, "suspended")
    )
    assert build_report(sample_run(), [skipped]).summary.exit_code == 0


def test_pacing_round_trips_through_report_json_and_validates() -> None:
    report = build_report(sample_run(pacing={"web01": PACED}), [result("web01", "a", Status.CLEAN)])
    doc = json.loads(json.dumps(report_to_dict(report)))
    assert doc["run"]["pacing"]["web01"]["history"][2] == [60.0, 2, 2, None]
    assert doc["run"]["pacing"]["web01"]["seconds_over"] == 30.0
    validate_report_dict(doc)
    assert report_from_dict(doc, "r.json") == report


def test_reports_without_pacing_carry_no_pacing_key() -> None:
    report = build_report(sample_run(), [result("web01", "a", Status.CLEAN)])
    assert "pacing" not in report_to_dict(report)["run"]


def test_a_bad_history_row_names_its_field() -> None:
    report = build_report(sample_run(pacing={"web01": PACED}), [])
    doc = json.loads(json.dumps(report_to_dict(report)))
    doc["run"]["pacing"]["web01"]["history"][1] = [30.0, 2, 3]
    with pytest.raises(ConfigError, match=r"run\.pacing\.web01\.history\[1\]"):
        report_from_dict(doc, "r.json")


def test_merge_keeps_the_pacing_of_every_shard() -> None:
    other = ServerPacing(max_load=12.8, cap=16)
    one = build_report(
        sample_run(id="a", shard="1/2", pacing={"web01": PACED}),
        [result("web01", "a", Status.CLEAN)],
    )
    two = build_report(
        sample_run(id="b", shard="2/2", pacing={"web02": other}),
        [result("web02", "b", Status.CLEAN)],
    )
    merged = merge_reports([two, one]).report
    assert dict(merged.run.pacing) == {"web01": PACED, "web02": other}


def test_html_report_charts_load_and_concurrency_per_paced_server() -> None:
    report = build_report(sample_run(pacing={"web<01>": PACED}), [])
    page = report_html(report)
    assert "Load and concurrency" in page
    assert "web&lt;01&gt;: load max 3.2, peak 3.6, 30 s over max, cap 4" in page
    assert "1 failed readings" in page
    chart = page.split("Load and concurrency", 1)[1]
    assert chart.count("<polyline") == 4  # running, limit, and the load in two stretches
    assert "stroke-dasharray" in chart  # the ceiling
    assert "Load and concurrency" not in report_html(build_report(sample_run(), []))


def test_only_failed_reruns_deferred_targets_too() -> None:
    from orchestrator.report.attention import rerun_targets

    failed = result("web01", "carol", Status.FAILED, error=ErrorInfo(ErrorKind.TIMEOUT, "t"))
    suspended = result(
        "web01", "dave", Status.SKIPPED, error=ErrorInfo(ErrorKind.SKIPPED, "suspended")
    )
    report = build_report(
        sample_run(),
        [result("web01", "alice", Status.CLEAN), deferred("web01", "bob"), failed, suspended],
    )
    assert {t.account for t in rerun_targets(report)} == {"bob", "carol"}
