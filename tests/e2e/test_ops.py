"""Shards (from CI environments too) and merge, reruns of failures, baseline delta: the
operator's toolbox (the webhook has test_e2e_webhook.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.config.inventory import load_inventory
from orchestrator.engine.shard import assign_shards
from orchestrator.model import InfectedFile, TargetResult
from orchestrator.report import validate_report_dict
from orchestrator.simulator import generate_fleet
from tests.support import Outcome, Sim, comparable, edited_report, run_subprocess, target_key


def test_shards_in_separate_processes_merge_into_the_unsharded_report(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=5, accounts=2, infected_ratio=0.5, seed=51, scan_seconds=0.3)
    sim = simulate(spec)
    whole = cli("run", sim.inventory)
    shards = []
    for i in (1, 2, 3):
        out = tmp_path / f"shard-{i}"
        proc = run_subprocess(
            "run", sim.inventory, "--shard", f"{i}/3", "--out", out, "--no-progress", env=sim.env
        )
        assert proc.returncode in (0, 1, 2), proc.stderr
        shards.append(out / "report.json")
    servers_per_shard = [
        {t["server"] for t in json.loads(p.read_text())["targets"]} for p in shards
    ]
    assert set().union(*servers_per_shard) == {s.name for s in spec.servers}
    assert sum(len(s) for s in servers_per_shard) == len(spec.servers), (
        "a server lands in exactly one shard"
    )
    merged = cli("merge", *shards)
    assert comparable(merged.report) == comparable(whole.report)
    assert merged.code == whole.code
    assert merged.report["run"]["shard"] == "1/1"


def test_merge_names_missing_shards_and_refuses_overlaps(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=4, accounts=1, infected_ratio=0.0, seed=52, scan_seconds=0.2)
    sim = simulate(spec)
    one = cli("run", sim.inventory, "--shard", "1/2")
    partial = cli("merge", one.out / "report.json")
    assert partial.code == 2
    assert "missing shards: 2" in partial.stdout
    again = cli("run", sim.inventory, "--shard", "1/2")
    refused = cli("merge", one.out / "report.json", again.out / "report.json")
    assert refused.code == 3
    (line,) = refused.stderr.strip().splitlines()  # one line, naming both files
    assert "shard" in line.lower()
    assert str(one.out / "report.json") in line and str(again.out / "report.json") in line


def test_only_failed_reruns_exactly_the_failed_targets_and_merge_folds_them(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = generate_fleet(servers=2, accounts=3, infected_ratio=0.0, seed=53, scan_seconds=0.2)
    sim = simulate(spec)
    token_var = next(k for k in sim.env if "SIM02" in k)
    monkeypatch.setenv(token_var, "wrong")
    first = cli("run", sim.inventory)
    failed = {k for k, t in first.targets().items() if t["status"] == "failed"}
    assert failed and all(server == "sim02" for server, _, _ in failed)
    monkeypatch.setenv(token_var, sim.env[token_var])
    starts_before = sim.fleet.calls("sim01", function="start_scan")
    rerun = cli("run", sim.inventory, "--only-failed", first.out / "report.json")
    assert set(rerun.targets()) == failed or {("sim02", "*", "home")} == failed
    assert sim.fleet.calls("sim01", function="start_scan") == starts_before, (
        "sim01 is not scanned again"
    )
    assert rerun.report["run"]["rerun_of"] == first.report["run"]["id"]
    folded = cli("merge", first.out / "report.json", rerun.out / "report.json")
    assert {t["status"] for t in folded.report["targets"]} == {"clean"}
    assert folded.code == 0


def test_baseline_marks_new_recurring_and_resolved(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=1, accounts=3, infected_ratio=1.0, seed=54, scan_seconds=0.2)
    sim = simulate(spec)
    first = cli("run", sim.inventory)
    policy = tmp_path / "p.yaml"
    victim = spec.servers[0].accounts[0].user
    policy.write_text(
        f"default: report\nrules:\n  - when: {{account: {victim}}}\n    action: delete\n"
    )
    cli("run", sim.inventory, "--policy", policy)  # deletes the victim's files
    third = cli("run", sim.inventory, "--baseline", first.out / "report.json")
    deltas = {f["delta"] for t in third.report["targets"] for f in t["infected_files"]}
    assert deltas == {"recurring"}
    assert third.report["summary"]["delta"]["resolved"] >= 1
    assert third.report["summary"]["delta"]["new"] == 0


# ---------------------------------------------------------------------------------------------
# Sharding from CI environments, through the real CLI


@pytest.mark.parametrize(
    ("args", "env_of"),
    [
        (("--shard", "auto/3"), lambda i, n: {"CI_NODE_INDEX": str(i), "CI_NODE_TOTAL": str(n)}),
        (("--shard", "auto/3"), lambda i, n: {"JOB_COMPLETION_INDEX": str(i - 1)}),  # Indexed Job
    ],
    ids=["gitlab", "kubernetes"],
)
def test_ci_environments_select_the_shard_and_the_shards_merge_to_the_fleet(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env_of: Callable[[int, int], dict[str, str]],
) -> None:
    spec = generate_fleet(servers=6, accounts=1, infected_ratio=0.5, seed=65, scan_seconds=0.2)
    sim = simulate(spec)
    names = [s.name for s in spec.servers]
    reports = []
    for index in (1, 2, 3):
        for var in ("CI_NODE_INDEX", "CI_NODE_TOTAL", "JOB_COMPLETION_INDEX"):
            monkeypatch.delenv(var, raising=False)
        for var, value in env_of(index, 3).items():
            monkeypatch.setenv(var, value)
        outcome = cli("run", sim.inventory, *args)
        assert outcome.code in (0, 1), outcome.stderr
        assert outcome.report["run"]["shard"] == f"{index}/3"
        servers = {t["server"] for t in outcome.report["targets"]}
        shards = assign_shards(load_inventory(sim.inventory).servers, 3)
        assert servers == {n for n in names if shards[n] == index}
        reports.append(outcome.out / "report.json")
    merged = cli("merge", *reports)
    assert merged.report["run"]["shard"] == "1/1"
    assert [t["server"] for t in merged.report["targets"]] == names
    assert "missing shards" not in merged.stdout


# ---------------------------------------------------------------------------------------------
# merge: refusals and partial merges through the CLI


def test_merge_refuses_reports_of_different_fleets_in_one_line_naming_both(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    one = simulate(generate_fleet(servers=2, accounts=1, seed=66, scan_seconds=0.2))
    other = simulate(generate_fleet(servers=3, accounts=1, seed=67, scan_seconds=0.2))
    a = cli("run", one.inventory, "--shard", "1/2").out / "report.json"
    b = cli("run", other.inventory, "--shard", "2/2").out / "report.json"
    refused = cli("merge", a, b)
    assert refused.code == 3
    (line,) = refused.stderr.strip().splitlines()
    assert "different" in line and str(a) in line and str(b) in line
    assert not (refused.out / "report.json").exists()


def test_a_partial_merge_reports_the_exit_code_it_exits_with(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=4, accounts=1, infected_ratio=0.0, seed=68, scan_seconds=0.2)
    sim = simulate(spec)
    one = cli("run", sim.inventory, "--shard", "1/2")
    partial = cli("merge", one.out / "report.json", "--format", "json,prometheus")
    assert partial.code == 2 and "missing shards: 2" in partial.stdout
    assert partial.report["summary"]["exit_code"] == partial.code
    prom = (partial.out / "clamfleet.prom").read_text("utf-8")
    assert re.search(r"^clamfleet_run_exit_code\{[^}]*\} 2$", prom, flags=re.M), prom


# ---------------------------------------------------------------------------------------------
# Baseline: new, recurring and resolved in report.json, infected.csv and the summary


def test_baseline_classifies_new_recurring_and_resolved_in_report_and_csv(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=2, accounts=3, infected_ratio=0.7, seed=69, scan_seconds=0.2)
    sim = simulate(spec)
    first = cli("run", sim.inventory)
    infected = [t for t in first.report["targets"] if t["infected_files"]]
    assert len(infected) >= 2
    dropped_from, gains_ghost = target_key(infected[0]), target_key(infected[1])
    dropped = infected[0]["infected_files"][0]["path"]
    ghost = InfectedFile("/home/ghost/gone.php", "Gone.Virus")

    def edit(t: TargetResult) -> TargetResult:
        k = (t.server, t.account, str(t.scan_type))
        if k == dropped_from:  # absent from the baseline: new now
            return replace(
                t, infected_files=tuple(f for f in t.infected_files if f.path != dropped)
            )
        if k == gains_ghost:  # only in the baseline: resolved now
            return replace(t, infected_files=(*t.infected_files, ghost))
        return t

    baseline = edited_report(first.out / "report.json", tmp_path / "baseline", edit)
    now = cli("run", sim.inventory, "--baseline", baseline)
    validate_report_dict(now.report)
    deltas = {
        (*target_key(t), f["path"]): f["delta"]
        for t in now.report["targets"]
        for f in t["infected_files"]
    }
    assert deltas.pop((*dropped_from, dropped)) == "new"
    assert deltas and set(deltas.values()) == {"recurring"}
    resolved = now.report["resolved"]
    assert [(r["server"], r["account"], r["scan_type"], r["path"]) for r in resolved] == [
        (*gains_ghost, ghost.path)
    ]
    assert now.report["summary"]["delta"] == {"new": 1, "recurring": len(deltas), "resolved": 1}
    rows = now.csv_rows("infected.csv")
    assert sorted(r["delta"] for r in rows) == sorted(
        ["new", "resolved", *["recurring"] * len(deltas)]
    )
    by_path = {r["path"]: r["delta"] for r in rows}
    assert by_path[dropped] == "new" and by_path[ghost.path] == "resolved"
