"""Every output format, rendered from one report, and the atomic writer."""

from __future__ import annotations

import csv
import io
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from orchestrator.errors import ConfigError
from orchestrator.model import ErrorInfo, ErrorKind, Outcome, ServerPacing, Status
from orchestrator.report import FORMATS, Report, build_report, validate_report_dict, write_report
from orchestrator.report import writers as writers_module
from tests.report.test_attention import night
from tests.report.test_report import EVIL_PATH, result, sample_report, sample_run

DATA = Path(__file__).resolve().parents[1] / "data"
ALL_FILES = {
    "report.json",
    "targets.csv",
    "infected.csv",
    "report.html",
    "junit.xml",
    "clamfleet.prom",
    "report.sarif",
}


@pytest.fixture
def written(tmp_path: Path) -> Path:
    out = tmp_path / "nested" / "out"
    paths = write_report(sample_report(), out, FORMATS)
    assert paths[0] == out / "report.json"
    assert {p.name for p in paths} == ALL_FILES
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_default_formats_and_json_always(tmp_path: Path) -> None:
    names = {p.name for p in write_report(sample_report(), tmp_path)}
    assert names == {"report.json", "targets.csv", "infected.csv", "report.html"}
    assert [p.name for p in write_report(sample_report(), tmp_path / "j", ["junit"])] == [
        "report.json",
        "junit.xml",
    ]
    with pytest.raises(ConfigError, match="unknown format pdf"):
        write_report(sample_report(), tmp_path / "x", ["pdf"])
    assert not (tmp_path / "x").exists()


def test_json_and_both_csvs_agree(written: Path) -> None:
    doc = json.loads((written / "report.json").read_text("utf-8"))
    validate_report_dict(doc)
    with (written / "targets.csv").open(newline="") as fh:
        assert next(csv.reader(fh)) == [
            "server",
            "account",
            "scan_type",
            "status",
            "infected_count",
            "scanned_file_count",
            "scanned_file_size",
            "duration_s",
            "error_kind",
            "error_message",
            "verified",
        ]
    with (written / "infected.csv").open(newline="") as fh:
        assert next(csv.reader(fh)) == [
            *("server", "account", "scan_type", "path", "virus", "action", "outcome", "message"),
            *("accepted", "accepted_reason", "accepted_expires", "canary"),
        ]
    rows = read_csv(written / "targets.csv")
    expected_rows = [
        {
            "server": t["server"],
            "account": t["account"],
            "scan_type": t["scan_type"],
            "status": t["status"],
            "infected_count": str(len(t["infected_files"])),
            "scanned_file_count": str(t["scan"]["scanned_file_count"]) if t["scan"] else "",
            "scanned_file_size": str(t["scan"]["scanned_file_size"]) if t["scan"] else "",
            "duration_s": "" if t["duration_s"] is None else str(t["duration_s"]),
            "error_kind": t["error"]["kind"] if t["error"] else "",
            "error_message": t["error"]["message"] if t["error"] else "",
            "verified": "",
        }
        for t in doc["targets"]
    ]
    assert rows == expected_rows
    infected = read_csv(written / "infected.csv")
    assert infected == [
        {
            "server": t["server"],
            "account": t["account"],
            "scan_type": t["scan_type"],
            **{k: f[k] or "" for k in ("path", "virus", "action", "outcome", "message")},
            **dict.fromkeys(("accepted", "accepted_reason", "accepted_expires", "canary"), ""),
        }
        for t in doc["targets"]
        for f in t["infected_files"]
    ]
    assert len(infected) == doc["summary"]["infected_files"] == 3
    assert EVIL_PATH in {r["path"] for r in infected}


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("old", encoding="utf-8")
    before = os.stat(tmp_path / "report.json").st_ino
    write_report(sample_report(), tmp_path, FORMATS)
    assert json.loads((tmp_path / "report.json").read_text("utf-8"))["schema"]
    assert os.stat(tmp_path / "report.json").st_ino != before, "renamed over, not rewritten"
    assert {p.name for p in tmp_path.iterdir()} == ALL_FILES
    assert oct((tmp_path / "report.json").stat().st_mode & 0o777) == oct(0o644)


