"""Live progress: the model behind the display, and the real CLI on a pseudo-terminal."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from rich.console import Console

from orchestrator import log
from orchestrator.cli.progress import Estimate, FleetProgress, LiveProgress
from orchestrator.config import AuthMethod, Credentials, Inventory, Server, Settings
from orchestrator.model import (
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    ScanStats,
    ScanType,
    Secret,
    Status,
    Target,
    TargetResult,
)
from orchestrator.report import load_report
from orchestrator.simulator import SimulatorThread, generate_fleet
from tests.support import Sim

HOME, MAIL = ScanType.HOME, ScanType.MAIL


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def server(name: str, accounts: tuple[str, ...] | None, **kw: object) -> Server:
    auth = Credentials(AuthMethod.WHM_TOKEN, "root", Secret("t0ken"))
    return Server(name, f"http://127.0.0.1:1/{name}", auth, accounts=accounts, **kw)  # type: ignore[arg-type]


def inventory(*servers: Server, max_servers: int = 50) -> Inventory:
    return Inventory("inv.yaml", servers, Settings(max_concurrent_servers=max_servers))


def stats(scanned: int, total: int) -> ScanStats:
    return ScanStats(time_started=1, scanned_file_count=scanned, scanned_file_size=0,
                     total_file_count=total)  # fmt: skip


def finished(target: Target, status: Status = Status.CLEAN, **kw: object) -> TargetResult:
    return TargetResult(target, status, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The model


def test_totals_count_explicit_accounts_then_grow_as_servers_list_theirs() -> None:
    web01 = server(
        "web01", ("alice", "bob", "tmp1"), scan_types=(HOME, MAIL), exclude_accounts=("tmp*",)
    )
    inv = inventory(web01, server("web02", None))
    model = FleetProgress(inv, FakeClock())
    assert (model.total, model.unlisted) == (4, 1)  # web01: 2 accounts x 2 types; web02 unknown
    model.targets_resolved("web02", tuple(Target("web02", a, HOME) for a in "xyz"))
    assert (model.total, model.unlisted) == (7, 0)
    model.targets_resolved("web01", (Target("web01", "alice", HOME),))  # e.g. --only-failed
    assert model.total == 4


def test_counts_files_infections_and_failures() -> None:
    model = FleetProgress(inventory(server("web01", ("alice", "bob", "carol"))), FakeClock())
    alice, bob, carol = (Target("web01", a, HOME) for a in ("alice", "bob", "carol"))
    model.targets_resolved("web01", (alice, bob, carol))
    model.target_started(alice)
    model.target_started(bob)
    model.scan_progress(alice, stats(10, 100))
    model.scan_progress(alice, stats(40, 100))
    model.scan_progress(bob, stats(5, 50))
    assert model.files == 45
    assert model.servers["web01"].files_running == 45
    model.target_finished(
        finished(alice, Status.INFECTED, scan=stats(100, 100),
                 infected_files=(InfectedFile("/home/alice/x", "Eicar"),))
    )  # fmt: skip
    assert (model.done, model.files, model.infected) == (1, 105, 1)
    error = ErrorInfo(ErrorKind.AUTH, "credentials refused")
    model.target_finished(finished(bob, Status.FAILED, error=error))
    assert (model.ended, model.done, model.failed, model.files) == (2, 1, 1, 100)
    assert [f.line() for f in model.failures] == ["✗ web01/bob/home: auth — credentials refused"]
    assert model.take_lines() == ["✗ web01/bob/home: auth — credentials refused"]
    assert model.take_lines() == []
    web01 = model.servers["web01"]
    assert (len(web01.running), web01.ended, web01.done, web01.total) == (0, 2, 1, 3)
    assert web01.active and not model.finished
    model.target_finished(finished(carol, Status.SKIPPED))
    assert not web01.active
    assert model.finished and not model.all_done, "one failed: finished, not all done"
    assert (model.failed, model.skipped) == (1, 1)


def test_a_servers_repeated_error_is_printed_once_and_counted() -> None:
    model = FleetProgress(inventory(server("web02", ("a", "b", "c"))), FakeClock())
    refused = ErrorInfo(ErrorKind.AUTH, "credentials refused")
    for account in "abc":
        model.target_finished(
            finished(Target("web02", account, HOME), Status.FAILED, error=refused)
        )
    stop = ErrorInfo(ErrorKind.INTERRUPTED, "run interrupted")
    model.target_finished(finished(Target("web02", "d", HOME), Status.FAILED, error=stop))
    assert model.take_lines() == ["✗ web02/a/home: auth — credentials refused"]
    assert model.suppressed == {"web02": 2}
    assert len(model.failures) == 4 and model.failed == 4


def test_eta_unknown_until_something_can_be_extrapolated() -> None:
    clock = FakeClock()
    model = FleetProgress(inventory(server("web01", ("alice", "bob"))), clock)
    alice = Target("web01", "alice", HOME)
    assert model.eta() is None
    model.target_started(alice)
    clock.now += 10
    assert model.eta() is None  # no counters yet
    model.scan_progress(alice, stats(0, 100))
    assert model.eta() is None  # a fraction of 0 says nothing about speed


def test_eta_extrapolates_running_scans_from_their_own_counters() -> None:
    clock = FakeClock()
    model = FleetProgress(
        inventory(server("web01", ("alice", "bob"), max_concurrent_scans=2)), clock
    )
    alice, bob = Target("web01", "alice", HOME), Target("web01", "bob", HOME)
    model.target_started(alice)
    model.target_started(bob)
    clock.now += 10
    model.scan_progress(alice, stats(25, 100))  # 10 s for a quarter: 30 s to go
    model.scan_progress(bob, stats(50, 100))  # 10 s for half: 10 s to go
    assert model.eta() == Estimate(30.0)
    clock.now += 10
    model.target_finished(finished(bob, scan=stats(100, 100)))
    assert model.eta() == Estimate(20.0)  # alice's own counters still say 20 s from now


def test_eta_uses_observed_durations_for_targets_not_started() -> None:
    clock = FakeClock()
    inv = inventory(server("web01", ("a", "b", "c", "d", "e"), max_concurrent_scans=2))
    model = FleetProgress(inv, clock)
    a, b, c = (Target("web01", n, HOME) for n in "abc")
    model.target_started(a)
    clock.now += 60
    model.target_finished(finished(a))  # 60 s a scan on this server
    model.target_started(b)
    model.target_started(c)
    clock.now += 30  # b and c: no counters yet, ~30 s each to go by the mean
    # work: 30 + 30 + 2 pending x 60 = 180 s over 2 lanes
    assert model.eta() == Estimate(90.0)


def test_eta_spreads_server_time_over_the_server_slots() -> None:
    clock = FakeClock()
    names = ("web01", "web02", "web03", "web04")
    inv = inventory(*(server(n, ("a",), max_concurrent_scans=1) for n in names), max_servers=2)
    model = FleetProgress(inv, clock)
    first = Target("web01", "a", HOME)
    model.target_started(first)
    clock.now += 40
    model.target_finished(finished(first))
    # three servers of one 40 s target each, two at a time: the makespan bound is 60 s
    assert model.eta() == Estimate(60.0)


def test_eta_is_a_lower_bound_while_accounts_are_unlisted() -> None:
    clock = FakeClock()
    model = FleetProgress(inventory(server("web01", ("a",)), server("web02", None)), clock)
    a = Target("web01", "a", HOME)
    model.target_started(a)
    clock.now += 5
    model.scan_progress(a, stats(50, 100))
    assert model.eta() == Estimate(5.0, lower_bound=True)
    model.targets_resolved("web02", ())
    assert model.eta() == Estimate(5.0)


def test_failed_targets_do_not_shorten_the_mean_duration() -> None:
    clock = FakeClock()
    model = FleetProgress(
        inventory(server("web01", ("a", "b", "c"), max_concurrent_scans=1)), clock
    )
    a, b = Target("web01", "a", HOME), Target("web01", "b", HOME)
    model.target_started(a)
    clock.now += 50
    model.target_finished(finished(a))
    model.target_started(b)
    model.target_finished(
        finished(b, Status.FAILED, error=ErrorInfo(ErrorKind.API, "feature disabled"))
    )
    assert model.eta() == Estimate(50.0)  # one pending target at the 50 s the scan took


def test_events_of_unknown_servers_are_counted_not_fatal() -> None:
    model = FleetProgress(inventory(), FakeClock())
    model.target_finished(finished(Target("ghost", "a", HOME)))
    assert model.done == 1 and model.total == 1


# ---------------------------------------------------------------------------------------------
# The display, in process


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    log.configure("console", "info")


@pytest.mark.asyncio
async def test_running_shows_the_area_prints_failures_and_routes_logs(
    restore_logging: None,
) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system=None)
    log.configure("console", "info", stream=io.StringIO())
    log.register_secret("SECRET-TOKEN-123")
    progress = LiveProgress(inventory(server("web02", ("alice",))), console, route_logs=True)
    target = Target("web02", "alice", HOME)
    async with progress.running():
        progress.targets_resolved("web02", (target,))
        progress.target_started(target)
        structlog.get_logger("t").warning("tls.verify_disabled", token="SECRET-TOKEN-123")
        progress.target_finished(
            finished(target, Status.FAILED, error=ErrorInfo(ErrorKind.AUTH, "credentials refused"))
        )
    out = buffer.getvalue()
    assert "✗ web02/alice/home: auth — credentials refused" in out
    assert "targets 1/1" in out
    assert "tls.verify_disabled" in out and "SECRET-TOKEN-123" not in out
    # afterwards the logs go where they went before
    structlog.get_logger("t").warning("after.run")
    assert "after.run" not in buffer.getvalue()


@pytest.mark.asyncio
async def test_running_reraises_the_bodys_error_unwrapped() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    progress = LiveProgress(inventory(), console, route_logs=False)
    with pytest.raises(KeyError):
        async with progress.running():
            raise KeyError("boom")


# ---------------------------------------------------------------------------------------------
# The real CLI: progress on a pseudo-terminal, none when piped or with --no-progress

PROGRESS = re.compile(r"targets \d+/\d+")
SAFETY_TIMEOUT = 120.0  # only against a hung child; nothing here measures time


@pytest.fixture(scope="module")
def fleet_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    spec = generate_fleet(servers=2, accounts=3, infected_ratio=0.3, seed=1, scan_seconds=0.5)
    path = tmp_path_factory.mktemp("fleet") / "inventory.yaml"
    with SimulatorThread(spec) as fleet:
        env = fleet.write_inventory(
            path,
            auth="whm",
            settings={"poll_interval": {"min": 0.05, "max": 0.5}, "requests_per_second": 1000},
            extra_server_keys={"requests_per_second": 100},
        )
        yield path, {**os.environ, **env, "TERM": "xterm-256color"}


def run_cli(env: dict[str, str], *args: str | Path, tty: bool) -> tuple[int, str]:
    """`python -m orchestrator ARGS`, stdout and stderr on a pseudo-terminal or on pipes."""
    argv = [sys.executable, "-m", "orchestrator", *map(str, args)]
    if not tty:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=SAFETY_TIMEOUT, check=False
        )
        return done.returncode, done.stdout + done.stderr
    master, slave = pty.openpty()
    # A real size, as a terminal window has: rich lays the live area out to it.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        output = _read_until_closed(master)
        return proc.wait(timeout=SAFETY_TIMEOUT), output
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def _read_until_closed(master: int) -> str:
    chunks = []
    deadline = time.monotonic() + SAFETY_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every holder of the terminal's other end has closed it
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_is_shown_on_a_terminal(
    fleet_env: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    inventory_path, env = fleet_env
    code, output = run_cli(env, "run", inventory_path, "--out", tmp_path / "out", tty=True)
    assert code in (0, 1), output
    assert PROGRESS.search(output), output
    assert "targets 6/6" in output  # the final state stays on screen
    assert "target.finished" in output  # log lines still arrive, above the live area
    assert (tmp_path / "out" / "report.json").exists()


def test_no_progress_when_stdout_is_not_a_terminal(
    fleet_env: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    inventory_path, env = fleet_env
    code, output = run_cli(env, "run", inventory_path, "--out", tmp_path / "out", tty=False)
    assert code in (0, 1), output
    assert not PROGRESS.search(output)
    assert "ETA" not in output
    assert (tmp_path / "out" / "report.json").exists()


def test_no_progress_on_a_terminal_with_no_progress(
    fleet_env: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    inventory_path, env = fleet_env
    args = ("run", inventory_path, "--out", tmp_path / "out", "--no-progress")
    code, output = run_cli(env, *args, tty=True)
    assert code in (0, 1), output
    assert not PROGRESS.search(output)
    assert "ETA" not in output
    assert "target.finished" in output


def test_no_progress_on_a_terminal_with_json_logs(
    fleet_env: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """JSON logs are for a collector: every line must stay parseable, no live area among them."""
    inventory_path, env = fleet_env
    args = ("run", inventory_path, "--out", tmp_path / "out", "--log-format", "json")
    code, output = run_cli(env, *args, tty=True)
    assert code in (0, 1), output
    assert not PROGRESS.search(output)
    logs = [line for line in output.splitlines() if line.startswith("{")]
    assert any(json.loads(line)["event"] == "target.finished" for line in logs)


# ---------------------------------------------------------------------------------------------
# What the live area paints, and failures printed on a real terminal


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
