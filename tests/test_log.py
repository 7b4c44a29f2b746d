"""Logs: secret redaction in the pipeline; a real run logs one line per target and nothing per
poll at info; no password reaches logs, reports or the journal, not even base64-encoded."""

from __future__ import annotations

import base64
import io
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import stamina
import structlog

from orchestrator import log
from orchestrator.simulator import Faults, generate_fleet
from tests.support import Outcome, Sim, infected_account, one_server, small_account, write_policy

CANARY = "CANARY-LOG-TOKEN-77aa"


def test_registered_secrets_and_credential_keys_never_reach_the_output() -> None:
    stream = io.StringIO()
    log.configure("json", "debug", stream=stream)
    log.register_secret(CANARY)
    logger = structlog.get_logger("t")
    logger.info(
        "x.event",
        url=f"https://h/?t={CANARY}",
        nested={"a": [CANARY]},
        authorization="whm root:abc",
    )
    try:
        raise RuntimeError(f"failed with {CANARY}")
    except RuntimeError:
        logger.exception("x.failed")
    out = stream.getvalue()
    assert CANARY not in out
    assert "whm root:abc" not in out
    first = json.loads(out.splitlines()[0])
    assert first["authorization"] == log.MASK
    assert first["url"] == f"https://h/?t={log.MASK}"


def test_console_format_redacts_too() -> None:
    stream = io.StringIO()
    log.configure("console", "info", stream=stream)
    log.register_secret(CANARY)
    structlog.get_logger("t").warning("x", detail=CANARY)
    assert CANARY not in stream.getvalue()
    assert "x" in stream.getvalue()


def test_default_stream_is_whatever_stderr_is_when_a_line_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stderr replaced after configure() (and the old one closed) still gets the lines."""
    log.configure("json", "info")
    replaced = io.StringIO()
    monkeypatch.setattr(sys, "stderr", replaced)
    structlog.get_logger("t").info("late.event")
    assert json.loads(replaced.getvalue())["event"] == "late.event"


def test_retries_are_one_redacted_debug_line_each() -> None:
    stream = io.StringIO()
    log.configure("json", "debug", stream=stream)
    log.register_secret(CANARY)
    calls = 0
    for attempt in stamina.retry_context(on=ValueError, attempts=2, wait_initial=0, wait_max=0):
        with attempt:
            calls += 1
            if calls == 1:
                raise ValueError(f"503 from a server, token {CANARY}")
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert line["event"] == "request.retry" and line["level"] == "debug"
    assert line["attempt"] == 1
    assert CANARY not in line["error"] and "503" in line["error"]


# ---------------------------------------------------------------------------------------------
# A real run's logs: one summary line per target, nothing per poll at info


def test_json_logs_have_one_summary_line_for_every_target_of_the_report(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = one_server(
        small_account("alice", infected=True),
        small_account("bob"),
        small_account("carol", suspended=True),
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


def test_info_logs_are_per_target_never_per_poll(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    spec = generate_fleet(servers=2, accounts=3, infected_ratio=0.5, seed=82, scan_seconds=0.6)
    sim = simulate(spec)
    result = cli("run", sim.inventory, "--log-format", "json", "--log-level", "info")
    assert result.code in (0, 1), result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    per_target = Counter(
        (e["event"], e.get("server"), e.get("account"), e.get("scan_type"))
        for e in events
        if e.get("account")
    )
    repeated = {k: n for k, n in per_target.items() if n > 1}
    assert repeated == {}, f"logged more than once per target at info: {repeated}"
    assert {e for e, *_ in per_target} >= {"scan.started", "target.finished"}
    targets = len(result.report["targets"])
    polls = sum(sim.fleet.calls(s.name, function="get_scan_status") for s in spec.servers)
    assert polls > 2 * targets, "the scans were polled (else this test shows nothing)"
    assert len(events) <= 3 * targets + 2 * len(spec.servers) + 5


# ---------------------------------------------------------------------------------------------
# Secrets: Basic auth (whose header is base64, not the password), journal included


def test_passwords_never_appear_in_logs_reports_or_the_journal_even_base64_encoded(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faults = Faults(status_5xx_every=3, reset_every=5, truncated_json_every=4)
    spec = one_server(infected_account("alice"), infected_account("bob"), faults=faults, seed=4)
    sim = simulate(spec, auth="cpanel_password")
    wrong = next(k for k in sim.env if "BOB" in k)
    monkeypatch.setenv(wrong, "Wrong-Password-123")
    journal = tmp_path / "journal.sqlite"
    result = cli(
        "run",
        sim.inventory,
        "--policy",
        write_policy(tmp_path),
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
