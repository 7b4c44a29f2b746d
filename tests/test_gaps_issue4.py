"""Issue 4 acceptance gaps: faults on the remediation path (the fault matrix never sends a
disinfection), an ambiguous start_scan during cPanel's stale-status window, the circuit breaker's
request count, request and disinfection deadlines, SIGINT, resume of a queued disinfection after
kill -9, the journal lock from the CLI, HTTPS through `run`, secrets with Basic auth (journal
included), and fault knobs from `clamfleet simulate`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import stamina
import yaml
from aiohttp import web

from orchestrator.client import Http, RetryPolicy, ServerClient
from orchestrator.config import AuthMethod, Credentials, Server
from orchestrator.errors import TransportError
from orchestrator.journal import Journal
from orchestrator.model import Secret
from orchestrator.runner import BREAKER_THRESHOLD
from orchestrator.simulator import (
    AccountSpec,
    Faults,
    FleetSpec,
    ServerSpec,
    SimFile,
    generate_fleet,
)

from .conftest import QUARANTINE_ALL, Outcome, Sim, start_cli
from .test_e2e_faults import assert_invariants

TERMINAL = {"clean", "infected", "failed", "skipped"}


def edit_inventory(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def infected_account(user: str, **kwargs: Any) -> AccountSpec:
    files = (
        SimFile("public_html/index.php", 3000),
        SimFile("public_html/Q&A/shell.php", 900, "Php.Webshell-1"),
        SimFile("mail/example.com/info/inbox", 4000, None, [None, "Html.Phishing.Bank-2"]),
        SimFile("tmp/a.out", 500, "Unix.Trojan.Mirai-9"),
    )
    return AccountSpec(user=user, files=files, **kwargs)


def fleet(*accounts: AccountSpec, faults: Faults | None = None) -> FleetSpec:
    server = ServerSpec("sim01", accounts=accounts, faults=faults or Faults())
    return FleetSpec(servers=(server,), scan_seconds=0.3, seed=4)


def policy_file(tmp_path: Path, text: str = QUARANTINE_ALL) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def relpath(user: str, path: str) -> str:
    return path.removeprefix(f"/home/{user}/")


def assert_outcomes_are_what_the_server_did(sim: Sim, report: dict[str, Any]) -> None:
    for target in report["targets"]:
        user = target["account"]
        state = sim.fleet.account_state(target["server"], user)
        for f in target["infected_files"]:
            rel = relpath(user, f["path"])
            if f["outcome"] == "quarantined":
                assert rel not in state.files
            elif f["outcome"] == "mailbox-cleansed":
                assert state.files[rel].infected_by is None
            else:
                assert state.files[rel].infected_by == f["virus"], (rel, f["outcome"])


# ---------------------------------------------------------------------------------------------
# Fault matrix on the remediation path


@pytest.mark.parametrize(
    ("knobs", "sent"),
    [
        pytest.param(
            {"status_5xx_every": 2, "functions": frozenset({"check_disinfection_status"})},
            True,
            id="5xx-on-disinfection-polls",
        ),
        pytest.param(
            {"retry_after_every": 2, "functions": frozenset({"check_disinfection_status"})},
            True,
            id="429-on-disinfection-polls",
        ),
        pytest.param(
            {"reset_every": 2, "functions": frozenset({"check_disinfection_status"})},
            True,
            id="reset-on-disinfection-polls",
        ),
        pytest.param(
            {"status_5xx_every": 2, "functions": frozenset({"create_user_session"})},
            True,
            id="5xx-on-create-user-session",
        ),
        pytest.param(
            {"truncated_json_every": 1, "functions": frozenset({"disinfect_files"})},
            True,
            id="truncated-disinfect-answer",
        ),
        pytest.param(
            {"reset_every": 1, "functions": frozenset({"disinfect_files"})},
            False,
            id="reset-on-disinfect",
        ),
        pytest.param(
            {"status_5xx_every": 1, "functions": frozenset({"disinfect_files"})},
            False,
            id="5xx-on-disinfect",
        ),
    ],
)
def test_remediation_fault_matrix(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    knobs: dict[str, Any],
    sent: bool,
) -> None:
    """Each fault once more, now with disinfect_files in play (whm: the session route)."""
    spec = fleet(infected_account("alice"), infected_account("bob"), faults=Faults(**knobs))
    sim = simulate(spec)
    result = cli("run", sim.inventory, "--policy", policy_file(tmp_path), "--log-level", "debug")
    assert_invariants(sim, spec, result)  # terminal, never twice, no token anywhere, exit code
    report = result.report
    for target in report["targets"]:
        assert target["status"] == "infected"
        assert sim.fleet.calls("sim01", function="disinfect_files", account=target["account"]) == 1
        outcomes = {f["outcome"] for f in target["infected_files"]}
        if sent:
            assert outcomes == {"quarantined", "mailbox-cleansed"}, target["error"]
            assert target["error"] is None
        else:  # never queued: not resent, reported as not done
            assert outcomes == {"error"}
            assert target["error"]["kind"] in ("api", "unreachable")
    assert_outcomes_are_what_the_server_did(sim, report)


def test_a_5xx_on_the_session_login_is_not_an_authentication_failure(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = fleet(
        infected_account("alice"),
        infected_account("bob"),
        infected_account("carol"),
        faults=Faults(status_5xx_every=1, functions=frozenset({"login"})),
    )
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    result = cli("run", sim.inventory, "--policy", policy_file(tmp_path))
    assert_invariants(sim, spec, result)
    for target in result.report["targets"]:
        assert (target["error"] or {}).get("kind") != "auth", target
        assert target["status"] == "infected"
    assert sim.fleet.calls("sim01", function="start_scan") == 3, "every account was scanned"


# ---------------------------------------------------------------------------------------------
# start_scan whose answer is lost while the previous scan's status is still shown


def test_an_ambiguous_start_scan_in_the_stale_window_is_not_sent_twice(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = fleet(infected_account("alice"))
    sim = simulate(spec)
    first = cli("run", sim.inventory)  # leaves a completed scan behind
    assert first.code == 1
    # every start_scan answer is cut in half (the scan did start), and for 1 s after it the
    # server still shows the first scan's completed status, as cPanel may
    sim.fleet.set_faults(
        "sim01",
        Faults(truncated_json_every=1, functions=frozenset({"start_scan"}), stale_seconds=1.0),
    )
    second = cli("run", sim.inventory)
    (target,) = second.report["targets"]
    assert target["status"] == "infected"
    assert sim.fleet.calls("sim01", function="start_scan", account="alice") == 2, (
        "one start_scan per run: a scan that took must not be started again"
    )


# ---------------------------------------------------------------------------------------------
# Circuit breaker: a dead server's remaining targets end unreachable without more requests


def test_the_breaker_stops_requests_to_a_failing_server_and_fails_the_rest_unreachable(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=2, accounts=8, infected_ratio=0.0, seed=91, scan_seconds=0.2)
    broken = frozenset({"get_scan_status", "start_scan", "list_infected_files"})
    servers = [
        dataclasses.replace(s, faults=Faults(fail_next=10_000, functions=broken))
        if s.name == "sim02"
        else s
        for s in spec.servers
    ]
    spec = dataclasses.replace(spec, servers=tuple(servers))
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    result = cli("run", sim.inventory)
    assert_invariants(sim, spec, result)
    rows = {k: t for k, t in result.targets().items() if k[0] == "sim02"}
    assert len(rows) == 8
    assert {t["status"] for t in rows.values()} == {"failed"}
    assert {t["error"]["kind"] for t in rows.values()} == {"unreachable"}
    # listaccts, then the attempts of BREAKER_THRESHOLD targets; the other 5 send nothing
    attempts = 3  # stamina's test mode in conftest
    assert sim.fleet.calls("sim02", function="get_scan_status") == BREAKER_THRESHOLD * attempts
    assert sim.fleet.calls("sim02", function="start_scan") == 0
    assert {t["status"] for k, t in result.targets().items() if k[0] == "sim01"} == {"clean"}


# ---------------------------------------------------------------------------------------------
# Deadlines


def test_a_server_slower_than_the_request_timeout_fails_and_the_run_goes_on(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=2, accounts=2, infected_ratio=0.0, seed=92, scan_seconds=0.2)
    servers = [
        dataclasses.replace(s, faults=Faults(slow_seconds=3.0)) if s.name == "sim02" else s
        for s in spec.servers
    ]
    spec = dataclasses.replace(spec, servers=tuple(servers))
    sim = simulate(
        spec, settings={"timeouts": {"request": 0.3, "scan": 60, "stall": 10, "disinfection": 30}}
    )
    result = cli("run", sim.inventory)
    assert_invariants(sim, spec, result)
    for (server, _, _), target in result.targets().items():
        if server == "sim02":
            assert target["status"] == "failed"
            assert target["error"]["kind"] in ("timeout", "unreachable")
            assert "timed out" in target["error"]["message"]
        else:
            assert target["status"] == "clean"
    assert result.code == 2


def test_the_disinfection_deadline_ends_the_target_with_timeout_and_no_resend(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = fleet(infected_account("alice"), faults=Faults(disinfect_step_seconds=30.0))
    sim = simulate(
        spec, settings={"timeouts": {"request": 5, "scan": 60, "stall": 10, "disinfection": 1.0}}
    )
    result = cli("run", sim.inventory, "--policy", policy_file(tmp_path))
    (target,) = result.report["targets"]
    assert target["status"] == "infected"
    assert target["error"]["kind"] == "timeout"
    assert {f["outcome"] for f in target["infected_files"]} == {"error"}
    assert sim.fleet.calls("sim01", function="disinfect_files") == 1
    assert result.code == 1


# ---------------------------------------------------------------------------------------------
# SIGINT like SIGTERM; kill -9 during a disinfection, then --resume


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
    spec = fleet(
        infected_account("alice"),
        infected_account("bob"),
        faults=Faults(disinfect_start_delay=0.4, disinfect_step_seconds=0.3),
    )
    # one lane: killed while alice's disinfection is followed, bob not begun. (With two lanes
    # bob could be killed between saving `disinfecting` and sending disinfect_files: then its
    # fate is unknown, and resume rightly never resends it.)
    sim = simulate(spec, server_keys={"max_concurrent_scans": 1})
    journal, out = tmp_path / "journal.sqlite", tmp_path / "out"
    args: list[str | Path] = ["run", sim.inventory, "--policy", policy_file(tmp_path)]
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
    sim = simulate(fleet(infected_account("alice")))
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


# ---------------------------------------------------------------------------------------------
# HTTPS through `run`


def test_https_trusted_untrusted_and_unverified_servers_in_one_run(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = generate_fleet(servers=3, accounts=2, infected_ratio=0.0, seed=94, scan_seconds=0.2)
    sim = simulate(spec, tls=True)

    def edit(data: dict[str, Any]) -> None:
        for server in data["servers"]:
            if server["name"] == "sim02":
                del server["tls"]  # the simulator's CA is not in the system store
            elif server["name"] == "sim03":
                server["tls"] = {"verify": False}

    edit_inventory(sim.inventory, edit)
    sends: Counter[str] = Counter()
    original = ServerClient._send

    async def counting(self: ServerClient, *args: Any, **kwargs: Any) -> Any:
        sends[self._server.name] += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(ServerClient, "_send", counting)
    result = cli("run", sim.inventory)
    for (server, _, _), target in result.targets().items():
        if server == "sim02":
            assert target["status"] == "failed"
            assert target["error"]["kind"] == "tls"
        else:
            assert target["status"] == "clean", target["error"]
    assert sends["sim02"] == 1, "a TLS failure is never retried"
    warnings = [line for line in result.stderr.splitlines() if "verify_disabled" in line]
    assert len(warnings) == 1 and "sim03" in warnings[0]
    assert result.code == 2


# ---------------------------------------------------------------------------------------------
# Secrets: Basic auth (whose header is base64, not the password), journal included


def test_passwords_never_appear_in_logs_reports_or_the_journal_even_base64_encoded(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faults = Faults(status_5xx_every=3, reset_every=5, truncated_json_every=4)
    spec = fleet(infected_account("alice"), infected_account("bob"), faults=faults)
    sim = simulate(spec, auth="cpanel_password")
    wrong = next(k for k in sim.env if "BOB" in k)
    monkeypatch.setenv(wrong, "Wrong-Password-123")
    journal = tmp_path / "journal.sqlite"
    result = cli(
        "run",
        sim.inventory,
        "--policy",
        policy_file(tmp_path),
        "--journal",
        journal,
        "--log-level",
        "debug",
        "--log-format",
        "json",
    )
    assert result.report["targets"][1]["error"]["kind"] == "auth"
    secrets = {"Wrong-Password-123"}
    for server in spec.servers:
        for acct in server.accounts:
            secrets |= {acct.password, acct.cpanel_token}
            pair = f"{acct.user}:{acct.password}".encode()
            secrets.add(base64.b64encode(pair).decode())
    secrets.add(base64.b64encode(b"bob:Wrong-Password-123").decode())
    texts = [result.stdout, result.stderr, journal.read_bytes().decode("utf-8", "replace")]
    texts += [p.read_text() for p in result.out.iterdir() if p.is_file()]
    for secret in secrets:
        for text in texts:
            assert secret not in text


# ---------------------------------------------------------------------------------------------
# Retries: total time capped as well as attempts


@pytest.mark.asyncio
async def test_retries_stop_at_the_total_time_cap_before_the_attempt_cap() -> None:
    stamina.set_testing(False)
    hits = 0

    async def busy(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(status=503, text="busy")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", busy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server = Server(
        name="busy",
        base_url=f"http://127.0.0.1:{port}",
        auth=Credentials(AuthMethod.CPANEL_TOKEN, "alice", Secret("t" * 32)),
    )

    class NoLimit:
        async def acquire(self) -> None:
            return None

    policy = RetryPolicy(attempts=1000, total=0.4, initial=0.05, max=0.05, jitter=0.0)
    try:
        async with Http(request_timeout=5) as http:
            client = ServerClient(http, server, NoLimit(), policy)
            with pytest.raises(TransportError):
                await client.get_scan_status("alice")
    finally:
        await runner.cleanup()
    assert 2 <= hits < 100, hits


# ---------------------------------------------------------------------------------------------
# Fault knobs from `clamfleet simulate`


def test_simulate_fault_knobs_reach_the_named_server_only(
    cli: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_gaps_issue2 import Simulate, speed_up

    inventory = tmp_path / "fleet.yaml"
    sim = Simulate(
        ["--servers", "2", "--accounts", "2", "--infected-ratio", "0", "--scan-seconds", "0.2",
         "--fault", "sim02:html_login=1", "--write-inventory", str(inventory)],
        2,
    )  # fmt: skip
    try:
        speed_up(inventory)
        for key, value in sim.env.items():
            monkeypatch.setenv(key, value)
        result = cli("run", inventory)
    finally:
        sim.stop()
    for (server, _, _), target in result.targets().items():
        if server == "sim02":
            assert target["status"] == "failed" and target["error"]["kind"] == "auth"
        else:
            assert target["status"] == "clean"
    assert result.code == 2
    bad = subprocess.run(
        [sys.executable, "-m", "orchestrator", "simulate", "--fault", "sim09:html_login=1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 3 and "sim09" in bad.stderr