def test_a_failing_write_changes_nothing_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_report(sample_report(), tmp_path)
    old = (tmp_path / "report.json").read_text("utf-8")
    calls = {"n": 0}
    real_replace = os.replace

    def flaky_replace(src: str, dst: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    changed = build_changed_report()
    with pytest.raises(OSError, match="disk full"):
        write_report(changed, tmp_path)
    assert (tmp_path / "report.json").read_text("utf-8") == old
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    def broken(report: Report, **_context: object) -> str:
        raise RuntimeError("render bug")

    monkeypatch.setitem(writers_module.OUTPUTS, "html", (("report.html", broken),))
    with pytest.raises(RuntimeError):
        write_report(changed, tmp_path)
    assert (tmp_path / "report.json").read_text("utf-8") == old, "rendering precedes writing"


def build_changed_report() -> Report:
    from orchestrator.report import build_report

    report = sample_report()
    return build_report(report.run, report.targets[:1])


# ---------------------------------------------------------------------------------------------
# JUnit


def test_junit_counts_and_cases(written: Path) -> None:
    root = ET.parse(written / "junit.xml").getroot()
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "6",
        "failures": "2",
        "errors": "2",
        "skipped": "1",
    }
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["web01", "web02", "web03"]
    counts = [
        (s.get("tests"), s.get("failures"), s.get("errors"), s.get("skipped")) for s in suites
    ]
    assert counts == [("3", "2", "0", "0"), ("2", "0", "1", "1"), ("1", "0", "1", "0")]
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    alice = cases[("web01", "alice/home")]
    failure = alice.find("failure")
    assert failure is not None and failure.text is not None
    assert "/home/alice/public_html/x.php: Php.Webshell-1" in failure.text
    assert "/home/alice/eicar.com" in failure.text
    mail = cases[("web01", "bob/mail")].find("failure")
    assert mail is not None and EVIL_PATH in (mail.text or "")
    error = cases[("web02", "carol/home")].find("error")
    assert error is not None
    assert (error.get("type"), error.get("message")) == ("timeout", "scan exceeded 21600 s")
    skipped = cases[("web02", "dave/home")].find("skipped")
    assert skipped is not None and skipped.get("message") == "account suspended"
    assert list(cases[("web01", "bob/home")]) == []
    assert cases[("web01", "alice/home")].get("time") == "41.2"


def test_junit_survives_characters_xml_cannot_carry(tmp_path: Path) -> None:
    from dataclasses import replace

    from orchestrator.report import build_report

    report = sample_report()
    target = report.targets[0]
    bad = replace(target.infected_files[0], path="/home/a/\x01bell\x07.php")
    report = build_report(report.run, [replace(target, infected_files=(bad,))])
    write_report(report, tmp_path, ["junit"])
    failure = ET.parse(tmp_path / "junit.xml").getroot().find(".//failure")
    assert failure is not None and "/home/a/\\x01bell\\x07.php" in (failure.text or "")


# ---------------------------------------------------------------------------------------------
# Prometheus


def prometheus_families(path: Path) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    text = path.read_text("utf-8")
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_prometheus_textfile_holds_fleet_and_server_totals_not_targets(written: Path) -> None:
    families = prometheus_families(written / "clamfleet.prom")
    assert all(f.type == "gauge" and f.documentation for f in families.values())

    def samples(name: str, *keys: str) -> dict[tuple[str, ...], float]:
        return {tuple(s.labels[k] for k in keys): s.value for s in families[name].samples}

    # Fleet totals, every status present (an alert on `> 0` needs the zero series too).
    assert samples("clamfleet_targets", "shard", "status") == {
        ("1/1", "clean"): 1,
        ("1/1", "infected"): 2,
        ("1/1", "failed"): 2,
        ("1/1", "skipped"): 1,
        ("1/1", "deferred"): 0,
    }
    assert samples("clamfleet_infected_files", "shard") == {("1/1",): 3}
    assert samples("clamfleet_accepted_files", "shard") == {("1/1",): 0}
    assert samples("clamfleet_unverified_targets", "shard") == {("1/1",): 0}
    by_server = samples("clamfleet_server_targets", "server", "status")
    assert by_server[("web01", "infected")] == 2 and by_server[("web01", "clean")] == 1
    assert by_server[("web02", "failed")] == 1 and by_server[("web02", "skipped")] == 1
    assert by_server[("web03", "failed")] == 1 and by_server[("web03", "clean")] == 0
    assert len(by_server) == 3 * 5
    assert samples("clamfleet_server_infected_files", "server") == {
        ("web01",): 3,
        ("web02",): 0,
        ("web03",): 0,
    }
    # By default nothing grows with the number of targets (10,000 targets: 60,000 series).
    assert not [name for name in families if name.startswith("clamfleet_target_")]
    sample_count = sum(len(f.samples) for f in families.values())
    # statuses, infected files, accepted files, unverified targets, files by outcome; per
    # server statuses, files, last success; run
    assert sample_count == 5 + 1 + 1 + 1 + 7 + 3 * (5 + 1 + 1) + 2
    (exit_sample,) = families["clamfleet_run_exit_code"].samples
    assert exit_sample.value == 1 and exit_sample.labels == {"shard": "1/1"}
    (done,) = families["clamfleet_run_finished_timestamp_seconds"].samples
    report = sample_report()
    assert report.run.finished_at is not None and done.value == report.run.finished_at.timestamp()


