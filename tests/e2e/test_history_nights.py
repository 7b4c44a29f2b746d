"""Forty nights end to end: each night a simulated fleet built from that night's seed (infected
files appear, stay a while, are removed; one account's scans fail two nights running), scanned
by `clamfleet run --history` in this process, the real engine against the real simulator on
127.0.0.1. The test keeps its own record of what each night held and checks every report's
`first_seen`, `nights_seen`, per-target delta and resolved files against it; then the history
is pruned and one more night shows first-seen dates within what was kept.

A night costs about 0.15 s (one server, three small accounts, scans of 0.05 s); the simulated
fleet is started afresh each night because its files are fixed once it runs.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import main
from orchestrator.simulator import (
    AccountSpec,
    Faults,
    FleetSpec,
    ServerSpec,
    SimFile,
    SimulatorThread,
)

ACCOUNTS = ("alice", "bob", "carol")
NIGHTS = 40
#: bob's scans fail on these nights (clamd down for his account): nothing of his resolves
BOB_DOWN = frozenset({17, 18})
SETTINGS = {"poll_interval": {"min": 0.02, "max": 0.2}, "requests_per_second": 2000}
SERVER_KEYS = {"requests_per_second": 500, "max_concurrent_scans": 4}


@dataclass
class Model:
    """What the fleet holds each night, kept by the test independently of clamfleet."""

    present: dict[str, set[str]] = field(default_factory=lambda: {a: set() for a in ACCOUNTS})
    #: night -> account -> infected paths reported (none for a failed target)
    reported: dict[int, dict[str, set[str]]] = field(default_factory=dict)
    started: dict[int, str] = field(default_factory=dict)
    run_ids: dict[int, str] = field(default_factory=dict)

    def advance(self, n: int) -> None:
        """Night n's files: a file may be cleaned up, a new one may appear (seeded per night)."""
        rng = random.Random(1000 + n)
        for account in ACCOUNTS:
            keep = {p for p in self.present[account] if rng.random() > 0.25}
            if n == 0 or rng.random() < 0.4:
                keep.add(f"public_html/up-{n}.php")
            self.present[account] = keep
        self.reported[n] = {
            a: set() if (a == "bob" and n in BOB_DOWN) else set(self.present[a]) for a in ACCOUNTS
        }

    def last_scan(self, account: str, before: int, since: int = 0) -> int | None:
        nights = [m for m in range(since, before) if not (account == "bob" and m in BOB_DOWN)]
        return max(nights) if nights else None


def fleet_of(model: Model, n: int) -> FleetSpec:
    accounts = tuple(
        AccountSpec(
            user=a,
            files=(
                SimFile("public_html/index.php", 40_000),
                *(SimFile(p, 900, "Php.Webshell-1") for p in sorted(model.present[a])),
            ),
        )
        for a in ACCOUNTS
    )
    faults = Faults(clamd_down_accounts=frozenset({"bob"}) if n in BOB_DOWN else frozenset())
    return FleetSpec(servers=(ServerSpec("sim01", accounts, faults=faults),), scan_seconds=0.05)


def run_night(
    tmp_path: Path, history: Path, model: Model, n: int, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    with SimulatorThread(fleet_of(model, n)) as fleet:
        inventory = tmp_path / "inventory.yaml"
        env = fleet.write_inventory(
            inventory, auth="whm", settings=SETTINGS, extra_server_keys=SERVER_KEYS
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        out = tmp_path / f"night-{n:02d}"
        argv = ["run", str(inventory), "--out", str(out), "--history", str(history)]
        code = main([*argv, "--no-progress", "--log-level", "warning", "--format", "json,csv"])
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    expected = 1 if any(model.reported[n].values()) else (2 if n in BOB_DOWN else 0)
    assert code == report["summary"]["exit_code"] == expected, n
    model.started[n] = report["run"]["started_at"]
    model.run_ids[n] = report["run"]["id"]
    return report


def check_night(model: Model, n: int, report: dict[str, Any], since: int = 0) -> None:
    """Every file's first_seen, nights_seen and delta, and the resolved list, for night n
    (`since`: the oldest night the history still holds)."""
    files = {
        (t["account"], f["path"].removeprefix(f"/home/{t['account']}/")): f
        for t in report["targets"]
        for f in t["infected_files"]
    }
    expected_keys = {(a, p) for a, paths in model.reported[n].items() for p in paths}
    assert set(files) == expected_keys, n
    for (account, path), f in files.items():
        nights = [m for m in range(since, n + 1) if path in model.reported[m][account]]
        assert f["nights_seen"] == len(nights), (n, account, path)
        assert f["first_seen"] == model.started[nights[0]], (n, account, path)
        last = model.last_scan(account, n, since)
        if n == since:
            assert "delta" not in f, "the history's first night has nothing to compare with"
        else:
            was = last is not None and path in model.reported[last][account]
            assert f["delta"] == ("recurring" if was else "new"), (n, account, path)
    if n == since:
        assert "resolved" not in report and "delta" not in report["summary"]
        return
    resolved = {
        (r["account"], r["path"].removeprefix(f"/home/{r['account']}/")) for r in report["resolved"]
    }
    want = set()
    for account in ACCOUNTS:
        last = model.last_scan(account, n, since)
        if last is None or (account == "bob" and n in BOB_DOWN):
            continue  # tonight's failed target resolves nothing
        want |= {(account, p) for p in model.reported[last][account] - model.present[account]}
    assert resolved == want, n
    delta = report["summary"]["delta"]
    assert delta["resolved"] == len(want)
    assert delta["new"] == sum(1 for f in files.values() if f["delta"] == "new")


@pytest.mark.slow
def test_forty_nights_of_history_first_seen_nights_seen_delta_and_pruning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "history.sqlite"
    model = Model()
    reports = {}
    for n in range(NIGHTS):
        model.advance(n)
        reports[n] = run_night(tmp_path, history, model, n, monkeypatch)
        check_night(model, n, reports[n])
    capsys.readouterr()
    # The scenario is not vacuous: files were resolved and new on many nights, and bob's file of
    # night 16 outlived his two failed nights in the history, resolved only on night 19.
    assert sum(1 for r in reports.values() if r.get("resolved")) >= 10
    assert sum(r["summary"].get("delta", {}).get("new", 0) for r in reports.values()) >= 20
    bob_resolved = {
        n: [x["path"] for x in r.get("resolved", []) if x["account"] == "bob"]
        for n, r in reports.items()
    }
    assert bob_resolved[17] == bob_resolved[18] == []
    assert "/home/bob/public_html/up-12.php" in bob_resolved[19]

    # Bob's failed nights are in the history as failed targets, their files not resolved
    assert main(["history", "--history", str(history), "--nights", "40", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["run_id"] for row in listed] == [model.run_ids[n] for n in reversed(range(40))]
    for n, row in zip(reversed(range(NIGHTS)), listed, strict=True):
        assert row["failed"] == (1 if n in BOB_DOWN else 0)
        assert row["infected_files"] == sum(len(p) for p in model.reported[n].values())

    # Pruned to the newest 10 nights, the next night counts only those
    assert main(["history", "--history", str(history), "--keep-nights", "10"]) == 0
    assert "removed 30 nights, kept 10" in capsys.readouterr().out
    model.advance(NIGHTS)
    last = run_night(tmp_path, history, model, NIGHTS, monkeypatch)
    check_night(model, NIGHTS, last, since=NIGHTS - 10)
    assert len(last["history"]["nights"]) == 11
