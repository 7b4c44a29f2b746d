"""Issue 2 acceptance gaps: the README/CI contract, `clamfleet simulate` standalone, a real
start_scan refusal (not the precheck), a scan someone else is running, include/exclude of
accounts, the scan and server concurrency caps and the global rate seen by the servers,
exit-code precedence, `validate` without network, and one log line per target.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import workflow
from orchestrator.events import (
    GetScanStatus,
    ListInfected,
    ScanStarted,
    ScanStatusReply,
    Tick,
    Wait,
)
from orchestrator.model import ScanType, Target
from orchestrator.parse import parse_status
from orchestrator.simulator import (
    AccountSpec,
    Faults,
    FleetSpec,
    ServerSpec,
    SimFile,
    generate_fleet,
)
from orchestrator.simulator.scan import ScanRun, build_plan

from .conftest import FAST_SERVER, FAST_SETTINGS, Outcome, Sim, skewed_account

ROOT = Path(__file__).resolve().parent.parent


def edit_inventory(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def account(user: str, *, infected: bool = False, **kwargs: Any) -> AccountSpec:
    files = [SimFile("public_html/index.php", 2000), SimFile("documents/notes.txt", 800)]
    if infected:
        files.append(SimFile("public_html/shell.php", 900, "Php.Webshell-1"))
    return AccountSpec(user=user, files=tuple(files), **kwargs)


def one_server(*accounts: AccountSpec, faults: Faults | None = None) -> FleetSpec:
    server = ServerSpec("sim01", accounts=accounts, faults=faults or Faults())
    return FleetSpec(servers=(server,), scan_seconds=0.3, seed=1)


# ---------------------------------------------------------------------------------------------
# Packaging: the README's two commands, and CI running the second one verbatim


def readme_setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    assert len(sections) > 1, "README has a first `##` section"
    first = sections[1]
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", first, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_gives_exactly_two_setup_commands_and_ci_runs_the_test_one_verbatim() -> None:
    commands = readme_setup_commands()
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "pip install" in demo and demo.endswith("clamfleet demo")
    assert "pip install" in tests and "[test]" in tests and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines(), ".ci/run runs the README's test command as written"
    for tool in ("ruff", "mypy"):
        checks = ci + (ROOT / "scripts" / "check").read_text()
        assert tool in checks, f".ci/run runs {tool}"
    mypy = re.search(
        r"^\[tool\.mypy\]\n(.*?)^\[", (ROOT / "pyproject.toml").read_text(), re.M | re.S
    )
    assert mypy is not None and "strict = true" in mypy.group(1), "mypy runs --strict"


def test_console_script_and_python_m_are_the_same_cli() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^clamfleet = "orchestrator\.cli:main"$', pyproject, re.MULTILINE)
    assert re.search(r'^requires-python = ">=3\.11"$', pyproject, re.MULTILINE)
    script = Path(sys.executable).parent / "clamfleet"
    by_script = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    by_module = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert by_script.returncode == by_module.returncode == 0
    assert by_script.stdout == by_module.stdout
    assert by_script.stdout.startswith("clamfleet ")


# ---------------------------------------------------------------------------------------------
# `clamfleet simulate --write-inventory` standalone, then `clamfleet run` on what it wrote


class Simulate:
    """A `clamfleet simulate` process; its announced URLs and exported variables."""

    def __init__(self, args: list[str], exports: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "simulate", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self.lines: list[str] = []
        self.env: dict[str, str] = {}
        while len(self.env) < exports:
            line = lines.get(timeout=30)
            if line is None:
                raise AssertionError(f"simulate exited early: {self.lines}")
            self.lines.append(line)
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").partition("=")
                self.env[key] = value.strip("'")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def simulate_process() -> Iterator[Callable[[list[str], int], Simulate]]:
    started: list[Simulate] = []

    def start(args: list[str], exports: int) -> Simulate:
        sim = Simulate(args, exports)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


def speed_up(inventory: Path) -> None:
    """Only the run's pace (polls, rates): servers, URLs and auth stay as simulate wrote them."""

    def edit(data: dict[str, Any]) -> None:
        data["settings"] = dict(FAST_SETTINGS)
        for server in data["servers"]:
            server.update(FAST_SERVER)

    edit_inventory(inventory, edit)


