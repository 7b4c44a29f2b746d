"""Logs carry the verdict: `run.started` and `run.finished` at info, in JSON and console format."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orchestrator.simulator import generate_fleet
from tests.support import Outcome, Sim

SPEC = generate_fleet(servers=2, accounts=3, infected_ratio=0.5, seed=91, scan_seconds=0.2)


def json_events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_json_logs_say_when_the_run_started_and_its_verdict(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = simulate(SPEC)
    result = cli("run", sim.inventory, "--log-format", "json", "--shard", "1/1")
    events = json_events(result.stderr)
    (started,) = [e for e in events if e["event"] == "run.started"]
    (finished,) = [e for e in events if e["event"] == "run.finished"]
    # they bracket every other event of the run; only the shard line (which shard this process
    # scans) comes first, so a log collector knows the shard before anything else
    assert events[0]["event"] == "run.shard"
    assert events[1] is started and events[-1] is finished
    report = result.report
    assert started["level"] == finished["level"] == "info"
    assert started["run_id"] == finished["run_id"] == report["run"]["id"]
    assert started["inventory"] == str(sim.inventory)
    assert started["shard"] == "1/1" and started["dry_run"] is True
    assert started["servers"] == len(SPEC.servers)
    summary = report["summary"]
    for key in ("targets", "clean", "infected", "failed", "skipped", "infected_files"):
        assert finished[key] == summary[key], key
    assert finished["exit_code"] == summary["exit_code"] == result.code
    assert isinstance(finished["duration_s"], float) and finished["duration_s"] >= 0


def test_run_started_counts_targets_when_the_inventory_lists_the_accounts(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = simulate(SPEC, auth="cpanel_token")  # one inventory entry per account
    result = cli("run", sim.inventory, "--log-format", "json", "--scan-type", "home")
    (started,) = [e for e in json_events(result.stderr) if e["event"] == "run.started"]
    assert (
        started["targets"]
        == result.report["summary"]["targets"]
        == sum(len(s.accounts) for s in SPEC.servers)
    )


def test_console_logs_carry_the_run_events_too(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = simulate(SPEC)
    result = cli("run", sim.inventory, "--log-format", "console")
    lines = result.stderr.splitlines()
    started = [line for line in lines if "run.started" in line]
    finished = [line for line in lines if "run.finished" in line]
    assert len(started) == len(finished) == 1
    assert f"exit_code={result.code}" in finished[0]


def test_run_finished_is_not_logged_below_info(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = simulate(SPEC)
    result = cli("run", sim.inventory, "--log-format", "json", "--log-level", "warning")
    assert not [e for e in json_events(result.stderr) if e["event"].startswith("run.")]
