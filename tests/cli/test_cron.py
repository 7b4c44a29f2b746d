"""For cron: `--quiet` prints warnings, what needs attention and the verdict line, nothing
else; `--log-file PATH` keeps every event as JSON lines whatever the console shows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.simulator import Faults
from tests.support import Outcome, Sim, one_server, small_account


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_quiet_prints_only_what_needs_attention_and_the_verdict(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = one_server(
        small_account("alice"),
        small_account("bob"),
        faults=Faults(clamd_down_accounts=frozenset({"bob"})),
    )
    sim = simulate(spec)
    log_file = tmp_path / "clamfleet.jsonl"
    result = cli("run", sim.inventory, "--quiet", "--log-file", log_file)
    assert result.code == 2
    out = result.stdout.splitlines()
    assert out[0] == "needs attention (1):"
    assert out[1].startswith("  failed  sim01/bob/home: api: ")
    assert out[2] == f"  scan them again: clamfleet run {sim.inventory} --only-failed " + str(
        (result.out / "report.json").resolve()
    )
    assert out[3] == (
        f"report: {result.out}  (exit code 2: no infection found, but some targets could not"
        " be scanned)"
    )
    assert len(out) == 4, "no summary table"
    # the console kept warnings and errors only; the log file has everything, as JSON lines
    assert "run.started" not in result.stderr and "run.finished" not in result.stderr
    events = lines(log_file)
    names = [e["event"] for e in events]
    assert "run.started" in names and names[-1] == "run.finished"
    assert events[-1]["exit_code"] == 2 and events[-1]["level"] == "info"
    assert all(e["timestamp"].endswith("Z") for e in events)
    for secret in sim.env.values():  # the tokens the inventory names are never written
        assert secret not in log_file.read_text("utf-8")


def test_quiet_on_a_clean_night_prints_the_verdict_line_alone(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = simulate(one_server(small_account("alice")))
    result = cli("run", sim.inventory, "--quiet")
    assert result.code == 0
    assert result.stdout == (
        f"report: {result.out}  (exit code 0: every target scanned, no infected file found)\n"
    )
    assert result.stderr == ""


def test_without_quiet_the_summary_opens_with_what_needs_attention(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = simulate(one_server(small_account("alice")))
    result = cli("run", sim.inventory)
    out = result.stdout.splitlines()
    assert out[0] == "needs attention: nothing"
    assert out[1].startswith("server") and "total" in result.stdout  # then the table
    assert out[-1].startswith("report: ")


def test_the_log_file_appends_and_a_log_file_that_cannot_be_written_is_refused_first(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(one_server(small_account("alice")))
    log_file = tmp_path / "run.jsonl"
    cli("run", sim.inventory, "--log-file", log_file)
    cli("run", sim.inventory, "--log-file", log_file, "--log-level", "warning")
    runs = [e for e in lines(log_file) if e["event"] == "run.finished"]
    assert len(runs) == 1, "the second run logged warnings only, appended to the first"
    starts = sim.fleet.calls("sim01", function="start_scan")
    refused = cli("run", sim.inventory, "--log-file", tmp_path / "missing" / "run.jsonl")
    assert refused.code == 3
    assert "--log-file: " in refused.stderr and "cannot write the log file" in refused.stderr
    assert sim.fleet.calls("sim01", function="start_scan") == starts, "nothing was scanned"


def test_merge_is_quiet_too(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(one_server(small_account("alice")))
    night = cli("run", sim.inventory)
    merged = cli("merge", night.out / "report.json", "--quiet")
    assert merged.code == 0
    assert merged.stdout.splitlines() == [
        f"report: {merged.out}  (exit code 0: every target scanned, no infected file found)"
    ]