def test_simulate_standalone_writes_an_inventory_that_run_scans_as_the_seed_says(
    simulate_process: Callable[[list[str], int], Simulate],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inventory = tmp_path / "fleet.yaml"
    args = ["--servers", "2", "--accounts", "3", "--infected-ratio", "0.5", "--seed", "17"]
    sim = simulate_process([*args, "--scan-seconds", "0.3", "--write-inventory", str(inventory)], 2)
    urls = dict(line.split(" ", 1) for line in sim.lines if line.startswith("sim0"))
    assert set(urls) == {"sim01", "sim02"}
    assert all(url.startswith("http://127.0.0.1:") for url in urls.values())
    assert f"inventory: {inventory}" in sim.lines
    assert all(value not in inventory.read_text() for value in sim.env.values()), (
        "the inventory references tokens, never holds them"
    )
    speed_up(inventory)
    for key, value in sim.env.items():
        monkeypatch.setenv(key, value)
    result = cli("run", inventory)

    # the same arguments give the same fleet: the report is what the seed says it is
    spec = generate_fleet(servers=2, accounts=3, infected_ratio=0.5, seed=17, scan_seconds=0.3)
    expected = {
        (s.name, a.user): "infected" if any(f.infected_by for f in a.files) else "clean"
        for s in spec.servers
        for a in s.accounts
    }
    got = {(t["server"], t["account"]): t["status"] for t in result.report["targets"]}
    assert got == expected
    assert result.code == (1 if "infected" in expected.values() else 0)


# ---------------------------------------------------------------------------------------------
# start_scan refused by cPanel (status 0): that target fails with cPanel's reason, never polled


@pytest.mark.parametrize(
    ("refused", "faults", "reason"),
    [
        pytest.param(
            account("bob", allowed_scan_types=("mail",)),
            Faults(),
            "disabled for this account",
            id="scan-type-disabled",
        ),
        pytest.param(account("bob"), Faults(clamd_down=True), "ClamAV", id="clamd-down"),
    ],
)
def test_a_refused_start_scan_fails_that_target_and_is_not_polled(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    refused: AccountSpec,
    faults: Faults,
    reason: str,
) -> None:
    spec = one_server(account("alice"), refused, faults=faults)
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    result = cli("run", sim.inventory)
    targets = result.targets()
    if not faults.clamd_down:  # (clamd down refuses every account's scan)
        assert targets[("sim01", "alice", "home")]["status"] == "clean"
    bob = targets[("sim01", "bob", "home")]
    assert bob["status"] == "failed"
    assert bob["error"]["kind"] == "api"
    assert reason in bob["error"]["message"]
    assert bob["infected_files"] == []
    # one start_scan, the status read before it and nothing after: no polling of a scan that
    # never started (cPanel has reset the status file, so polling would wait for nothing)
    assert sim.fleet.calls("sim01", function="start_scan", account="bob") == 1
    assert sim.fleet.calls("sim01", function="get_scan_status", account="bob") == 1
    assert sim.fleet.calls("sim01", function="list_infected_files", account="bob") == 0
    assert result.code == 2


# ---------------------------------------------------------------------------------------------
# A scan someone else started is waited for, then this run's own scan is started and read


def start_scan_directly(base_url: str, spec: AccountSpec) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/execute/ClamScanner/start_scan?scan_type=home",
        headers={"Authorization": f"cpanel {spec.user}:{spec.cpanel_token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_a_scan_already_running_is_waited_for_then_scanned_once_more_by_this_run(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    alice = replace(account("alice", infected=True), scan_seconds=1.0)
    sim = simulate(one_server(alice))
    assert start_scan_directly(sim.fleet.base_url("sim01"), alice)["status"] == 1
    result = cli("run", sim.inventory)
    (target,) = result.report["targets"]
    assert target["status"] == "infected", target["error"]
    assert target["error"] is None
    assert [f["path"] for f in target["infected_files"]] == ["/home/alice/public_html/shell.php"]
    # the foreign scan plus this run's own: never a start_scan into the running scan
    assert sim.fleet.calls("sim01", function="start_scan", account="alice") == 2
    assert result.code == 1


# ---------------------------------------------------------------------------------------------
# accounts: all with include_suspended and exclude_accounts


def test_include_suspended_scans_suspended_accounts(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = one_server(account("alice"), account("bob", infected=True, suspended=True))
    sim = simulate(spec, server_keys={"include_suspended": True})
    result = cli("run", sim.inventory)
    bob = result.targets()[("sim01", "bob", "home")]
    assert bob["status"] == "infected"
    assert sim.fleet.calls("sim01", function="start_scan", account="bob") == 1
    assert result.code == 1


def test_excluded_accounts_are_reported_skipped_and_never_scanned(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = one_server(account("alice"), account("tmp-bob", infected=True))
    sim = simulate(spec, server_keys={"exclude_accounts": ["tmp-*"]})
    result = cli("run", sim.inventory)
    assert sim.fleet.calls("sim01", account="tmp-bob") == 0
    assert result.code == 0
    targets = result.targets()
    assert targets[("sim01", "alice", "home")]["status"] == "clean"
    bob = targets[("sim01", "tmp-bob", "home")]
    assert bob["status"] == "skipped"
    assert bob["error"]["kind"] == "skipped"


# ---------------------------------------------------------------------------------------------
# The limits as the servers see them


def running_scans(sim: Sim, server: str) -> list[tuple[float, float]]:
    """Per account: from its start_scan to its list_infected_files, as the server saw them."""
    starts: dict[str, float] = {}
    spans = []
    for record in sim.fleet.request_log(server):
        if record.function == "start_scan" and record.account:
            starts[record.account] = record.t
        elif record.function == "list_infected_files" and record.account in starts:
            spans.append((starts.pop(record.account), record.t))
    assert not starts, f"scans never listed: {starts}"
    return spans


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


@pytest.mark.parametrize("cap", [1, 2])
def test_max_concurrent_scans_is_the_most_scans_a_server_ever_runs_at_once(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], cap: int
) -> None:
    spec = generate_fleet(servers=1, accounts=4, infected_ratio=0.5, seed=71, scan_seconds=0.3)
    sim = simulate(spec, server_keys={"max_concurrent_scans": cap})
    result = cli("run", sim.inventory)
    assert result.code in (0, 1)
    spans = running_scans(sim, "sim01")
    assert len(spans) == 4
    assert most_at_once(spans) == cap


def test_max_concurrent_servers_one_works_on_one_server_at_a_time(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=2, accounts=2, infected_ratio=0.0, seed=72, scan_seconds=0.2)
    sim = simulate(spec, settings={"max_concurrent_servers": 1})
    result = cli("run", sim.inventory)
    assert result.code == 0
    first, second = (
        sorted(r.t for r in sim.fleet.request_log(name)) for name in ("sim01", "sim02")
    )
    assert first and second
    assert first[-1] < second[0] or second[-1] < first[0], "the two servers' work overlapped"


def test_global_request_rate_holds_across_servers(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=2, accounts=1, infected_ratio=0.0, seed=73, scan_seconds=0.3)
    sim = simulate(spec, settings={"requests_per_second": 10})  # servers allow 500/s each
    result = cli("run", sim.inventory)
    assert result.code == 0
    times = sorted(r.t for name in ("sim01", "sim02") for r in sim.fleet.request_log(name))
    assert len(times) > 10
    for i, start in enumerate(times):  # 2 ms slack for loopback jitter
        assert len([t for t in times[i:] if t < start + 1.0 - 0.002]) <= 10


# ---------------------------------------------------------------------------------------------
# Exit codes and validate


def test_infected_wins_over_failed_in_the_exit_code(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    infected = ServerSpec("sim01", accounts=(account("alice", infected=True),))
    refusing = ServerSpec("sim02", accounts=(account("bob"),))
    sim = simulate(FleetSpec(servers=(infected, refusing), scan_seconds=0.3))
    monkeypatch.setenv(next(k for k in sim.env if "SIM02" in k), "not-the-token")
    result = cli("run", sim.inventory)
    summary = result.report["summary"]
    assert summary["failed"] >= 1 and summary["infected"] == 1
    assert result.code == summary["exit_code"] == 1


def test_validate_checks_inventory_and_policy_without_any_request(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim = simulate(one_server(account("alice")))
    policy = tmp_path / "policy.yaml"
    policy.write_text("default: report\nrules:\n  - when: {path: '*/mail/*'}\n    action: ignore\n")
    good = cli("validate", sim.inventory, "--policy", policy)
    assert good.code == 0, good.stderr
    assert "sim01" in good.stdout and "1 rules" in good.stdout

    policy.write_text("default: report\nrules:\n  - when: {pathz: x}\n    action: ignore\n")
    bad = cli("validate", sim.inventory, "--policy", policy)
    assert bad.code == 3
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{policy}:3:" in lines[0] and "pathz" in lines[0]

    broken = tmp_path / "inventory.yaml"
    broken.write_text(sim.inventory.read_text().replace("accounts: all", "acounts: all"))
    assert cli("validate", broken).code == 3
    assert sim.fleet.calls("sim01") == 0, "validate never touches the network"


# ---------------------------------------------------------------------------------------------
# Structured logs: one summary line per target


def test_json_logs_have_one_summary_line_for_every_target_of_the_report(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = one_server(
        account("alice", infected=True), account("bob"), account("carol", suspended=True)
    )
    sim = simulate(spec)
    result = cli("run", sim.inventory, "--log-format", "json")
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    finished = [e for e in events if e["event"] == "target.finished"]
    summary = {(e["server"], e["account"], e["scan_type"]): e["status"] for e in finished}
    assert len(summary) == len(finished), "one line per target, not more"
    assert summary == {
        (t["server"], t["account"], t["scan_type"]): t["status"] for t in result.report["targets"]
    }


# ---------------------------------------------------------------------------------------------
# Polling from the progress counters: a finished scan is noticed near its end (virtual time)


def completion_noticed_at(files: list[SimFile], duration: float, cfg: Any) -> float:
    """Drive the workflow against the simulator's scan model; when is completion seen?"""
    run = ScanRun(build_plan(files, "home"), "/home/u", 0.0, duration, time_started=1000)
    state, cmd = workflow.begin(Target("s", "u", ScanType.HOME), cfg, 0.0)
    state, cmd = workflow.step(state, ScanStatusReply(None), 0.0)
    state, cmd = workflow.step(state, ScanStarted(), 0.0)
    now = 0.0
    while not isinstance(cmd, ListInfected):
        if isinstance(cmd, Wait):
            now += cmd.seconds
            state, cmd = workflow.step(state, Tick(), now)
        else:
            assert isinstance(cmd, GetScanStatus), cmd
            state, cmd = workflow.step(state, ScanStatusReply(parse_status(run.status(now))), now)
    return now


@pytest.mark.parametrize(
    ("duration", "cfg"),
    [
        (0.3, workflow.WorkflowConfig(poll_min=0.05, poll_max=0.5, stall_timeout=10)),
        (300.0, workflow.WorkflowConfig(poll_min=2, poll_max=30, stall_timeout=1800)),
    ],
    ids=["fast-settings", "default-settings"],
)
def test_a_finished_scan_is_noticed_within_its_own_duration_plus_one_max_poll(
    duration: float, cfg: Any
) -> None:
    accounts = [skewed_account()] + [
        list(a.files)
        for s in generate_fleet(servers=2, accounts=10, infected_ratio=0.5, seed=5).servers
        for a in s.accounts
    ]
    late = {}
    for i, files in enumerate(accounts):
        seen = completion_noticed_at(files, duration, cfg)
        if seen > 2 * duration + cfg.poll_max:
            late[i] = round(seen / duration, 1)
    assert late == {}, f"accounts noticed late (x scan duration): {late}"
