"""Helpers the tests share (the fixtures are in conftest.py): small fleets, the CLI as a
process, policies, edited reports, and the check that reported outcomes are what the server
did."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from orchestrator.model import TargetResult
from orchestrator.report import Report, load_report, validate_report_dict, write_report
from orchestrator.report.model import summarize
from orchestrator.simulator import (
    AccountSpec,
    Faults,
    FleetSpec,
    ServerSpec,
    SimFile,
)
from orchestrator.simulator.spec import QUARANTINE_DIR

#: Settings that keep simulated runs short: fast polls, short deadlines, generous rates.
FAST_SETTINGS: dict[str, Any] = {
    "poll_interval": {"min": 0.05, "max": 0.5},
    "timeouts": {"request": 5, "scan": 60, "stall": 10, "disinfection": 30},
    "requests_per_second": 2000,
}
FAST_SERVER: dict[str, Any] = {"requests_per_second": 500, "max_concurrent_scans": 4}


@dataclass
class Sim:
    fleet: Any
    inventory: Path
    env: dict[str, str]


@dataclass
class Outcome:
    code: int
    out: Path
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.out / "report.json").read_text())
        validate_report_dict(report)  # every report a test reads honours the published schema
        return report

    def targets(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        return {(t["server"], t["account"], t["scan_type"]): t for t in self.report["targets"]}

    def csv_rows(self, name: str) -> list[dict[str, str]]:
        with (self.out / name).open(newline="") as fh:
            return list(csv.DictReader(fh))


def run_subprocess(
    *args: str | Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The CLI as its own process (for signals, tracebacks and the exact stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *map(str, args)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def comparable(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What two reports of the same fleet must agree on: every target, its status, its files."""
    return [
        (
            t["server"],
            t["account"],
            t["scan_type"],
            t["status"],
            sorted((f["path"], f["virus"]) for f in t["infected_files"]),
        )
        for t in report["targets"]
    ]


def start_cli(args: list[str | Path], env: dict[str, str]) -> subprocess.Popen[str]:
    """The CLI as a background process (to signal or kill it mid-run)."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *map(str, args)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def skewed_account() -> list[SimFile]:
    """Small files first, then one large mailbox: a rate measured early is far too low."""
    return [
        SimFile("bin/miner", 1500, "Unix.Trojan.Mirai-9"),
        SimFile("etc/passwd", 300),
        SimFile("mail/example.com/info/inbox", 60_000, None, [None, "Html.Phishing.Bank-2"]),
        SimFile("public_html/index.php", 3000),
        SimFile("public_html/x.php", 1500, "Php.Webshell-1"),
        SimFile("tmp/eicar.com", 1500, "Eicar-Signature"),
    ]


#: A policy that quarantines every infected file and cleanses mailboxes (destructive).
QUARANTINE_ALL = """\
default: quarantine
rules:
  - name: mail
    when: {path: "*/mail/*"}
    action: cleanse_mailbox
"""


TargetKey = tuple[str, str, str]


def target_key(t: dict[str, Any]) -> TargetKey:
    """A report.json target's identity: (server, account, scan_type)."""
    return (t["server"], t["account"], t["scan_type"])


