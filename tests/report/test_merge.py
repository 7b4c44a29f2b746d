"""merge_reports (shards, refusals, reruns) and the baseline delta and notifications."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import timedelta

import pytest

from orchestrator.errors import ConfigError
from orchestrator.model import (
    Downtime,
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    ScanType,
    Status,
    Target,
)
from orchestrator.report import (
    Report,
    apply_baseline,
    build_report,
    merge_reports,
    notification_payload,
    report_from_dict,
    report_to_dict,
    should_notify,
    validate_report_dict,
)
from orchestrator.report.writers import render
from tests.report.test_report import (
    BERLIN_WINDOW,
    T0,
    result,
    sample_report,
    sample_results,
    sample_run,
)
from tests.support import with_targets


def shard(index: int, total: int, servers: set[str], **run: object) -> Report:
    """The report shard `index/total` would write: the sample's targets of `servers`."""
    targets = [t for t in sample_results() if t.server in servers]
    return build_report(
        sample_run(id=f"run-{index}", shard=f"{index}/{total}", **run),
        targets,
    )


def comparable(report: Report) -> list[tuple[object, ...]]:
    return [(str(t.target), t.status, t.infected_files, t.error) for t in report.targets]


def test_shards_merge_into_the_report_of_the_union_in_inventory_order() -> None:
    later = {"started_at": T0 + timedelta(seconds=5), "finished_at": T0 + timedelta(hours=1)}
    parts = [shard(2, 3, {"web01"}, **later), shard(3, 3, {"web03"}), shard(1, 3, {"web02"})]
    merged = merge_reports(parts)
    whole = sample_report()
    assert comparable(merged.report) == comparable(whole)
    assert merged.report.summary == whole.summary
    assert (merged.missing_shards, merged.missing_servers) == ((), ())
    run = merged.report.run
    assert run.shard == "1/1" and run.rerun_of is None
    assert run.started_at == T0 and run.finished_at == T0 + timedelta(hours=1)
    assert run.servers == whole.run.servers and run.fleet_id == whole.run.fleet_id
    assert len(run.id) == 32 and run.id not in {"run-1", "run-2", "run-3"}
    assert merge_reports(list(reversed(parts))).report == merged.report, "order-independent"
    validate_report_dict(report_to_dict(merged.report))


def test_merge_carries_the_nights_window() -> None:
    parts = [shard(1, 2, {"web01", "web02"}, window=BERLIN_WINDOW), shard(2, 2, {"web03"})]
    merged = merge_reports(parts).report
    assert merged.run.window == BERLIN_WINDOW
    assert report_from_dict(report_to_dict(merged), "m.json").run.window == BERLIN_WINDOW
    assert merge_reports([shard(1, 1, {"web01", "web02", "web03"})]).report.run.window is None


def test_merged_shard_servers_are_every_shards_servers_in_inventory_order() -> None:
    parts = [
        shard(2, 3, {"web01", "web03"}, shard_servers=("web03", "web01")),
        shard(3, 3, set(), shard_servers=()),  # an empty shard: more shards than servers
        shard(1, 3, {"web02"}, shard_servers=("web02",)),
    ]
    merged = merge_reports(parts)
    assert merged.missing_shards == ()
    assert merged.report.run.shard_servers == ("web01", "web02", "web03")
    back = report_from_dict(report_to_dict(merged.report), "merged.json")
    assert back.run.shard_servers == ("web01", "web02", "web03")


def test_dry_run_only_if_every_shard_was() -> None:
    parts = [shard(1, 2, {"web01"}, dry_run=True), shard(2, 2, {"web02", "web03"})]
    assert merge_reports(parts).report.run.dry_run is False
    parts = [shard(1, 2, {"web01"}, dry_run=True), shard(2, 2, {"web02"}, dry_run=True)]
    assert merge_reports(parts).report.run.dry_run is True


def test_missing_shards_and_servers_are_reported() -> None:
    merged = merge_reports([shard(1, 4, {"web01"}), shard(3, 4, {"web03"})])
    assert merged.missing_shards == (2, 4)
    assert merged.missing_servers == ("web02",)
    assert merged.report.run.shard == "1,3/4"
    again = merge_reports([merged.report, shard(2, 4, {"web02"}), shard(4, 4, set())])
    assert again.missing_shards == () and again.report.run.shard == "1/1"
    assert comparable(again.report) == comparable(sample_report())


def test_a_merge_with_servers_missing_reads_back_with_its_exit_code_2() -> None:
    """merge will not call a fleet clean it has not seen whole: its report.json says exit code
    2 over clean targets, and must still load (for --baseline, --only-failed, a later merge)."""
    part = shard(1, 2, {"web01"})
    clean = tuple(
        replace(t, status=Status.CLEAN, infected_files=(), error=None) for t in part.targets
    )
    merged = merge_reports([with_targets(part, clean)]).report
    assert merged.summary.exit_code == 2 and not merged.summary.failed
    text = render(merged, ["json"])["report.json"]
    again = report_from_dict(json.loads(text), "merged/report.json")
    assert again.summary.exit_code == 2
    whole = replace(merged, run=replace(merged.run, servers=("web01",)))
    doc = json.loads(render(whole, ["json"])["report.json"])
    doc["summary"]["exit_code"] = 2  # over a fleet seen whole: still a lie, still refused
    with pytest.raises(ConfigError, match="exit_code: 2 disagrees with the targets"):
        report_from_dict(doc, "forged/report.json")


