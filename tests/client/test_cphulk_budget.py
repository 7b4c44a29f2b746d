"""cPHulk counts refused logins per source IP per host, not per inventory entry: every entry on
one host (scheme+host+port) shares a single refused login, so a fleet of stale passwords cannot
get the orchestrator's IP locked out, and the next run with the right ones goes through."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest
import pytest_asyncio
from aioresponses import aioresponses

from orchestrator.client import Http, ServerClient
from orchestrator.client.breaker import BreakerTimings
from orchestrator.config import AuthMethod
from orchestrator.config.hosts import host_key
from orchestrator.errors import AuthError, HostRefused, ServerDown, TlsError, TransportError
from orchestrator.model import ErrorKind
from orchestrator.simulator import generate_fleet
from tests.client.test_client import UAPI_OK, NoLimit, recorded, server
from tests.support import Outcome, Sim

NOT_ATTEMPTED = "not attempted: an earlier login on this host was refused"


def password_vars(sim: Sim, server_name: str) -> list[str]:
    prefix = f"CLAMFLEET_{server_name.upper()}_"
    return [k for k in sim.env if k.startswith(prefix) and k.endswith("_PASSWORD")]


def test_stale_passwords_on_one_host_cost_one_refused_login_and_no_lockout(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 7 accounts, 7 entries on sim01: the simulator (like cPanel) locks the IP at 5 refusals
    spec = generate_fleet(servers=2, accounts=7, infected_ratio=0.3, seed=71, scan_seconds=0.2)
    sim = simulate(spec, auth="cpanel_password")
    stale = password_vars(sim, "sim01")
    assert len(stale) == 7
    for var in stale:
        monkeypatch.setenv(var, "Stale-Password-2025")

    bad = cli("run", sim.inventory)
    assert bad.report["summary"]["failed"] == 7
    assert sim.fleet.calls("sim01") == 1, "one login sent to the host, not one per entry"
    assert [r.status for r in sim.fleet.request_log("sim01")] == [403]
    rows = {k: t for k, t in bad.targets().items() if k[0].startswith("sim01-")}
    assert len(rows) == 7
    assert {t["error"]["kind"] for t in rows.values()} == {"auth"}
    skipped = [t for t in rows.values() if t["error"]["message"].startswith(NOT_ATTEMPTED)]
    assert len(skipped) == 6
    assert all("cPHulk lockout" in t["error"]["message"] for t in skipped)
    others = [t for k, t in bad.targets().items() if k[0].startswith("sim02-")]
    assert {t["status"] for t in others} <= {"clean", "infected"}, "another host is unaffected"

    for var in stale:
        monkeypatch.setenv(var, sim.env[var])
    good = cli("run", sim.inventory)
    assert {t["status"] for t in good.targets().values()} <= {"clean", "infected"}
    assert good.code in (0, 1)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[Http]:
    async with Http(request_timeout=5) as h:
        yield h


EXECUTE = "https://web01.test:2083/execute/ClamScanner/get_scan_status"


def entry(http: Http, name: str, base: str) -> ServerClient:
    """One inventory entry of its own (cpanel_password: one per account) at `base`."""
    return ServerClient(
        http, replace(server(AuthMethod.CPANEL_PASSWORD, base), name=name), NoLimit()
    )


@pytest.mark.asyncio
async def test_after_a_refusal_other_entries_on_the_host_send_nothing(http: Http) -> None:
    base = "https://web01.test:2083"
    with aioresponses() as mocked:
        mocked.get(EXECUTE, status=403, body="Access denied", repeat=True)
        alice = entry(http, "web01-alice", base)
        bob = entry(http, "web01-bob", "https://WEB01.test:2083")  # the same host, spelt otherwise
        with pytest.raises(AuthError) as first:
            await alice.get_scan_status("alice")
        assert not isinstance(first.value, HostRefused)
        with pytest.raises(HostRefused) as second:
            await bob.get_scan_status("bob")
        assert str(second.value).startswith(NOT_ATTEMPTED)
        assert second.value.maybe_sent is False
        assert sum(len(v) for v in recorded(mocked).values()) == 1


@pytest.mark.asyncio
async def test_a_refusal_of_credentials_that_worked_is_reported_as_a_likely_lockout(
    http: Http,
) -> None:
    base = "https://web01.test:2083"
    with aioresponses() as mocked:
        mocked.get(EXECUTE, payload={**UAPI_OK, "data": None})
        mocked.get(EXECUTE, status=403, body="Access denied")
        client = ServerClient(http, server(AuthMethod.CPANEL_TOKEN, base), NoLimit())
        assert await client.get_scan_status("alice") is None
        with pytest.raises(AuthError) as err:
            await client.get_scan_status("alice")
    message = str(err.value)
    assert message.startswith("get_scan_status: HTTP 403 Forbidden: credentials accepted earlier")
    assert "likely a cPHulk lockout of this IP" in message
    assert err.value.http_status == 403


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://Web01.Example.com:2083", "https://web01.example.com:2083/", True),
        ("https://web01.example.com", "https://web01.example.com:443", True),
        ("http://web01.example.com", "http://web01.example.com:80", True),
        ("https://web01.example.com:2083", "https://web01.example.com:2087", False),
        ("http://web01.example.com:2083", "https://web01.example.com:2083", False),
        ("https://[2001:db8::1]:2083", "https://[2001:DB8::1]:2083", True),
    ],
)
def test_entries_share_a_budget_exactly_when_scheme_host_and_port_match(
    a: str, b: str, same: bool
) -> None:
    assert (host_key(a) == host_key(b)) is same


@pytest.mark.asyncio
async def test_a_host_that_stops_answering_does_not_cost_every_entry_its_timeouts_in_turn(
    http: Http,
) -> None:
    """New logins take turns per host; once a host that never answered in this run left a few
    requests unanswered, the host's breaker gives it up for every entry at once: the others
    fail unreachable without waiting for their own timeouts."""
    base = "https://web01.test:2083"
    with aioresponses() as mocked:
        mocked.get(EXECUTE, exception=TimeoutError(), repeat=True)
        entries = [entry(http, f"web01-{n}", base) for n in range(4)]
        for client in entries:
            with pytest.raises(TransportError) as err:
                await client.get_scan_status("alice")
        assert isinstance(err.value, ServerDown)
        assert str(err.value).startswith("never answered in this run (3 failed requests")
        assert err.value.kind is ErrorKind.UNREACHABLE and not err.value.maybe_sent
        # the first entry's two attempts open the breaker, its probe gives the host up
        limit = BreakerTimings().never_answered_limit
        assert sum(len(v) for v in recorded(mocked).values()) == limit


@pytest.mark.asyncio
async def test_an_untrusted_certificate_is_reported_as_tls_for_every_entry_not_as_silence(
    http: Http,
) -> None:
    base = "https://web01.test:2083"
    with aioresponses() as mocked:
        mocked.get(EXECUTE, exception=ssl.SSLError("certificate verify failed"), repeat=True)
        for n in range(BreakerTimings().never_answered_limit + 3):
            with pytest.raises(TlsError):
                await entry(http, f"web01-{n}", base).get_scan_status("alice")