def edit_inventory(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change a written inventory in place (as an operator would edit the YAML)."""
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def write_policy(tmp_path: Path, text: str = QUARANTINE_ALL, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def small_account(user: str, *, infected: bool = False, **kwargs: Any) -> AccountSpec:
    """Two clean files, plus one web shell when `infected`."""
    files = [SimFile("public_html/index.php", 2000), SimFile("documents/notes.txt", 800)]
    if infected:
        files.append(SimFile("public_html/shell.php", 900, "Php.Webshell-1"))
    return AccountSpec(user=user, files=tuple(files), **kwargs)


def infected_account(user: str, **kwargs: Any) -> AccountSpec:
    """A web shell under an escaped path, an infected mailbox message and a binary: every action
    of QUARANTINE_ALL has something to do."""
    files = (
        SimFile("public_html/index.php", 3000),
        SimFile("public_html/Q&A/shell.php", 900, "Php.Webshell-1"),
        SimFile("mail/example.com/info/inbox", 4000, None, [None, "Html.Phishing.Bank-2"]),
        SimFile("tmp/a.out", 500, "Unix.Trojan.Mirai-9"),
    )
    return AccountSpec(user=user, files=files, **kwargs)


def one_server(*accounts: AccountSpec, faults: Faults | None = None, seed: int = 1) -> FleetSpec:
    """A fleet of one server, `sim01`, with exactly these accounts and fast scans."""
    server = ServerSpec("sim01", accounts=accounts, faults=faults or Faults())
    return FleetSpec(servers=(server,), scan_seconds=0.3, seed=seed)


def assert_outcomes_are_what_the_server_did(
    sim: Sim, report: dict[str, Any], server_of: Callable[[str], str] = lambda name: name
) -> None:
    """Each reported outcome matches the file's state on the simulated server: quarantined
    files moved into the quarantine, deleted ones gone, cleansed mailboxes clean, every other
    outcome but `unknown` (which claims nothing) left the file as it was; `not-requested` only
    where no sibling scan type of the account acted on the file. `server_of`: the simulated
    server of a report's server name (inventory entry)."""
    acted = {
        (t["server"], t["account"], f["path"])
        for t in report["targets"]
        for f in t["infected_files"]
        if f["outcome"] in ("quarantined", "deleted", "mailbox-cleansed", "unknown")
    }
    for target in report["targets"]:
        user = target["account"]
        state = sim.fleet.account_state(server_of(target["server"]), user)
        for f in target["infected_files"]:
            rel = f["path"].removeprefix(f"/home/{user}/")
            where = (target["server"], user, target["scan_type"], rel, f["outcome"], f["message"])
            if f["outcome"] == "quarantined":
                assert rel not in state.files, where
                moved = state.files[f"{QUARANTINE_DIR}/{rel.replace('/', '_')}"]
                assert moved.infected_by == f["virus"], where
            elif f["outcome"] == "deleted":
                assert rel not in state.files, where
                assert f"{QUARANTINE_DIR}/{rel.replace('/', '_')}" not in state.files, where
            elif f["outcome"] == "mailbox-cleansed":
                assert state.files[rel].infected_by is None, where
            elif f["outcome"] == "unknown":
                pass  # sent, never confirmed: it may or may not be done
            elif f["outcome"] == "not-requested" and (target["server"], user, f["path"]) in acted:
                pass  # a sibling scan type of the account sent an action for it
            else:
                left = state.files.get(rel)
                assert left is not None and left.infected_by == f["virus"], where


def with_targets(report: Report, targets: Sequence[TargetResult]) -> Report:
    """`report` with other targets and the summary recomputed (delta kept)."""
    targets = tuple(targets)
    return replace(report, targets=targets, summary=summarize(targets, report.summary.delta))


def edited_report(source: Path, dest: Path, edit: Callable[[TargetResult], TargetResult]) -> Path:
    """A copy of a written report with its targets edited (the summary recomputed, so the
    report stays one `load_report` accepts)."""
    report = load_report(source)
    write_report(with_targets(report, [edit(t) for t in report.targets]), dest, ["json"])
    return dest / "report.json"


# ---------------------------------------------------------------------------------------------
# a disk that fills up under the journal


class FillingDisk:
    """`sqlite3.connect` for a disk with room for `budget` more writes: then every write fails
    with SQLite's own full-disk error (SQLITE_FULL, "database or disk is full"), as on a real
    full filesystem. For tests that cannot mount a tiny tmpfs.

    Writes reach the disk where SQLite's WAL puts them: a statement outside a transaction when
    it ends, a transaction at its COMMIT (pages stay in memory until then), the switch to WAL
    at once. `executemany` outside a transaction is stepped row by row, each row its own
    write, as SQLite does it, so a disk that fills up between two rows is modelled too.
    Install with `monkeypatch.setattr(sqlite3, "connect", FillingDisk(budget))`."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.real = sqlite3.connect

    def __call__(self, *args: Any, **kwargs: Any) -> _FillingConnection:
        return _FillingConnection(self, self.real(*args, **kwargs))

    def spend(self) -> None:
        if self.budget <= 0:
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = 13
            error.sqlite_errorname = "SQLITE_FULL"
            raise error
        self.budget -= 1


class _FillingConnection:
    def __init__(self, disk: FillingDisk, db: sqlite3.Connection) -> None:
        self.disk = disk
        self.db = db

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def _writes(self, sql: str) -> bool:
        text = sql.lstrip().upper()
        if text.startswith(("BEGIN", "ROLLBACK", "SELECT")):
            return False
        if text.startswith("COMMIT") or "JOURNAL_MODE" in text:
            return True
        if text.startswith("PRAGMA"):
            return "USER_VERSION" in text and "=" in text and not self.db.in_transaction
        return not self.db.in_transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        if self._writes(sql):
            self.disk.spend()
        return self.db.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> sqlite3.Cursor:
        if self.db.in_transaction:
            return self.db.executemany(sql, rows)
        cursor = self.db.cursor()
        for row in rows:
            cursor = self.execute(sql, row)
        return cursor

    def executescript(self, script: str) -> sqlite3.Cursor:
        for statement in filter(str.strip, script.split(";")):
            self.execute(statement)
        return self.db.cursor()

    def close(self) -> None:
        self.db.close()


@contextmanager
def http_receiver(
    add_routes: Callable[[web.Application], object],
    before_stop: Callable[[asyncio.AbstractEventLoop], None] | None = None,
) -> Iterator[int]:
    """An aiohttp server on 127.0.0.1 in a thread of its own, for what clamfleet posts to (a
    webhook, Apprise's json://): its port. `before_stop` runs in its loop before it stops."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        state["loop"] = loop
        app = web.Application()
        add_routes(app)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        state["port"] = runner.addresses[0][1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.shutdown())
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield int(state["port"])
    finally:
        loop: asyncio.AbstractEventLoop = state["loop"]
        if before_stop is not None:
            loop.call_soon_threadsafe(before_stop, loop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