@pytest.mark.parametrize(
    ("reports", "pattern"),
    [
        (
            lambda: [shard(1, 2, {"web01"}), shard(2, 2, {"web02"}, fleet_id="fleet-b")],
            r"reports of different runs: report 1 \(run run-1, shard 1/2\) is of fleet "
            r"fleet-a, report 2 \(run run-2, shard 2/2\) of fleet fleet-b",
        ),
        (
            lambda: [shard(1, 2, {"web01"}), shard(2, 3, {"web02"})],
            r"reports of different shard counts: report 1 .* is one of 2 shards, "
            r"report 2 .* one of 3",
        ),
        (
            lambda: [shard(1, 2, {"web01"}), replace_id(shard(1, 2, {"web01"}), "again")],
            r"overlapping shards: report 1 \(run run-1, shard 1/2\) and report 2 "
            r"\(run again, shard 1/2\) both cover shard 1/2",
        ),
        (
            lambda: [shard(1, 2, {"web01"}), shard(2, 2, {"web01"})],
            r"overlapping reports: .* both contain web01/alice/home",
        ),
        (list, "no reports to merge"),
        (
            lambda: [shard(1, 1, {"web01"}, rerun_of="x")],
            "every report is a rerun",
        ),
    ],
)
def test_merge_refusals(reports: object, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        merge_reports(reports())  # type: ignore[operator]


def replace_id(report: Report, run_id: str) -> Report:
    return replace(report, run=replace(report.run, id=run_id))


def test_refusal_names_the_files_when_given() -> None:
    parts = [shard(1, 2, {"web01"}), shard(1, 2, {"web02"})]
    with pytest.raises(ConfigError, match=r"overlapping shards: a/report\.json and b/report\.json"):
        merge_reports(parts, sources=["a/report.json", "b/report.json"])


def test_rerun_of_failures_is_folded_onto_the_merged_result() -> None:
    first = sample_report()
    fixed = [
        result("web02", "carol", Status.CLEAN),
        result("web03", "erin", Status.CLEAN),
        result("web03", "frank", Status.CLEAN, scan_type=ScanType.HOME),
    ]
    rerun = build_report(sample_run(id="run-2", rerun_of="run-1"), fixed)
    merged = merge_reports([rerun, first])
    keys = [str(t.target) for t in merged.report.targets]
    assert keys == [
        "web01/alice/home",
        "web01/bob/home",
        "web01/bob/mail",
        "web02/carol/home",
        "web02/dave/home",
        "web03/erin/home",
        "web03/frank/home",
    ], "the '*' row of a server that could not be listed gives way to its accounts"
    by_key = {str(t.target): t for t in merged.report.targets}
    assert by_key["web02/carol/home"].status is Status.CLEAN
    assert merged.report.summary.failed == 0
    assert merged.report.summary.exit_code == 1  # alice is still infected
    assert merged.report.run.shard == "1/1"


def test_outages_of_shards_and_of_a_rerun_are_all_kept_in_time_order() -> None:
    early = Downtime(T0 + timedelta(seconds=10), T0 + timedelta(seconds=40), 30.0)
    late = Downtime(T0 + timedelta(hours=2), None, 900.0, gave_up=True)
    parts = [
        shard(1, 2, {"web01"}, outages={"web01": (early,)}),
        shard(2, 2, {"web02", "web03"}, outages={"web02": (late,)}),
    ]
    rerun = build_report(
        sample_run(id="run-3", rerun_of="run-1", started_at=T0 + timedelta(hours=1)),
        [result("web02", "carol", Status.CLEAN)],
    )
    rerun = replace(rerun, run=replace(rerun.run, outages={"web02": (early,)}))
    merged = merge_reports([*parts, rerun]).report
    assert merged.run.outages == {"web01": (early,), "web02": (early, late)}
    validate_report_dict(report_to_dict(merged))


def test_rerun_of_sharded_run_folds_after_the_shards() -> None:
    parts = [shard(1, 2, {"web01"}), shard(2, 2, {"web02", "web03"})]
    still_failing = result(
        "web02", "carol", Status.FAILED, error=ErrorInfo(ErrorKind.UNREACHABLE, "reset")
    )
    rerun = build_report(
        sample_run(id="run-3", rerun_of="merged", started_at=T0 + timedelta(hours=2)),
        [still_failing],
    )
    merged = merge_reports([*parts, rerun])
    carol = next(t for t in merged.report.targets if t.account == "carol")
    assert carol.error == ErrorInfo(ErrorKind.UNREACHABLE, "reset")
    assert merged.report.run.started_at == T0


def test_rerun_of_another_fleet_is_refused() -> None:
    rerun = build_report(sample_run(id="r", rerun_of="run-1", fleet_id="other"), [])
    with pytest.raises(ConfigError, match="reports of different runs"):
        merge_reports([sample_report(), rerun])


# ---------------------------------------------------------------------------------------------
# baseline


def with_files(report: Report, target: str, *files: InfectedFile) -> Report:
    targets = []
    for t in report.targets:
        if str(t.target) == target:
            status = Status.INFECTED if files else Status.CLEAN
            t = replace(t, infected_files=files, status=status)
        targets.append(t)
    return build_report(report.run, targets)


def test_baseline_marks_new_recurring_and_resolved() -> None:
    baseline = sample_report()
    alice = baseline.targets[0].infected_files
    # carol (failed) had a file in the baseline: unknown now, so not resolved.
    carol_file = InfectedFile("/home/carol/x", "Trojan.X")
    baseline = build_report(
        baseline.run,
        [
            replace(t, infected_files=(carol_file,)) if t.account == "carol" else t
            for t in baseline.targets
        ],
    )
    now = with_files(
        sample_report(), "web01/alice/home", alice[0], InfectedFile("/home/alice/new", "V")
    )
    now = with_files(now, "web01/bob/mail")  # its file is gone: resolved
    compared = apply_baseline(now, baseline)
    deltas = [(f.path, f.delta) for t in compared.targets for f in t.infected_files]
    assert deltas == [("/home/alice/public_html/x.php", "recurring"), ("/home/alice/new", "new")]
    assert [(r.server, r.account, r.scan_type, r.virus) for r in compared.resolved] == [
        ("web01", "alice", ScanType.HOME, "Eicar-Test-Signature"),
        ("web01", "bob", ScanType.MAIL, "Php.Webshell-1"),
    ]
    delta = compared.summary.delta
    assert delta is not None and (delta.new, delta.recurring, delta.resolved) == (1, 1, 2)
    doc = report_to_dict(compared)
    assert doc["summary"]["delta"] == {"new": 1, "recurring": 1, "resolved": 2}
    assert list(doc)[-1] == "resolved"
    validate_report_dict(doc)
    assert report_from_dict(doc, "r.json") == compared
    assert "delta" not in report_to_dict(now)["summary"]


def test_infected_csv_gets_a_delta_column_and_resolved_rows_only_when_compared() -> None:
    baseline = sample_report()
    now = with_files(sample_report(), "web01/bob/mail")
    compared = apply_baseline(now, baseline)
    rows = list(csv.DictReader(io.StringIO(render(compared, ["csv"])["infected.csv"])))
    assert list(rows[0]) == [
        "server",
        "account",
        "scan_type",
        "path",
        "virus",
        "action",
        "outcome",
        "message",
        "delta",
        "accepted",
        "accepted_reason",
        "accepted_expires",
        "canary",
    ]
    assert [r["delta"] for r in rows] == ["recurring", "recurring", "resolved"]
    resolved = rows[-1]
    assert (resolved["account"], resolved["action"], resolved["outcome"]) == ("bob", "", "")
    plain = render(now, ["csv"])["infected.csv"].splitlines()[0]
    assert plain == (
        "server,account,scan_type,path,virus,action,outcome,message"
        ",accepted,accepted_reason,accepted_expires,canary"
    )
    html = render(compared, ["html"])["report.html"]
    assert "<span>resolved</span>" in html


def test_merge_keeps_the_delta_only_when_every_report_was_compared() -> None:
    baseline = sample_report()
    parts = [shard(1, 2, {"web01"}), shard(2, 2, {"web02", "web03"})]
    compared = [apply_baseline(p, baseline) for p in parts]
    merged = merge_reports(compared).report
    assert merged.summary.delta is not None and merged.summary.delta.recurring == 3
    mixed = merge_reports([compared[0], parts[1]]).report
    assert mixed.summary.delta is None
    assert all(f.delta is None for t in mixed.targets for f in t.infected_files)


# ---------------------------------------------------------------------------------------------
# notifications


def test_should_notify_modes() -> None:
    infected = sample_report()
    clean = build_report(sample_run(), [t for t in infected.targets if not t.infected_files])
    assert should_notify(clean, "always") and not should_notify(clean, "infected")
    assert should_notify(infected, "infected") and should_notify(infected, "new")
    recurring_only = apply_baseline(infected, infected)
    assert not should_notify(recurring_only, "new")
    assert should_notify(recurring_only, "infected")
    assert not should_notify(clean, "new")
    with pytest.raises(ValueError, match="unknown notify mode"):
        should_notify(clean, "sometimes")


def test_notification_payload_is_one_line_and_the_summary() -> None:
    payload = notification_payload(sample_report())
    assert payload["text"] == (
        "clamfleet inventory.yaml: 6 targets, 3 infected files, 2 failed, exit 1"
    )
    assert payload["summary"]["infected_files"] == 3
    new = notification_payload(apply_baseline(sample_report(), build_report(sample_run(), [])))
    assert "3 infected files (3 new)" in new["text"]
    assert "\n" not in new["text"]


def test_target_key_includes_scan_type() -> None:
    assert Target("a", "b", ScanType.HOME) != Target("a", "b", ScanType.MAIL)
