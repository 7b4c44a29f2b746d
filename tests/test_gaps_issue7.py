"""Issue 7 acceptance gaps: what the live area shows, failures on a real terminal, the validate
CLI against good / bad-token / TLS-failing / unreachable servers in one table, `--only-failed`
with per-target and interrupted failures, the HTML report of a real run, and the README.
"""

from __future__ import annotations

import io
import os
import re
import socket
from collections.abc import Callable
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from orchestrator.cli import build_parser
from orchestrator.model import ErrorInfo, ErrorKind, InfectedFile, Status, Target, TargetResult
from orchestrator.progress import LiveProgress
from orchestrator.report import load_report, write_report
from orchestrator.report.model import with_targets
from orchestrator.simulator import generate_fleet

from .conftest import Outcome, Sim
from .test_progress import HOME, FakeClock, finished, inventory, run_cli, server, stats

ROOT = Path(__file__).resolve().parent.parent
TargetKey = tuple[str, str, str]


def key(t: dict[str, Any]) -> TargetKey:
    return (t["server"], t["account"], t["scan_type"])


# ---------------------------------------------------------------------------------------------
# Live progress: what the area says, and failures on a real terminal


def painted(progress: LiveProgress) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=160, color_system=None).print(progress.render())
    return buffer.getvalue()


def test_the_live_area_shows_per_server_lines_counts_and_an_eta() -> None:
    clock = FakeClock()
    web01 = server("web01", ("alice", "bob", "carol"), max_concurrent_scans=2)
    progress = LiveProgress(inventory(web01, server("web02", None)), clock=clock)
    alice, bob, carol = (Target("web01", a, HOME) for a in ("alice", "bob", "carol"))
    progress.targets_resolved("web01", (alice, bob, carol))
    assert "ETA estimating" in painted(progress)
    progress.target_started(alice)
    progress.target_started(bob)
    clock.now += 10
    progress.scan_progress(alice, stats(25, 100))
    progress.scan_progress(bob, stats(50, 100))
    area = painted(progress)
    assert "targets 0/3+" in area, "web02 is not listed yet: the total can still grow"
    assert re.search(r"ETA ≥\d+s", area), area  # a lower bound while web02 is unlisted
    (line,) = [ln for ln in area.splitlines() if "web01" in ln]
    for part in ("2 running", "0/3 done", "files 75", "infections 0", "failed 0"):
        assert part in line, line
    progress.target_finished(
        finished(alice, Status.INFECTED, scan=stats(100, 100),
                 infected_files=(InfectedFile("/home/alice/x", "Eicar"),))
    )  # fmt: skip
    progress.targets_resolved("web02", ())
    area = painted(progress)
    (line,) = [ln for ln in area.splitlines() if "web01" in ln]
    for part in ("1 running", "1/3 done", "files 150", "infections 1"):
        assert part in line, line
    assert "targets 1/3 " in area and "infections 1" in area.splitlines()[0]
    assert re.search(r"ETA \d+s", area), area
    progress.target_finished(finished(bob))
    progress.target_finished(finished(carol))
    area = painted(progress)
    assert "all done" in area and "targets 3/3" in area
    assert not [ln for ln in area.splitlines() if "web01" in ln], "no line for an idle server"


def test_failures_are_printed_on_the_terminal_as_they_happen(
    simulate: Callable[..., Sim], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=2, accounts=2, infected_ratio=0.0, seed=91, scan_seconds=0.3)
    sim = simulate(spec)
    wrong = {next(k for k in sim.env if "SIM02" in k): "WRONGWRONGWRONGWRONGWRONGWRONG12"}
    env = {**os.environ, **wrong, "TERM": "xterm-256color"}
    code, output = run_cli(env, "run", sim.inventory, "--out", tmp_path / "out", tty=True)
    assert code == 2, output
    assert re.search(r"✗ sim02/\*/home: auth — ", output), output
    report_targets = len(load_report(tmp_path / "out" / "report.json").targets)
    final = re.findall(r"targets (\d+)/(\d+)(\+?)", output)[-1]
    assert final == (str(report_targets), str(report_targets), ""), "the final state is exact"
    assert "WRONGWRONG" not in output


