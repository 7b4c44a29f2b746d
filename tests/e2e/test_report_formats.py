"""The reports of real runs and merges: every format says what report.json says, the published
schema validates every report the CLI writes, and report.html's tables match report.json.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from orchestrator.report import validate_report_dict
from orchestrator.simulator import FleetSpec, generate_fleet
from tests.support import Outcome, Sim, target_key

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "data"
ALL_FORMATS = "json,csv,html,junit,prometheus,sarif"
TargetKey = tuple[str, str, str]


# ---------------------------------------------------------------------------------------------
# Formats: every one, from a real run and from a merge, agrees with report.json


def mixed_fleet(seed: int = 61) -> FleetSpec:
    """Infected, clean, suspended (skipped) and feature-less (failed) accounts on 3 servers."""
    return generate_fleet(
        servers=3,
        accounts=4,
        infected_ratio=0.4,
        suspended_ratio=0.2,
        no_feature_ratio=0.15,
        seed=seed,
        scan_seconds=0.2,
    )


def token_var(sim: Sim, server: str) -> str:
    return next(k for k in sim.env if server.upper() in k)


def files_of(report: dict[str, Any]) -> set[tuple[str, str, str, str, str]]:
    return {
        (*target_key(t), f["path"], f["virus"])
        for t in report["targets"]
        for f in t["infected_files"]
    }


def assert_formats_agree(out: Path) -> dict[str, Any]:
    """Every file of a `--format` run or merge says what report.json says."""
    import jsonschema
    from prometheus_client.parser import text_string_to_metric_families

    report: dict[str, Any] = json.loads((out / "report.json").read_text("utf-8"))
    validate_report_dict(report)
    targets = {target_key(t): t for t in report["targets"]}
    statuses = {k: t["status"] for k, t in targets.items()}

    # JUnit: one testcase per target; failure when infected, error when failed.
    root = ET.parse(out / "junit.xml").getroot()
    cases = list(root.iter("testcase"))
    assert len(cases) == len(targets) == int(root.get("tests", "-1"))
    verdicts: dict[TargetKey, str] = {}
    for case in cases:
        account, scan_type = (case.get("name") or "").rsplit("/", 1)
        verdict = next((c.tag for c in case), "passed")
        verdicts[(case.get("classname") or "", account, scan_type)] = verdict
    expected = {"infected": "failure", "failed": "error", "skipped": "skipped", "clean": "passed"}
    assert verdicts == {k: expected[s] for k, s in statuses.items()}
    summary = report["summary"]
    assert int(root.get("failures", "-1")) == summary["infected"]
    assert int(root.get("errors", "-1")) == summary["failed"]
    assert int(root.get("skipped", "-1")) == summary["skipped"]

    # SARIF 2.1.0: valid, one result per infected file.
    sarif = json.loads((out / "report.sarif").read_text("utf-8"))
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text("utf-8"))
    jsonschema.Draft4Validator(schema).validate(sarif)
    (run,) = sarif["runs"]
    found = set()
    for result in run["results"]:
        props = result["properties"]
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        path = unquote(urlsplit(uri).path)
        found.add((props["server"], props["account"], props["scan_type"], path, result["ruleId"]))
    assert len(run["results"]) == summary["infected_files"]
    assert found == files_of(report)

    # Prometheus textfile: parses, one sample per target, values as in report.json.
    text = (out / "clamfleet.prom").read_text("utf-8")
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def samples(name: str) -> dict[TargetKey, float]:
        return {
            (s.labels["server"], s.labels["account"], s.labels["scan_type"]): s.value
            for s in families[name].samples
        }

    assert samples("clamfleet_target_infected_files") == {
        k: len(t["infected_files"]) for k, t in targets.items()
    }
    assert samples("clamfleet_target_failed") == {
        k: 1.0 if s == "failed" else 0.0 for k, s in statuses.items()
    }
    scanned = {k: t["scan"]["scanned_file_count"] for k, t in targets.items() if t["scan"]}
    assert samples("clamfleet_target_scanned_files") == scanned
    (exit_sample,) = families["clamfleet_run_exit_code"].samples
    assert exit_sample.value == summary["exit_code"]
    return report


def test_every_format_of_a_real_run_and_of_its_merge_agrees_with_report_json(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = mixed_fleet()
    sim = simulate(spec)
    whole = cli("run", sim.inventory, "--format", ALL_FORMATS, "--prometheus-per-target")
    report = assert_formats_agree(whole.out)
    statuses = {t["status"] for t in report["targets"]}
    assert statuses == {"clean", "infected", "skipped", "failed"}, "the fleet exercises all four"
    assert whole.code == 1

    shards = [cli("run", sim.inventory, "--shard", f"{i}/2") for i in (1, 2)]
    merged = cli(
        "merge",
        *(s.out / "report.json" for s in shards),
        "--format",
        ALL_FORMATS,
        "--prometheus-per-target",
    )
    merged_report = assert_formats_agree(merged.out)
    assert files_of(merged_report) == files_of(report)
    assert [(target_key(t), t["status"]) for t in merged_report["targets"]] == [
        (target_key(t), t["status"]) for t in report["targets"]
    ]


def test_format_selects_the_files_and_an_unknown_one_is_refused_before_any_scan(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.5, seed=62, scan_seconds=0.2)
    sim = simulate(spec)
    chosen = cli("run", sim.inventory, "--format", "sarif,junit")
    names = {p.name for p in chosen.out.iterdir()}
    assert {"report.json", "report.sarif", "junit.xml"} <= names
    assert "clamfleet.prom" not in names
    starts = sim.fleet.calls("sim01", function="start_scan")
    refused = cli("run", sim.inventory, "--format", "json,pdf")
    assert refused.code == 3
    assert "pdf" in refused.stderr and "prometheus" in refused.stderr  # names the allowed ones
    assert sim.fleet.calls("sim01", function="start_scan") == starts, "nothing was scanned"
    assert not (refused.out / "report.json").exists()


def test_the_csv_files_of_the_contract_are_written_whatever_format_is_chosen(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=1, infected_ratio=0.0, seed=63, scan_seconds=0.2)
    sim = simulate(spec)
    chosen = cli("run", sim.inventory, "--format", "junit")
    names = {p.name for p in chosen.out.iterdir()}
    assert {"report.json", "targets.csv", "infected.csv", "junit.xml"} <= names


# ---------------------------------------------------------------------------------------------
# The published schema: in the repository, and every report the CLI writes validates


def test_the_published_schema_is_a_valid_json_schema_at_the_documented_path() -> None:
    import jsonschema

    path = ROOT / "orchestrator" / "report" / "schema.json"
    assert "orchestrator/report/schema.json" in (ROOT / "README.md").read_text("utf-8")
    schema = json.loads(path.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"]["const"] == "clamfleet.report/1"


def test_every_report_the_cli_writes_validates_against_the_schema(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = mixed_fleet(seed=64)
    sim = simulate(spec)
    monkeypatch.setenv(token_var(sim, "sim03"), "WRONGWRONGWRONGWRONGWRONGWRONG12")
    first = cli("run", sim.inventory)  # sim03: auth, a `*` row
    assert any(t["account"] == "*" for t in first.report["targets"])
    monkeypatch.setenv(token_var(sim, "sim03"), sim.env[token_var(sim, "sim03")])
    compared = cli("run", sim.inventory, "--baseline", first.out / "report.json")
    rerun = cli("run", sim.inventory, "--only-failed", first.out / "report.json")
    folded = cli("merge", first.out / "report.json", rerun.out / "report.json")
    shard = cli("run", sim.inventory, "--shard", "2/3", "--dry-run")
    partial = cli("merge", shard.out / "report.json")
    outcomes = [first, compared, rerun, folded, shard, partial]
    assert [o.code for o in outcomes if o.code not in (0, 1, 2)] == []
    written = sorted(tmp_path.rglob("report.json"))
    assert len(written) >= len(outcomes)
    for path in written:
        validate_report_dict(json.loads(path.read_text("utf-8")))


# ---------------------------------------------------------------------------------------------
# report.html of a real run: the tables and charts say what report.json says


class Tables(HTMLParser):
    """Rows of each <table> under the <h2> before it, and the <title>s of each <svg>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.charts: list[list[str]] = []
        self._heading = ""
        self._in: str | None = None
        self._text = ""
        self._row: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h2", "td", "th", "title"):
            self._in, self._text = tag, ""
        elif tag == "tr":
            self._row = []
        elif tag == "svg":
            self.charts.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._heading = self._text
        elif tag in ("td", "th"):
            self._row.append(self._text)
        elif tag == "tr":
            self.tables.setdefault(self._heading, []).append(self._row)
        elif tag == "title" and self.charts:
            self.charts[-1].append(self._text)
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text += data


