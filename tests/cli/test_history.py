"""`--history` through the CLI against the simulator: two nights in a row give the second a
per-target delta and first-seen dates without `--baseline`; `clamfleet history` lists them (table,
JSON, CSV, per server, per account); a sharded night is recorded once, by its merge;
`settings.history` and `settings.notify` are read with file:line errors; a history this version
cannot use stops the run before its first request."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from orchestrator.report import history_schema
from orchestrator.simulator import FleetSpec, ServerSpec
from tests.support import Outcome, Sim, edit_inventory, one_server, small_account


def files(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for t in report["targets"] for f in t["infected_files"]}


def test_two_nights_in_a_row_compare_per_target_without_a_baseline(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    history = tmp_path / "history.sqlite"
    sim = simulate(one_server(small_account("alice", infected=True), small_account("bob")))
    first = cli("run", sim.inventory, "--history", history)
    assert first.code == 1
    one = first.report
    assert "delta" not in one["summary"], "the first night has nothing to compare with"
    shell = files(one)["/home/alice/public_html/shell.php"]
    assert shell["nights_seen"] == 1 and shell["first_seen"] == one["run"]["started_at"]

    second = cli("run", sim.inventory, "--history", history)
    two = second.report
    assert two["summary"]["delta"] == {"new": 0, "recurring": 1, "resolved": 0}
    shell = files(two)["/home/alice/public_html/shell.php"]
    assert shell["delta"] == "recurring" and shell["nights_seen"] == 2
    assert shell["first_seen"] == one["run"]["started_at"]
    rows = second.csv_rows("infected.csv")
    assert rows[0]["delta"] == "recurring" and rows[0]["nights_seen"] == "2"
    assert len(two["history"]["nights"]) == 2
    assert "History: the last nights" in (second.out / "report.html").read_text()

    listed = cli("history", "--history", history)
    assert listed.code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "date", "exit", "targets", "infected", "new", "resolved", "failed", "wall", "time"
    ]  # fmt: skip
    assert len(lines) == 4  # heading, rule, two nights
    as_json = json.loads(cli("history", "--history", history, "--format", "json").stdout)
    assert [n["run_id"] for n in as_json] == [two["run"]["id"], one["run"]["id"]]
    assert as_json[0]["new"] == 0 and as_json[1]["new"] is None
    assert as_json[0]["infected_files"] == 1 and as_json[0]["targets"] == 2
    as_csv = list(
        csv.DictReader(io.StringIO(cli("history", "--history", history, "--format", "csv").stdout))
    )
    assert [r["run_id"] for r in as_csv] == [two["run"]["id"], one["run"]["id"]]


def test_history_per_server_and_per_account(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    history = tmp_path / "history.sqlite"
    web = ServerSpec("web01", accounts=(small_account("alice", infected=True),))
    mail = ServerSpec("mail01", accounts=(small_account("bob"), small_account("carol")))
    sim = simulate(FleetSpec(servers=(web, mail), scan_seconds=0.2))
    assert cli("run", sim.inventory, "--history", history).code == 1

    (night,) = json.loads(
        cli("history", "--history", history, "--server", "mail*", "--format", "json").stdout
    )
    assert (night["targets"], night["infected_files"]) == (2, 0)
    (alice,) = json.loads(
        cli("history", "--history", history, "--account", "alice", "--format", "json").stdout
    )
    assert alice["targets"] == 1
    assert [(f["server"], f["path"]) for f in alice["files"]] == [
        ("web01", "/home/alice/public_html/shell.php")
    ]
    table = cli("history", "--history", history, "--account", "alice").stdout
    assert "/home/alice/public_html/shell.php (Php.Webshell-1)" in table
    nobody = cli("history", "--history", history, "--account", "nobody")
    assert nobody.code == 0 and "no night recorded" in nobody.stdout


def test_a_sharded_night_is_recorded_once_by_its_merge(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    history = tmp_path / "history.sqlite"
    servers = tuple(
        ServerSpec(name, accounts=(small_account(f"{name}user", infected=True),))
        for name in ("sim01", "sim02")
    )
    sim = simulate(FleetSpec(servers=servers, scan_seconds=0.2))
    shards = [cli("run", sim.inventory, "--shard", f"{i}/2", "--history", history) for i in (1, 2)]
    assert [s.code for s in shards] == [1, 1]
    assert cli("history", "--history", history).stdout.startswith("no night recorded")
    reports = [s.out / "report.json" for s in shards]
    merged = cli("merge", *reports, "--history", history)
    assert merged.code == 1
    assert {f["nights_seen"] for f in files(merged.report).values()} == {1}
    (night,) = json.loads(cli("history", "--history", history, "--format", "json").stdout)
    assert night["targets"] == 2 and night["shard"] == "1/1"
    again = cli("merge", *reports, "--history", history)  # the same night merged twice: one entry
    assert again.code == 1
    assert len(json.loads(cli("history", "--history", history, "--format", "json").stdout)) == 1


def test_settings_history_is_relative_to_the_inventory(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(one_server(small_account("alice")))
    edit_inventory(sim.inventory, lambda d: d["settings"].update(history="state/h.sqlite"))
    (sim.inventory.parent / "state").mkdir()
    assert cli("run", sim.inventory).code == 0
    assert (sim.inventory.parent / "state" / "h.sqlite").is_file()
    assert cli("run", sim.inventory).report["summary"]["delta"]["resolved"] == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"notify": [{"url_env": "OPS_MAIL", "on": "sometimes"}]}, "one of new | infected"),
        ({"notify": [{"url_env": "mailto://u:hunter2@x"}]}, "not a valid environment variable"),
        ({"notify": [{"url": "OPS_MAIL"}]}, "unknown key 'url'"),
        ({"notify": [{"on": "new"}]}, "url_env is required"),
        ({"history": ""}, "expected a file path"),
    ],
)
def test_settings_history_and_notify_errors_name_the_file_and_line(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    settings: dict[str, Any],
    message: str,
) -> None:
    sim = simulate(one_server(small_account("alice")))
    edit_inventory(sim.inventory, lambda d: d["settings"].update(settings))
    result = cli("validate", sim.inventory)
    assert result.code == 3
    assert f"{sim.inventory}:" in result.stderr and "settings." in result.stderr
    assert message in result.stderr
    assert "hunter2" not in result.stderr


def test_a_history_this_version_cannot_use_stops_the_run_before_any_request(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(one_server(small_account("alice")))
    newer = tmp_path / "newer.sqlite"
    assert cli("history", "--history", newer).code == 3  # reading: the file must exist
    assert cli("run", sim.inventory, "--history", newer).code == 0  # a run creates it
    with closing(sqlite3.connect(newer)) as db:
        db.execute(f"PRAGMA user_version = {history_schema.SCHEMA_VERSION + 1}")
        db.commit()
    calls = sim.fleet.calls("sim01")
    refused = cli("run", sim.inventory, "--history", newer)
    assert refused.code == 3
    assert "newer clamfleet" in refused.stderr and str(newer) in refused.stderr
    assert sim.fleet.calls("sim01") == calls
    journal = tmp_path / "journal.sqlite"
    assert cli("run", sim.inventory, "--journal", journal).code == 0
    wrong = cli("run", sim.inventory, "--history", journal)
    assert wrong.code == 3 and "not a clamfleet history" in wrong.stderr
