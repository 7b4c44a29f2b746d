"""kill -9 and --resume (mid-scan and mid-disinfection); SIGTERM and SIGINT and the partial
report; one run per journal; what --resume refuses to go on with (real CLI processes)."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import anyio

from orchestrator.cli import execute
from orchestrator.engine.journal import Journal
from orchestrator.engine.runner import FleetRun
from orchestrator.model import EXIT_INTERNAL, TargetResult
from orchestrator.simulator import (
    AccountSpec,
    Faults,
    FleetSpec,
    SimFile,
    SimulatorThread,
    generate_fleet,
)
from tests.support import (
    FAST_SERVER,
    FAST_SETTINGS,
    QUARANTINE_ALL,
    Outcome,
    Sim,
    assert_outcomes_are_what_the_server_did,
    comparable,
    infected_account,
    one_server,
    start_cli,
    write_policy,
)

SPEC = {"servers": 2, "accounts": 4, "infected_ratio": 0.5, "seed": 41, "scan_seconds": 1.2}


def journal_counts(path: Path) -> tuple[int, int]:
    """(finished targets, targets with a state) as the journal says right now."""
    if not path.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            done = db.execute("SELECT count(*) FROM targets WHERE result IS NOT NULL").fetchone()[0]
            started = db.execute("SELECT count(*) FROM targets WHERE state IS NOT NULL").fetchone()[
                0
            ]
    except sqlite3.Error:
        return 0, 0
    return done, started


def test_kill_9_then_resume_gives_the_uninterrupted_report_without_restarting_scans(
    simulate: Callable[..., Sim], tmp_path: Path
) -> None:
    spec = generate_fleet(**SPEC)  # type: ignore[arg-type]
    sim = simulate(spec, server_keys={"max_concurrent_scans": 2})
    journal = tmp_path / "journal.sqlite"
    proc = start_cli(
        ["run", sim.inventory, "--journal", journal, "--out", tmp_path / "a", "--no-progress"],
        sim.env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill once some targets are done and others in flight
        done, started = journal_counts(journal)
        if done >= 1 and started > done:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert not (tmp_path / "a" / "report.json").exists()

    resumed = start_cli(
        [
            "run",
            sim.inventory,
            "--journal",
            journal,
            "--resume",
            "--out",
            tmp_path / "a",
            "--no-progress",
        ],
        sim.env,
    )
    _out, err = resumed.communicate(timeout=60)
    assert resumed.returncode in (0, 1), err
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    for server in spec.servers:
        for account in server.accounts:
            assert sim.fleet.calls(server.name, function="start_scan", account=account.user) == 1, (
                "a scan running at the kill is re-attached, never started again"
            )
    # the resumed process is the same run to the servers: one run id, the report's
    runs = {r.run for server in spec.servers for r in sim.fleet.request_log(server.name)}
    assert runs == {report["run"]["id"]}

    with SimulatorThread(spec) as fresh:  # the same fleet, scanned without interruption
        inventory = tmp_path / "fresh.yaml"
        env = fresh.write_inventory(
            inventory, auth="whm", settings=FAST_SETTINGS, extra_server_keys=FAST_SERVER
        )
        plain = start_cli(["run", inventory, "--out", tmp_path / "b", "--no-progress"], env)
        plain.communicate(timeout=60)
    expected = json.loads((tmp_path / "b" / "report.json").read_text())
    assert comparable(report) == comparable(expected)
    assert report["summary"]["exit_code"] == expected["summary"]["exit_code"] == resumed.returncode


def test_sigterm_writes_a_partial_report_with_interrupted_targets(
    simulate: Callable[..., Sim], tmp_path: Path
) -> None:
    spec = generate_fleet(**{**SPEC, "scan_seconds": 4.0})  # type: ignore[arg-type]
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    proc = start_cli(["run", sim.inventory, "--out", tmp_path / "out", "--no-progress"], sim.env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sim.fleet.calls("sim01", function="start_scan") == 0:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode in (1, 2), err
    assert "Traceback" not in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    kinds = [(t["error"] or {}).get("kind") for t in report["targets"]]
    assert len(report["targets"]) == sum(len(s.accounts) for s in spec.servers)
    assert "interrupted" in kinds
    assert all(t["status"] in ("clean", "infected", "failed", "skipped") for t in report["targets"])
    assert "partial report" in out


# ---------------------------------------------------------------------------------------------
# SIGINT like SIGTERM; kill -9 during a disinfection, then --resume; the journal lock


TERMINAL = {"clean", "infected", "failed", "skipped"}


def test_sigint_stops_the_run_and_writes_the_partial_report(
    simulate: Callable[..., Sim], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=2, accounts=3, infected_ratio=0.5, seed=93, scan_seconds=4.0)
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    out = tmp_path / "out"
    proc = start_cli(["run", sim.inventory, "--out", out, "--no-progress"], sim.env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sim.fleet.calls("sim01", function="start_scan") == 0:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    assert "Traceback" not in stderr
    report = json.loads((out / "report.json").read_text())
    assert len(report["targets"]) == 6
    assert all(t["status"] in TERMINAL for t in report["targets"])
    kinds = {(t["error"] or {}).get("kind") for t in report["targets"]}
    assert "interrupted" in kinds
    assert "partial report" in stdout
    assert proc.returncode == report["summary"]["exit_code"] == 2
    starts = sum(sim.fleet.calls(s.name, function="start_scan") for s in spec.servers)
    assert starts <= 2, "no new scan was started after the signal"


def journal_phases(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            rows = db.execute("SELECT state, result FROM targets").fetchall()
    except sqlite3.Error:
        return Counter()
    phases: Counter[str] = Counter()
    for state, result in rows:
        if result is not None:
            phases["finished"] += 1
        elif state is not None:
            phases[json.loads(state)["phase"]] += 1
    return phases


def test_kill_9_while_a_disinfection_runs_then_resume_follows_it_without_resending(
    simulate: Callable[..., Sim], tmp_path: Path
) -> None:
    spec = one_server(
        infected_account("alice"),
        infected_account("bob"),
        faults=Faults(disinfect_start_delay=0.4, disinfect_step_seconds=0.3),
        seed=4,
    )
    # one lane: killed while alice's disinfection is followed, bob not begun. (With two lanes
    # bob could be killed between saving `disinfecting` and sending disinfect_files: then its
    # fate is unknown, and resume rightly never resends it.)
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    journal, out = tmp_path / "journal.sqlite", tmp_path / "out"
    args: list[str | Path] = ["run", sim.inventory, "--policy", write_policy(tmp_path)]
    args += ["--journal", journal, "--out", out, "--no-progress"]
    proc = start_cli(args, sim.env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and journal_phases(journal)["following"] == 0:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert sim.fleet.calls("sim01", function="disinfect_files") == 1, "killed mid-disinfection"
    assert sim.fleet.account_state("sim01", "alice").disinfection != "done"
    assert not (out / "report.json").exists()

    resumed = start_cli([*args, "--resume"], sim.env)
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 1, err
    report = json.loads((out / "report.json").read_text())
    for target in report["targets"]:
        user = target["account"]
        assert target["error"] is None, target["error"]
        assert {f["outcome"] for f in target["infected_files"]} == {
            "quarantined",
            "mailbox-cleansed",
        }
        assert sim.fleet.calls("sim01", function="start_scan", account=user) == 1
        assert sim.fleet.calls("sim01", function="disinfect_files", account=user) == 1
    assert_outcomes_are_what_the_server_did(sim, report)


def test_a_second_run_on_a_journal_in_use_exits_3_and_scans_nothing(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(one_server(infected_account("alice"), seed=4))
    path = tmp_path / "journal.sqlite"
    holder = Journal(path)
    holder.open({"fleet_id": "x"}, resume=False)
    try:
        second = cli("run", sim.inventory, "--journal", path)
    finally:
        holder.close()
    assert second.code == 3
    (line,) = [x for x in second.stderr.splitlines() if x.strip()]
    assert "in use" in line and str(path) in line
    assert sim.fleet.calls("sim01") == 0
    assert not (second.out / "report.json").exists()


def test_resume_without_a_journal_file_is_refused_before_any_request(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=0.5, seed=43, scan_seconds=0.1)
    sim = simulate(spec)
    journal = tmp_path / "typo.sqlite"
    result = cli("run", sim.inventory, "--journal", journal, "--resume")
    assert result.code == 3
    (line,) = result.stderr.strip().splitlines()
    assert "no journal to resume" in line and str(journal) in line
    assert sim.fleet.calls("sim01") == 0
    assert not journal.exists()


def test_resume_of_a_finished_run_with_a_new_policy_is_refused_and_disinfects_nothing(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=1, accounts=3, infected_ratio=1.0, seed=44, scan_seconds=0.1)
    sim = simulate(spec)
    journal = tmp_path / "journal.sqlite"
    first = cli("run", sim.inventory, "--journal", journal)  # report-only, runs to the end
    assert first.code == 1
    calls = sim.fleet.calls("sim01")
    policy = tmp_path / "policy.yaml"
    policy.write_text(QUARANTINE_ALL)
    again = cli("run", sim.inventory, "--journal", journal, "--resume", "--policy", policy)
    assert again.code == 3
    (line,) = again.stderr.strip().splitlines()
    assert "already finished: nothing to resume" in line
    assert sim.fleet.calls("sim01") == calls, "a refused resume sends nothing"
    assert sim.fleet.calls("sim01", function="disinfect_files") == 0


# ---------------------------------------------------------------------------------------------
# What a resumed run must still remember of the part before the stop


class Stopped(Exception):
    """The run stopped (as a kill would): its journal is left unfinished."""


def stopping_after_results(count: int) -> type[FleetRun]:
    """FleetRun that stops as soon as `count` targets have finished (deterministic kill)."""

    class StoppingFleetRun(FleetRun):
        async def run(self) -> None:
            with anyio.CancelScope() as self.stop:
                await super().run()
            if self.stop.cancel_called:
                raise Stopped(f"stopped after {count} finished target(s)")

        def record(self, result: TargetResult) -> None:
            super().record(result)
            done = [r for r in self.results_by_target.values() if r.error is None]
            if len(done) >= count:
                self.stop.cancel()

    return StoppingFleetRun


def stop_then_resume(sim: Sim, cli: Callable[..., Outcome], args: list[str | Path]) -> Outcome:
    with mock.patch.object(execute, "FleetRun", stopping_after_results(1)):
        stopped = cli(*args)
    assert stopped.code == EXIT_INTERNAL, stopped.stderr  # stopped part-way: nothing finished
    return cli(*args, "--resume")


def two_scan_types_one_file_each(tmp_path: Path, policy: str) -> tuple[FleetSpec, Path]:
    account = AccountSpec(
        "alice",
        files=(
            SimFile("public_html/shell.php", 900, "Php.Webshell-1"),
            SimFile("mail/example.com/info/cur/1.eml", 800, "Email.Trojan.Agent-7"),
        ),
    )
    return one_server(account), write_policy(tmp_path, policy)


def test_a_resumed_run_keeps_max_destructive_per_account_across_the_stop(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec, policy = two_scan_types_one_file_each(
        tmp_path, "default: quarantine\nlimits: {max_destructive_per_account: 1}\n"
    )
    sim = simulate(spec, server_keys={"scan_types": ["home", "public_html", "mail"]})
    args: list[str | Path] = ["run", sim.inventory, "--policy", policy]
    resumed = stop_then_resume(sim, cli, [*args, "--journal", tmp_path / "journal.sqlite"])
    files = sim.fleet.account_state("sim01", "alice").files
    moved = [p for p in files if p.startswith("quarantine_clamavconnector/")]
    kinds = [(t["error"] or {}).get("kind") for t in resumed.report["targets"]]
    assert "policy_limit" in kinds, kinds
    assert len(moved) <= 1, f"max_destructive_per_account=1, yet quarantined: {moved}"


def test_a_resumed_run_sends_no_file_an_action_twice(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec, policy = two_scan_types_one_file_each(tmp_path, "default: ignore\n")
    sim = simulate(spec, server_keys={"scan_types": ["home", "public_html"]})
    args: list[str | Path] = ["run", sim.inventory, "--policy", policy]
    resumed = stop_then_resume(sim, cli, [*args, "--journal", tmp_path / "journal.sqlite"])
    targets = resumed.targets()
    web = "/home/alice/public_html/shell.php"
    outcomes = [
        f["outcome"]
        for key in (("sim01", "alice", "home"), ("sim01", "alice", "public_html"))
        for f in targets[key]["infected_files"]
        if f["path"] == web
    ]
    assert sorted(outcomes) == ["no-action", "not-requested"], "the web shell sent once"