def test_html_report_of_a_real_run_lists_files_with_outcomes_failures_with_kinds_and_charts(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(
        servers=2, accounts=3, infected_ratio=0.6, no_feature_ratio=0.2, seed=95, scan_seconds=0.2
    )
    sim = simulate(spec)
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: quarantine\n")
    result = cli("run", sim.inventory, "--policy", policy)
    report = result.report
    page = Tables()
    page.feed((result.out / "report.html").read_text("utf-8"))

    infected = page.tables["Infected files"]
    assert infected[0][:7] == ["server", "account", "scan_type", "path", "virus", "action",
                               "outcome"]  # fmt: skip
    expected = [
        [*target_key(t), f["path"], f["virus"], f["action"], f["outcome"]]
        for t in report["targets"]
        for f in t["infected_files"]
    ]
    assert expected and [r[:7] for r in infected[1:]] == expected
    assert {r[6] for r in infected[1:]} == {"quarantined"}

    failures = page.tables["Failed and deferred targets"]
    assert failures[0] == ["server", "account", "scan_type", "status", "kind", "message"]
    failed = [
        [*target_key(t), t["status"], t["error"]["kind"], t["error"]["message"]]
        for t in report["targets"]
        if t["status"] == "failed"
    ]
    assert failed and failures[1:] == failed

    per_server = {s.name: 0 for s in spec.servers}
    for t in report["targets"]:
        per_server[t["server"]] += len(t["infected_files"])
    infections_chart, durations_chart = page.charts
    assert infections_chart == [f"{name}: {n:g} files" for name, n in per_server.items()]
    assert [t.split(":")[0] for t in durations_chart] == list(per_server)
