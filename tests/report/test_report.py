"""The report model and report.json: the contract of design.md section 6, schema, round trip."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import ConfigError
from orchestrator.model import (
    Action,
    Downtime,
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    Outcome,
    RunInfo,
    RunWindow,
    ScanStats,
    ScanType,
    Status,
    Target,
    TargetResult,
)
from orchestrator.report import (
    SCHEMA,
    Report,
    build_report,
    exit_code,
    load_report,
    render,
    report_from_dict,
    report_to_dict,
    summary_table,
    validate_report_dict,
    write_report,
)

T0 = datetime(2026, 11, 28, 2, 0, 0, tzinfo=UTC)
EVIL_PATH = '/home/bob/mail/<script>alert("x")</script>&co\'s.eml'


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sample_run(**changes: Any) -> RunInfo:
    run = RunInfo(
        id="run-1",
        tool_version="0.1.0",
        started_at=T0,
        finished_at=at(300.4567),
        inventory="inventory.yaml",
        shard="1/1",
        dry_run=False,
        servers=("web01", "web02", "web03"),
        fleet_id="fleet-a",
    )
    return replace(run, **changes)


def result(
    server: str,
    account: str,
    status: Status,
    *,
    scan_type: ScanType = ScanType.HOME,
    files: tuple[InfectedFile, ...] = (),
    error: ErrorInfo | None = None,
    scanned: int | None = 100,
    duration: float | None = 10.0,
) -> TargetResult:
    scan = None if scanned is None else ScanStats(1764295200, scanned, scanned * 50, scanned)
    return TargetResult(
        target=Target(server, account, scan_type),
        status=status,
        scan=scan,
        infected_files=files,
        started_at=at(1) if duration is not None else None,
        finished_at=at(1 + duration) if duration is not None else None,
        duration_s=duration,
        api_calls=5,
        error=error,
    )


def sample_results() -> list[TargetResult]:
    """Every status, several outcomes and error kinds, a path that needs escaping everywhere."""
    return [
        result(
            "web01",
            "alice",
            Status.INFECTED,
            files=(
                InfectedFile(
                    "/home/alice/public_html/x.php",
                    "Php.Webshell-1",
                    Action.QUARANTINE,
                    Outcome.QUARANTINED,
                ),
                InfectedFile("/home/alice/eicar.com", "Eicar-Test-Signature"),
            ),
            scanned=135,
            duration=41.23,
        ),
        result("web01", "bob", Status.CLEAN, duration=3.06),
        result(
            "web01",
            "bob",
            Status.INFECTED,
            scan_type=ScanType.MAIL,
            files=(
                InfectedFile(
                    EVIL_PATH,
                    "Php.Webshell-1",
                    Action.CLEANSE_MAILBOX,
                    Outcome.ERROR,
                    "mailbox locked, 'retry' <later>",
                ),
            ),
        ),
        result(
            "web02",
            "carol",
            Status.FAILED,
            error=ErrorInfo(ErrorKind.TIMEOUT, "scan exceeded 21600 s"),
            scanned=40,
        ),
        result(
            "web02",
            "dave",
            Status.SKIPPED,
            error=ErrorInfo(ErrorKind.SKIPPED, "account suspended"),
            scanned=None,
            duration=None,
        ),
        result(
            "web03",
            "*",
            Status.FAILED,
            error=ErrorInfo(ErrorKind.AUTH, "credentials refused"),
            scanned=None,
            duration=0.5,
        ),
    ]


def sample_report(**run_changes: Any) -> Report:
    return build_report(sample_run(**run_changes), sample_results())


def expected_target(server: str, account: str, status: str, **over: Any) -> dict[str, Any]:
    target: dict[str, Any] = {
        "server": server,
        "account": account,
        "scan_type": "home",
        "status": status,
        "scan": {
            "time_started": 1764295200,
            "scanned_file_count": 100,
            "scanned_file_size": 5000,
            "total_file_count": 100,
        },
        "infected_files": [],
        "started_at": "2026-11-28T02:00:01Z",
        "finished_at": "2026-11-28T02:00:11Z",
        "duration_s": 10.0,
        "api_calls": 5,
        "error": None,
        "verified": None,  # additive: set on clean targets of a server with a canary
    }
    target.update(over)
    for f in target["infected_files"]:
        f.setdefault("accepted", None)  # additive: the accepted-findings entry, if one matched
    return target


EXPECTED: dict[str, Any] = {
    "schema": "clamfleet.report/1",
    "run": {
        "id": "run-1",
        "tool_version": "0.1.0",
        "started_at": "2026-11-28T02:00:00Z",
        "finished_at": "2026-11-28T02:05:00Z",
        "inventory": "inventory.yaml",
        "shard": "1/1",
        "dry_run": False,
        "servers": ["web01", "web02", "web03"],
        "fleet_id": "fleet-a",
        "rerun_of": None,
        "shard_servers": [],  # additive: the servers this shard was given
    },
    "summary": {
        "servers": 3,
        "targets": 6,
        "clean": 1,
        "infected": 2,
        "failed": 2,
        "skipped": 1,
        "infected_files": 3,
        "outcomes": {"not-requested": 1, "quarantined": 1, "error": 1},
        "exit_code": 1,
        "accepted": 0,  # additive: accepted files, counted apart
        "unverified": 0,  # additive: clean targets whose canary was not detected
    },
    "targets": [
        expected_target(
            "web01",
            "alice",
            "infected",
            scan={
                "time_started": 1764295200,
                "scanned_file_count": 135,
                "scanned_file_size": 6750,
                "total_file_count": 135,
            },
            infected_files=[
                {
                    "path": "/home/alice/public_html/x.php",
                    "virus": "Php.Webshell-1",
                    "action": "quarantine",
                    "outcome": "quarantined",
                    "message": None,
                },
                {
                    "path": "/home/alice/eicar.com",
                    "virus": "Eicar-Test-Signature",
                    "action": "report",
                    "outcome": "not-requested",
                    "message": None,
                },
            ],
            finished_at="2026-11-28T02:00:42Z",
            duration_s=41.2,
        ),
        expected_target(
            "web01", "bob", "clean", finished_at="2026-11-28T02:00:04Z", duration_s=3.1
        ),
        expected_target(
            "web01",
            "bob",
            "infected",
            scan_type="mail",
            infected_files=[
                {
                    "path": EVIL_PATH,
                    "virus": "Php.Webshell-1",
                    "action": "cleanse_mailbox",
                    "outcome": "error",
                    "message": "mailbox locked, 'retry' <later>",
                }
            ],
        ),
        expected_target(
            "web02",
            "carol",
            "failed",
            scan={
                "time_started": 1764295200,
                "scanned_file_count": 40,
                "scanned_file_size": 2000,
                "total_file_count": 40,
            },
            error={"kind": "timeout", "message": "scan exceeded 21600 s"},
        ),
        expected_target(
            "web02",
            "dave",
            "skipped",
            scan=None,
            started_at=None,
            finished_at=None,
            duration_s=None,
            error={"kind": "skipped", "message": "account suspended"},
        ),
        expected_target(
            "web03",
            "*",
            "failed",
            scan=None,
            finished_at="2026-11-28T02:00:01Z",
            duration_s=0.5,
            error={"kind": "auth", "message": "credentials refused"},
        ),
    ],
}


def test_report_json_is_the_contract_exactly(tmp_path: Path) -> None:
    doc = report_to_dict(sample_report())
    assert doc == EXPECTED
    assert list(doc) == ["schema", "run", "summary", "targets"]
    assert list(doc["run"])[:7] == [
        "id",
        "tool_version",
        "started_at",
        "finished_at",
        "inventory",
        "shard",
        "dry_run",
    ]
    assert list(doc["summary"]) == list(EXPECTED["summary"])
    assert list(doc["summary"]["outcomes"]) == ["not-requested", "quarantined", "error"]
    for target in doc["targets"]:
        assert list(target) == list(EXPECTED["targets"][0])
    written = json.loads((write_report(sample_report(), tmp_path)[0]).read_text("utf-8"))
    assert written == EXPECTED


def test_written_report_json_is_indented_utf8_and_validates(tmp_path: Path) -> None:
    report = sample_report()
    target = replace(report.targets[1], target=Target("web01", "zoë", ScanType.HOME))
    report = build_report(report.run, [target])
    path = write_report(report, tmp_path, ["json"])[0]
    raw = path.read_bytes()
    assert "zoë".encode() in raw
    assert raw.startswith(b'{\n  "schema"')
    validate_report_dict(json.loads(raw))


def test_sample_validates_and_schema_is_strict() -> None:
    import jsonschema

    doc = report_to_dict(sample_report())
    validate_report_dict(doc)
    broken: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
        ("status", lambda d: d["targets"][0].update(status="x")),
        ("extra key", lambda d: d["targets"][0].update(extra=1)),
        ("outcome", lambda d: d["targets"][0]["infected_files"][0].update(outcome="gone")),
        ("kind", lambda d: d["targets"][3]["error"].update(kind="oops")),
        ("missing", lambda d: d["run"].pop("shard")),
        ("timestamp", lambda d: d["run"].update(started_at="2026-11-28 02:00")),
        ("schema", lambda d: d.update(schema="clamfleet.report/2")),
        ("summary key", lambda d: d["summary"].update(bogus=0)),
    ]
    for label, mutate in broken:
        bad = json.loads(json.dumps(doc))
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            validate_report_dict(bad)
        assert label


def test_runtime_package_does_not_import_jsonschema() -> None:
    import subprocess
    import sys

    code = "import sys, orchestrator.report; sys.exit('jsonschema' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_summary_counts_and_target_order_are_kept() -> None:
    report = sample_report()
    s = report.summary
    assert (s.servers, s.targets, s.clean, s.infected, s.failed, s.skipped) == (3, 6, 1, 2, 2, 1)
    assert s.infected_files == 3
    assert [str(t.target) for t in report.targets] == [str(r.target) for r in sample_results()]
    reordered = build_report(sample_run(), list(reversed(sample_results())))
    assert reordered.targets[0].server == "web03"


def test_exit_code_precedence() -> None:
    results = sample_results()
    infected, clean, _, failed, skipped, _ = results
    assert exit_code([]) == 0
    assert exit_code([clean, skipped]) == 0, "skipped is not a failure"
    assert exit_code([clean, failed]) == 2
    assert exit_code([failed, infected]) == 1, "infection takes precedence over failure"
    failed_with_files = replace(failed, infected_files=infected.infected_files)
    assert exit_code([failed_with_files]) == 1, "any infected file found counts"
    assert build_report(sample_run(), [clean, failed]).summary.exit_code == 2


def test_empty_report() -> None:
    report = build_report(sample_run(finished_at=None), [])
    doc = report_to_dict(report)
    assert doc["summary"]["outcomes"] == {} and doc["summary"]["exit_code"] == 0
    assert doc["run"]["finished_at"] is None
    validate_report_dict(doc)
    assert report_from_dict(doc, "r.json") == report


def test_build_normalises_to_what_json_carries() -> None:
    paris = timezone(timedelta(hours=1))
    target = replace(
        sample_results()[1],
        started_at=datetime(2026, 11, 28, 3, 0, 1, 999999, tzinfo=paris),
        duration_s=3.04999,
    )
    report = build_report(sample_run(started_at=datetime(2026, 11, 28, 2, 0)), [target])
    assert report.run.started_at == T0 and report.run.started_at.tzinfo is UTC
    assert report.targets[0].started_at == at(1)
    assert report.targets[0].duration_s == 3.0


def test_round_trip_of_the_sample() -> None:
    report = sample_report(rerun_of="run-0")
    assert report_from_dict(report_to_dict(report), "r.json") == report
    assert report_from_dict(report_to_dict(report), "r.json").run.rerun_of == "run-0"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["targets"][3].update(status="x"),
            "a.json: targets[3].status: unknown status 'x'",
        ),
        (lambda d: d["run"].pop("id"), "a.json: run: missing key 'id'"),
        (
            lambda d: d["targets"][0]["infected_files"][1].update(action="burn"),
            "a.json: targets[0].infected_files[1].action: unknown action 'burn'",
        ),
        (
            lambda d: d["targets"][1].update(api_calls="5"),
            "a.json: targets[1].api_calls: expected an integer, got a string",
        ),
        (
            lambda d: d["targets"][4]["error"].update(kind="meh"),
            "a.json: targets[4].error.kind: unknown error kind 'meh'",
        ),
        (
            lambda d: d["run"].update(started_at="yesterday"),
            "a.json: run.started_at: not an ISO 8601 timestamp: 'yesterday'",
        ),
        (
            lambda d: d.update(schema="other/1"),
            "a.json: schema: unsupported schema 'other/1' (expected 'clamfleet.report/1')",
        ),
        (
            lambda d: d["summary"].update(failed=7),
            "a.json: summary.failed: 7 disagrees with the targets (2)",
        ),
        (lambda d: d.update(targets={}), "a.json: targets: expected a list, got an object"),
    ],
)
def test_report_from_dict_errors_name_file_and_field(mutate: Any, message: str) -> None:
    doc = report_to_dict(sample_report())
    mutate(doc)
    with pytest.raises(ConfigError) as info:
        report_from_dict(doc, "a.json")
    assert str(info.value) == message


BERLIN_WINDOW = RunWindow(
    end=datetime(2026, 11, 28, 6, 0, tzinfo=timezone(timedelta(hours=1), "CET")),
    timezone="Europe/Berlin",
    source="--finish-by",
)


def test_the_window_is_written_with_its_own_offset_and_read_back_equal() -> None:
    report = sample_report(window=BERLIN_WINDOW)
    doc = report_to_dict(report)
    assert doc["run"]["window"] == {
        "end": "2026-11-28T06:00:00+01:00",
        "timezone": "Europe/Berlin",
        "source": "--finish-by",
    }
    validate_report_dict(json.loads(json.dumps(doc)))
    back = report_from_dict(json.loads(json.dumps(doc)), "r.json")
    assert back == report
    assert back.run.window is not None and back.run.window.end.strftime("%H:%M") == "06:00"
    assert "window" not in report_to_dict(sample_report())["run"]  # optional: no window, no key


def test_a_window_without_an_offset_is_refused_naming_the_field() -> None:
    doc = report_to_dict(sample_report(window=BERLIN_WINDOW))
    doc["run"]["window"]["end"] = "2026-11-28T06:00:00"
    with pytest.raises(ConfigError, match=r"a\.json: run\.window\.end: timestamp without"):
        report_from_dict(doc, "a.json")


def test_the_html_header_shows_the_window() -> None:
    html = render(sample_report(window=BERLIN_WINDOW), ["html"])["report.html"]
    assert "window: no new scan after 06:00 Europe/Berlin (2026-11-28 06:00 +0100" in html


def test_report_from_dict_ignores_unknown_additive_keys() -> None:
    doc = report_to_dict(sample_report())
    doc["future"] = {"x": 1}
    doc["targets"][0]["future"] = True
    assert report_from_dict(doc, "a.json") == sample_report()


def test_load_report(tmp_path: Path) -> None:
    path = write_report(sample_report(), tmp_path)[0]
    assert load_report(path) == sample_report()
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "schema": ', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.json:2: invalid JSON"):
        load_report(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "x", "run": {}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"other\.json: schema: unsupported schema 'x'"):
        load_report(other)
    with pytest.raises(ConfigError, match=r"missing\.json: cannot read report"):
        load_report(tmp_path / "missing.json")
    assert str(SCHEMA) == "clamfleet.report/1"


def test_summary_table_lists_each_server_and_a_total() -> None:
    table = summary_table(sample_report())
    lines = table.splitlines()
    assert lines[0].split() == [
        "server",
        "targets",
        "clean",
        "infected",
        "failed",
        "skipped",
        "infected",
        "files",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in lines if not line.startswith("-")}
    assert rows["web01"] == ["3", "1", "2", "0", "0", "3"]
    assert rows["web02"] == ["2", "0", "0", "1", "1", "0"]
    assert rows["web03"] == ["1", "0", "0", "1", "0", "0"]
    assert rows["total"] == ["6", "1", "2", "2", "1", "3"]


def test_servers_that_went_down_are_in_run_outages_the_summary_and_the_html() -> None:
    outages = {
        "web02": (
            Downtime(at(10), at(42.25), 32.25),
            Downtime(at(100), at(114), 14.0),
        ),
        "web03": (Downtime(at(50), None, 900.0, gave_up=True),),
    }
    report = build_report(sample_run(outages=outages), sample_results())
    doc = report_to_dict(report)
    validate_report_dict(json.loads(json.dumps(doc)))
    assert doc["run"]["outages"]["web02"][0] == {
        "down_at": "2026-11-28T02:00:10Z",
        "back_at": "2026-11-28T02:00:42Z",
        "down_s": 32.2,
        "gave_up": False,
    }
    assert doc["run"]["outages"]["web03"] == [
        {"down_at": "2026-11-28T02:00:50Z", "back_at": None, "down_s": 900.0, "gave_up": True}
    ]
    assert report_from_dict(doc, "r.json") == report
    assert summary_table(report).splitlines()[-2:] == [
        "outage: web02 down 2 times, 46.2 s in all, back",
        "outage: web03 down 1 time, 900.0 s in all, given up",
    ]
    html = render(report, ["html"])["report.html"]
    assert "<h2>Server outages</h2>" in html and "given up" in html and "46.2 s" in html
    quiet = report_to_dict(sample_report())
    assert "outages" not in quiet["run"], "additive: only when a server went down"
    assert "Server outages" not in render(sample_report(), ["html"])["report.html"]


# ---------------------------------------------------------------------------------------------
# property: any report survives report.json


names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))
counts = st.integers(min_value=0, max_value=2**40)

infected_files = st.builds(
    InfectedFile,
    path=names,
    virus=names,
    action=st.sampled_from(Action),
    outcome=st.sampled_from(Outcome),
    message=st.none() | names,
    delta=st.none(),
)
target_results = st.builds(
    TargetResult,
    target=st.builds(Target, names, names, st.sampled_from(ScanType)),
    status=st.sampled_from(Status),
    scan=st.none()
    | st.builds(ScanStats, st.none() | st.integers(0, 2**31), counts, counts, counts),
    infected_files=st.lists(infected_files, max_size=3).map(tuple),
    started_at=st.none() | moments,
    finished_at=st.none() | moments,
    duration_s=st.none() | st.integers(0, 10**6).map(lambda n: n / 10),
    api_calls=st.integers(0, 10**4),
    error=st.none() | st.builds(ErrorInfo, st.sampled_from(ErrorKind), names),
)
runs = st.builds(
    RunInfo,
    id=names,
    tool_version=names,
    started_at=moments,
    finished_at=st.none() | moments,
    inventory=names,
    shard=st.just("1/1"),
    dry_run=st.booleans(),
    servers=st.lists(names, max_size=4).map(tuple),
    fleet_id=st.just("") | names,
    rerun_of=st.none() | names,
    window=st.none()
    | st.builds(
        RunWindow,
        end=st.builds(
            lambda moment, minutes: moment.astimezone(timezone(timedelta(minutes=minutes))),
            moments,
            st.integers(-12 * 60, 14 * 60),
        ),
        timezone=st.sampled_from(["local", "UTC", "Europe/Berlin"]),
        source=st.sampled_from(["settings", "--finish-by"]),
    ),
    outages=st.dictionaries(
        names,
        st.lists(
            st.builds(
                Downtime,
                down_at=moments,
                back_at=st.none() | moments,
                seconds=st.integers(0, 10**6).map(lambda n: n / 10),
                gave_up=st.booleans(),
            ),
            min_size=1,
            max_size=3,
        ).map(tuple),
        max_size=2,
    ),
)


@settings(max_examples=60, deadline=None)
@given(run=runs, results=st.lists(target_results, max_size=6))
def test_round_trip_property(run: RunInfo, results: list[TargetResult]) -> None:
    report = build_report(run, results)
    doc = report_to_dict(report)
    validate_report_dict(json.loads(json.dumps(doc)))
    assert report_from_dict(json.loads(json.dumps(doc)), "r.json") == report