def test_prometheus_tells_deferred_from_skipped_and_files_that_need_a_person(
    tmp_path: Path,
) -> None:
    """Deferred targets were never scanned (exit 2), suspended ones are skipped by design:
    two statuses. Files by outcome, every outcome present, so `unknown` and `error` alert."""
    report = build_report(sample_run(), night())
    write_report(report, tmp_path, ["prometheus"])
    families = prometheus_families(tmp_path / "clamfleet.prom")

    def samples(name: str, *keys: str) -> dict[tuple[str, ...], float]:
        return {tuple(s.labels[k] for k in keys): s.value for s in families[name].samples}

    statuses = samples("clamfleet_targets", "status")
    assert statuses[("deferred",)] == 1 and statuses[("skipped",)] == 1  # erin, judy
    assert sum(statuses.values()) == len(report.targets)
    by_server = samples("clamfleet_server_targets", "server", "status")
    assert by_server[("web02", "deferred")] == 1 and by_server[("web02", "skipped")] == 1
    files = samples("clamfleet_files", "shard", "outcome")
    assert set(files) == {("1/1", str(o)) for o in Outcome}
    assert files[("1/1", "unknown")] == 1 and files[("1/1", "error")] == 1
    assert files[("1/1", "deleted")] == 0
    assert sum(files.values()) == report.summary.infected_files


def test_prometheus_has_each_servers_last_successful_scan_and_its_pacing(tmp_path: Path) -> None:
    failing = [result("web03", "kim", Status.FAILED, error=ErrorInfo(ErrorKind.AUTH, "refused"))]
    suspended = [
        result("web04", "lee", Status.SKIPPED, error=ErrorInfo(ErrorKind.SKIPPED, "suspended"))
    ]
    pacing = {"web01": ServerPacing(max_load=4.0, cap=4, peak_load=5.25, seconds_over=42.0)}
    run = sample_run(servers=("web01", "web02", "web03", "web04"), pacing=pacing)
    report = build_report(run, [*night(), *failing, *suspended])
    write_report(report, tmp_path, ["prometheus"])
    families = prometheus_families(tmp_path / "clamfleet.prom")

    def by_server(name: str) -> dict[str, float]:
        return {s.labels["server"]: s.value for s in families[name].samples}

    finished = {
        t.server: t.finished_at.timestamp()
        for t in report.targets
        if t.status in (Status.CLEAN, Status.INFECTED) and t.finished_at is not None
    }
    # 0 for a server whose every scan failed: `time() - x > 2d` fires without absent();
    # none for a server with nothing to scan (all suspended)
    assert by_server("clamfleet_server_last_success_timestamp_seconds") == {
        "web01": finished["web01"],
        "web02": finished["web02"],
        "web03": 0,
    }
    assert by_server("clamfleet_server_load_peak") == {"web01": 5.25}
    assert by_server("clamfleet_server_load_over_max_seconds") == {"web01": 42.0}
    assert by_server("clamfleet_server_load_max") == {"web01": 4.0}


def test_prometheus_per_target_series_only_when_asked(tmp_path: Path) -> None:
    write_report(sample_report(), tmp_path, ["prometheus"], prometheus_per_target=True)
    families = prometheus_families(tmp_path / "clamfleet.prom")

    def samples(name: str) -> dict[tuple[str, str, str], float]:
        return {
            (s.labels["server"], s.labels["account"], s.labels["scan_type"]): s.value
            for s in families[name].samples
        }

    assert samples("clamfleet_target_infected_files") == {
        ("web01", "alice", "home"): 2,
        ("web01", "bob", "home"): 0,
        ("web01", "bob", "mail"): 1,
        ("web02", "carol", "home"): 0,
        ("web02", "dave", "home"): 0,
        ("web03", "*", "home"): 0,
    }
    assert samples("clamfleet_target_failed") == {
        ("web01", "alice", "home"): 0,
        ("web01", "bob", "home"): 0,
        ("web01", "bob", "mail"): 0,
        ("web02", "carol", "home"): 1,
        ("web02", "dave", "home"): 0,
        ("web03", "*", "home"): 1,
    }
    assert samples("clamfleet_target_scanned_files")[("web01", "alice", "home")] == 135
    assert samples("clamfleet_target_scanned_bytes")[("web01", "alice", "home")] == 6750
    assert ("web02", "dave", "home") not in samples("clamfleet_target_scanned_files")
    assert samples("clamfleet_target_scan_duration_seconds")[("web01", "alice", "home")] == 41.2
    last = samples("clamfleet_target_last_success_timestamp_seconds")
    finished = sample_report().targets[0].finished_at
    assert finished is not None
    assert last[("web01", "alice", "home")] == finished.timestamp()
    assert ("web02", "carol", "home") not in last and ("web03", "*", "home") not in last
    # The totals are still there, and no per-target family shares a name with them.
    assert samples_total(families["clamfleet_infected_files"]) == 3


