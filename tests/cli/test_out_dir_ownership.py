"""`--out` tells one story: a run's folder holds that run's files, never an earlier run's."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from orchestrator.report import FORMATS, write_report
from orchestrator.report.writers import OWNED_FILES
from orchestrator.simulator import generate_fleet
from tests.report.test_report import sample_report
from tests.support import Outcome, Sim

ALL = ",".join(FORMATS)


def test_a_run_removes_the_earlier_runs_files_it_does_not_write_and_nothing_else(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.5, seed=81, scan_seconds=0.2)
    sim = simulate(spec)
    out = tmp_path / "reports"
    first = cli("run", sim.inventory, "--format", ALL, "--out", out, out=out)
    assert {p.name for p in out.iterdir()} == OWNED_FILES
    first_id = first.report["run"]["id"]
    (out / "notes.txt").write_text("the operator's own file\n")
    (out / "archive").mkdir()
    (out / "archive" / "junit.xml").write_text("<old/>")

    second = cli("run", sim.inventory, "--format", "json", "--out", out, out=out)
    names = {p.name for p in out.iterdir()}
    # report.json and both CSVs are always written; the rest was the first run's story.
    assert names == {"report.json", "targets.csv", "infected.csv", "notes.txt", "archive"}
    assert second.report["run"]["id"] != first_id
    assert (out / "notes.txt").read_text() == "the operator's own file\n"
    assert (out / "archive" / "junit.xml").read_text() == "<old/>"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_merge_out_holds_only_the_merged_reports_files(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=2, accounts=1, infected_ratio=0.0, seed=82, scan_seconds=0.2)
    sim = simulate(spec)
    shards = [cli("run", sim.inventory, "--shard", f"{i}/2") for i in (1, 2)]
    merged = tmp_path / "merged"
    reports = [s.out / "report.json" for s in shards]
    cli("merge", *reports, "--format", "json,junit,prometheus", "--out", merged, out=merged)
    assert (merged / "junit.xml").exists() and (merged / "clamfleet.prom").exists()
    again = cli("merge", *reports, "--format", "html", "--out", merged, out=merged)
    assert again.code == 0
    names = {p.name for p in merged.iterdir()}
    assert names == {"report.json", "targets.csv", "infected.csv", "report.html"}
    assert json.loads((merged / "report.json").read_text())["summary"]["targets"] == 2


def test_a_directory_named_like_a_report_file_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").mkdir()  # not something clamfleet wrote
    write_report(sample_report(), tmp_path, ["json"])
    assert (tmp_path / "junit.xml").is_dir()
    assert (tmp_path / "report.json").is_file()
