"""Issue 6 acceptance gaps: the cheap-orchestrator build items that are structural, not timed
(one ClientSession and one SSL context per run, a few reused connections per host, no per-poll
logging above debug, uvloop when installed), and the benchmark's documented commands.

Nothing here measures time: performance numbers belong to bench/.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import shlex
import ssl
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from orchestrator import commands
from orchestrator.simulator import generate_fleet

from .conftest import Outcome, Sim

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


class Wire:
    """Counts what every aiohttp ClientSession created during a test does on the wire."""

    def __init__(self) -> None:
        self.sessions = 0
        self.requests: Counter[str] = Counter()  # host:port -> requests sent
        self.connections: Counter[str] = Counter()  # host:port -> connections opened

    def trace(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()

        async def on_start(_: Any, ctx: SimpleNamespace, params: Any) -> None:
            ctx.host = f"{params.url.host}:{params.url.port}"
            self.requests[ctx.host] += 1

        async def on_connect(_: Any, ctx: SimpleNamespace, __: Any) -> None:
            self.connections[getattr(ctx, "host", "?")] += 1

        config.on_request_start.append(on_start)
        config.on_connection_create_end.append(on_connect)
        return config


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    seen = Wire()
    original = aiohttp.ClientSession.__init__

    def counting_init(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        seen.sessions += 1
        kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or []), seen.trace()]
        original(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", counting_init)
    return seen


def test_a_run_uses_one_session_one_ssl_context_and_a_few_reused_connections_per_host(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    wire: Wire,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = generate_fleet(servers=3, accounts=6, infected_ratio=0.3, seed=81, scan_seconds=0.3)
    sim = simulate(spec, tls=True, server_keys={"max_concurrent_scans": 6})
    contexts: list[ssl.SSLContext] = []
    original = ssl.create_default_context

    def counting_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = original(*args, **kwargs)
        contexts.append(context)
        return context

    monkeypatch.setattr(ssl, "create_default_context", counting_context)
    result = cli("run", sim.inventory)
    assert result.code in (0, 1), result.stderr
    assert {t["status"] for t in result.report["targets"]} <= {"clean", "infected"}
    assert wire.sessions == 1, "one ClientSession for the whole run"
    assert len(contexts) == 1, "one SSL context for servers that share a trust configuration"
    assert len(wire.requests) == len(spec.servers)
    for host, requests in wire.requests.items():
        opened = wire.connections[host]
        assert 1 <= opened <= 4, f"{host}: {opened} connections (limit_per_host is 4)"
        assert requests >= 4 * opened, f"{host}: {requests} requests on {opened} connections"


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


def test_uvloop_runs_the_event_loop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert commands._arun(loop_module).startswith("uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert commands._arun(loop_module).startswith("asyncio")


# ---------------------------------------------------------------------------------------------
# The benchmark's documented commands


def bench_commands(path: Path) -> list[list[str]]:
    """The arguments of every `bench/run.py` command written in a Markdown file."""
    found = []
    for line in path.read_text("utf-8").splitlines():
        if "bench/run.py" not in line:
            continue
        spans = re.findall(r"`([^`]*bench/run\.py[^`]*)`", line)
        for text in spans or [line.split("#", 1)[0]]:
            tokens = shlex.split(text)
            at = [i for i, t in enumerate(tokens) if t.endswith("bench/run.py")]
            if at and tokens[at[0] + 1 :]:
                found.append(tokens[at[0] + 1 :])
    return found


def check_bench_command(argv: list[str]) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        patches = importlib.import_module("patches")
        run = importlib.import_module("run")
    finally:
        sys.path.remove(str(BENCH))
    try:
        args = run.build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"bench/run.py refuses {shlex.join(argv)}")
    for name in (args.patch or "").split(","):
        if name and name != "none":
            assert name in patches.PATCHES, f"{shlex.join(argv)}: bench/patches.py has no {name!r}"


def test_bench_readme_commands_parse() -> None:
    found = bench_commands(BENCH / "README.md") + bench_commands(ROOT / "README.md")
    assert any("quick" in argv for argv in found), "the smoke command is documented"
    for argv in found:
        check_bench_command(argv)


def test_results_md_commands_still_run() -> None:
    found = bench_commands(BENCH / "RESULTS.md")
    assert found
    for argv in found:
        check_bench_command(argv)


def test_results_md_answers_every_target_of_the_issue() -> None:
    text = (BENCH / "RESULTS.md").read_text("utf-8")
    section = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("|") and "---" not in r][1:]
    wanted = {
        "complete": r"10,000 targets",
        "rss": r"RSS",
        "cpu": r"CPU",
        "wall": r"wall time",
        "calls": r"API calls per target",
    }
    for name, pattern in wanted.items():
        (row,) = [r for r in rows if re.search(pattern, r, flags=re.I)] or [""]
        assert row, f"RESULTS.md's targets table has no row for {name}"
        assert re.search(r"\b(met|not met)\b", row), row