def samples_total(family: Any) -> float:
    return float(sum(s.value for s in family.samples))


def test_prometheus_label_values_are_escaped(tmp_path: Path) -> None:
    from dataclasses import replace

    from prometheus_client.parser import text_string_to_metric_families

    from orchestrator.model import Target
    from orchestrator.report import build_report

    report = sample_report()
    odd = 'we"b\\01\nx'
    target = replace(report.targets[1], target=Target(odd, "bob", report.targets[1].scan_type))
    write_report(build_report(report.run, [target]), tmp_path, ["prometheus"])
    text = (tmp_path / "clamfleet.prom").read_text("utf-8")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (sample,) = families["clamfleet_server_infected_files"].samples
    assert sample.labels["server"] == odd


# ---------------------------------------------------------------------------------------------
# SARIF


def sarif_validator() -> Any:
    import jsonschema

    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text("utf-8"))
    assert schema["id"].endswith("/sarif-schema-2.1.0.json")
    return jsonschema.Draft4Validator(schema)


def test_sarif_validates_against_the_official_schema(written: Path) -> None:
    log = json.loads((written / "report.sarif").read_text("utf-8"))
    sarif_validator().validate(log)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("clamfleet", "0.1.0")
    assert [r["id"] for r in driver["rules"]] == ["Php.Webshell-1", "Eicar-Test-Signature"]
    results = run["results"]
    assert len(results) == 3
    assert {r["level"] for r in results} == {"error"}
    for r in results:
        assert driver["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
    first = results[0]
    assert first["properties"] == {
        "server": "web01",
        "account": "alice",
        "scan_type": "home",
        "action": "quarantine",
        "outcome": "quarantined",
    }
    for word in ("Php.Webshell-1", "quarantine", "quarantined"):
        assert word in first["message"]["text"]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results]
    assert uris[0] == "file:///home/alice/public_html/x.php"
    for uri in uris:
        parts = urlsplit(uri)
        assert parts.scheme == "file" and not any(c in uri for c in ' <>"\\')
    assert unquote(urlsplit(uris[2]).path) == EVIL_PATH
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["properties"]["server"] for n in notes] == ["web02", "web03"]
    assert run["invocations"][0]["executionSuccessful"] is False


def test_sarif_of_a_clean_report_validates(tmp_path: Path) -> None:
    from orchestrator.report import build_report

    report = sample_report()
    clean = [t for t in report.targets if t.status is Status.CLEAN]
    write_report(build_report(report.run, clean), tmp_path, ["sarif"])
    log = json.loads((tmp_path / "report.sarif").read_text("utf-8"))
    sarif_validator().validate(log)
    assert log["runs"][0]["results"] == []


# ---------------------------------------------------------------------------------------------
# HTML


def test_html_is_self_contained_shows_the_numbers_and_escapes(written: Path) -> None:
    page = (written / "report.html").read_text("utf-8")
    assert "<script" not in page, "the <script> path is escaped, and the page has no script"
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;co&#x27;s.eml" in page
    assert "mailbox locked, &#x27;retry&#x27; &lt;later&gt;" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "<link" not in page and "src=" not in page
    assert "Exit code 1" in page
    for label, number in [("targets", 6), ("infected files", 3), ("failed", 2), ("skipped", 1)]:
        assert f"<b>{number}</b><span>{label}</span>" in page
    assert page.count("<svg") == 2
    assert "scan exceeded 21600 s" in page and "credentials refused" in page
    ET.fromstring(_svgs(page)[0])  # the charts are well-formed XML


def _svgs(page: str) -> list[str]:
    chunks = page.split("<svg")[1:]
    return ["<svg" + c.split("</svg>")[0] + "</svg>" for c in chunks]


def test_html_per_server_table(written: Path) -> None:
    page = (written / "report.html").read_text("utf-8")
    row = (
        '<tr><td>web01</td><td class="n">3</td><td class="n">1</td><td class="n">2</td>'
        '<td class="n">0</td><td class="n">0</td><td class="n">3</td><td class="n">10.0 s</td></tr>'
    )
    assert row in page


def test_csv_has_no_delta_column_without_baseline(written: Path) -> None:
    header = io.StringIO((written / "infected.csv").read_text("utf-8")).readline()
    assert "delta" not in header