# ---------------------------------------------------------------------------------------------
# validate --check-connectivity through the CLI: one table, exit 2 unless every server passes


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_validate_cli_table_and_exit_code_for_good_bad_token_tls_and_unreachable_servers(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = generate_fleet(servers=3, accounts=2, infected_ratio=0.0, seed=92, scan_seconds=0.3)
    sim = simulate(spec, tls=True)
    monkeypatch.setenv("CLAMFLEET_GAP_BAD", "WRONGWRONGWRONGWRONGWRONGWRONG12")
    document = yaml.safe_load(sim.inventory.read_text())
    entries = {s["name"]: s for s in document["servers"]}
    entries["sim02"]["auth"]["token_env"] = "CLAMFLEET_GAP_BAD"
    entries["sim03"]["tls"] = {"verify": True}  # the system CAs only: the simulator's is unknown
    ghost = {**entries["sim01"], "name": "ghost", "url": f"https://127.0.0.1:{closed_port()}"}
    document["servers"].append(ghost)
    sim.inventory.write_text(yaml.safe_dump(document, sort_keys=False))

    result = cli("validate", sim.inventory, "--check-connectivity")
    assert result.code == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["server", "url", "reachable"]

    def row(name: str) -> str:
        (found,) = [ln for ln in lines if ln.startswith(f"{name} ")]
        return found

    assert row("sim01").endswith("OK")
    assert "FAIL auth:" in row("sim02")
    assert "FAIL tls:" in row("sim03")
    assert "FAIL unreachable:" in row("ghost")
    assert "1 of 4 servers pass" in result.stdout
    assert sim.fleet.calls("sim02") == 1, "an auth failure stops at one request"
    assert sim.fleet.calls("sim03") == 0, "no request after a failed handshake"
    assert {c for n in ("sim01", "sim02") for c in _functions(sim, n)} <= {
        "listaccts",
        "get_scan_paths",
    }, "read-only calls only"
    assert "WRONGWRONG" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def _functions(sim: Sim, name: str) -> set[str | None]:
    return {r.function for r in sim.fleet.request_log(name)}


# ---------------------------------------------------------------------------------------------
# --only-failed: exactly the failed and interrupted targets, then merge folds them


def test_only_failed_reruns_exactly_the_failed_and_interrupted_targets(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(
        servers=2, accounts=4, infected_ratio=0.5, suspended_ratio=0.25, seed=93, scan_seconds=0.2
    )
    sim = simulate(spec)
    first = cli("run", sim.inventory)
    by_status: dict[str, list[TargetKey]] = {}
    for t in first.report["targets"]:
        by_status.setdefault(t["status"], []).append(key(t))
    assert {"clean", "infected", "skipped"} <= set(by_status), by_status
    lost = by_status["clean"][0]  # pretend it was unreachable last time
    cut = by_status["infected"][0]  # pretend the run was stopped while it was being scanned
    errors = {
        lost: ErrorInfo(ErrorKind.UNREACHABLE, "given up after 3 consecutive failed requests"),
        cut: ErrorInfo(ErrorKind.INTERRUPTED, "run interrupted"),
    }

    def fail(t: TargetResult) -> TargetResult:
        error = errors.get((t.server, t.account, str(t.scan_type)))
        if error is None:
            return t
        return replace(t, status=Status.FAILED, infected_files=(), scan=None, error=error)

    previous = load_report(first.out / "report.json")
    write_report(with_targets(previous, [fail(t) for t in previous.targets]), tmp_path / "prev")
    starts = {
        (s.name, a.user): sim.fleet.calls(s.name, function="start_scan", account=a.user)
        for s in spec.servers
        for a in s.accounts
    }

    rerun = cli("run", sim.inventory, "--only-failed", tmp_path / "prev" / "report.json")
    assert set(rerun.targets()) == {lost, cut}
    assert rerun.report["run"]["rerun_of"] == first.report["run"]["id"]
    for (name, user), before in starts.items():
        again = sim.fleet.calls(name, function="start_scan", account=user) - before
        assert again == (1 if (name, user, "home") in errors else 0), (name, user)
    assert rerun.targets()[lost]["status"] == "clean"
    assert rerun.targets()[cut]["status"] == "infected"
    assert rerun.code == 1

    folded = cli("merge", tmp_path / "prev" / "report.json", rerun.out / "report.json")
    assert [(key(t), t["status"]) for t in folded.report["targets"]] == [
        (key(t), t["status"]) for t in first.report["targets"]
    ]
    assert folded.report["summary"]["failed"] == 0
    assert folded.code == first.code == 1


def test_only_failed_with_nothing_failed_scans_nothing(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.0, seed=94, scan_seconds=0.2)
    sim = simulate(spec)
    first = cli("run", sim.inventory)
    assert first.code == 0
    before = sim.fleet.calls("sim01", function="start_scan")
    rerun = cli("run", sim.inventory, "--only-failed", first.out / "report.json")
    assert rerun.code == 0
    assert rerun.report["targets"] == []
    assert sim.fleet.calls("sim01", function="start_scan") == before


def test_only_failed_reports_to_the_observer_only_the_targets_it_reruns(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    import anyio

    from orchestrator.inventory import load_inventory
    from orchestrator.runner import FleetRun, NullObserver, RunOptions

    spec = generate_fleet(
        servers=1, accounts=4, infected_ratio=0.0, suspended_ratio=0.5, seed=96, scan_seconds=0.2
    )
    sim = simulate(spec)
    first = load_report(cli("run", sim.inventory).out / "report.json")
    assert {t.status for t in first.targets} == {Status.CLEAN, Status.SKIPPED}
    redo = next(t.target for t in first.targets if t.status is Status.CLEAN)

    class Seen(NullObserver):
        def __init__(self) -> None:
            self.finished: list[Target] = []

        def target_finished(self, result: TargetResult) -> None:
            self.finished.append(result.target)

    seen = Seen()
    options = RunOptions(dry_run=True, only=frozenset({redo}))
    fleet = FleetRun(load_inventory(sim.inventory), options, observer=seen)
    anyio.run(fleet.run)
    assert [r.target for r in fleet.results()] == [redo]
    assert seen.finished == [redo]


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
        [*key(t), f["path"], f["virus"], f["action"], f["outcome"]]
        for t in report["targets"]
        for f in t["infected_files"]
    ]
    assert expected and [r[:7] for r in infected[1:]] == expected
    assert {r[6] for r in infected[1:]} == {"quarantined"}

    failures = page.tables["Failures"]
    assert failures[0] == ["server", "account", "scan_type", "kind", "message"]
    failed = [
        [*key(t), t["error"]["kind"], t["error"]["message"]]
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


# ---------------------------------------------------------------------------------------------
# README: the sections the issue asks for, and a synopsis that matches the parser


def readme() -> str:
    return (ROOT / "README.md").read_text("utf-8")


def test_readme_has_nightly_ci_reading_and_troubleshooting_sections() -> None:
    text = readme()
    headings = [h.lower() for h in re.findall(r"^#+ (.+)$", text, flags=re.M)]
    for wanted in ("nightly", "exit codes", "report", "troubleshooting"):
        assert any(wanted in h for h in headings), f"no README section about {wanted}"
    table = re.findall(r"^\| ([0-9]) \|", text, flags=re.M)
    assert table == ["0", "1", "2", "3"]
    trouble = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    for topic in ("auth", "cPHulk", "tls", "stalled"):
        assert topic in trouble, topic
    assert "Reading it" in text or "reading the report" in text.lower()


def _parser_flags() -> dict[str, set[str]]:
    import argparse

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {
        name: {o for a in p._actions for o in a.option_strings if o.startswith("--")} - {"--help"}
        for name, p in sub.choices.items()
    }


def _readme_synopsis() -> dict[str, set[str]]:
    block = readme().split("## Commands", 1)[1].split("```", 2)[1]
    flags: dict[str, set[str]] = {}
    current = ""
    for line in block.splitlines():
        match = re.match(r"clamfleet (\w+)", line)
        if match:
            current = match.group(1)
        if current:
            flags.setdefault(current, set()).update(re.findall(r"--[a-z][a-z-]*", line))
    return flags


def test_readme_synopsis_flags_exist_and_run_and_merge_are_complete() -> None:
    documented, actual = _readme_synopsis(), _parser_flags()
    assert set(documented) == set(actual)
    for command, flags in documented.items():
        assert flags <= actual[command], f"{command}: README documents {flags - actual[command]}"
    for command in ("run", "merge"):
        assert documented[command] == actual[command], command
