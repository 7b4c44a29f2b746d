"""What a run costs on the wire: one ClientSession and one SSL context per run, a few reused
connections per host. Structural counts only; nothing here measures time (that is bench/).
"""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from orchestrator.simulator import generate_fleet
from tests.support import Outcome, Sim

# ---------------------------------------------------------------------------------------------
# Sessions, SSL contexts and connections of a real run


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
