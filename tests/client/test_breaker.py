"""The per-host breaker: a host that goes away (a cpsrvd restart, a 503 proxy) is waited for
with one probe per growing cool-down, never hammered and never given up before
`timeouts.server_down`; a host that never answered at all is given up at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
import pytest_asyncio
from aioresponses import aioresponses
from structlog.testing import capture_logs

from orchestrator.client import Http, ServerClient
from orchestrator.client.breaker import Breaker, BreakerTimings, is_outage_failure
from orchestrator.client.health import Hosts
from orchestrator.errors import (
    ApiError,
    RequestTimeout,
    ServerDown,
    TlsError,
    TransportError,
)
from orchestrator.model import ScanType
from tests.client.test_client import START_URL, NoLimit, recorded, server, uapi_url, whm

T0 = datetime(2026, 11, 28, 2, 14, 5, tzinfo=UTC).timestamp()


class Clock:
    """A clock the test moves by hand (the breaker's monotonic and wall clocks in one)."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def breaker(clock: Clock, **timings: Any) -> Breaker:
    return Breaker("web01.test:2087", BreakerTimings(**timings), clock=clock, wall=clock)


def gateway(status: int = 503, retry_after: float | None = None) -> TransportError:
    return TransportError(f"HTTP {status}", http_status=status, retry_after=retry_after)


def refused() -> TransportError:
    return TransportError("cannot connect: Connection refused", maybe_sent=False)


async def waits(b: Breaker) -> bool:
    """Whether a request would wait at the gate now (it is not let through within 50 ms)."""
    with anyio.move_on_after(0.05):
        await b.admit("web01", "get_scan_status")
        return False
    return True


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


@pytest.mark.asyncio
async def test_two_outage_failures_open_it_then_one_probe_goes_and_its_answer_frees_everyone() -> (
    None
):
    clock = Clock()
    b = breaker(clock)
    with capture_logs() as logs:
        b.answered("web01", probe=False)  # the host answered earlier in the run
        b.failed("web01", refused(), probe=False)
        assert not await waits(b), "a lone failure is the retry policy's"
        b.failed("web01", refused(), probe=False)
        assert b.open and await waits(b), "open: nothing is sent"
        clock.t += 1.0 * 1.2  # the first cool-down, its jitter included
        assert await b.admit("web01", "get_scan_status") is True  # the one probe
        async with anyio.create_task_group() as tg:
            freed: list[bool] = []

            async def another() -> None:
                freed.append(await b.admit("web01", "list_infected_files"))

            tg.start_soon(another)
            await anyio.sleep(0.02)
            assert freed == [], "a second request waits for the probe's outcome"
            clock.t += 3.0
            b.answered("web01", probe=True)
        assert freed == [False] and not b.open
    (down,) = events(logs, "server.down")
    assert down["log_level"] == "warning" and down["since"] == "02:14:05 UTC"
    (back,) = events(logs, "server.back")
    assert back["down_s"] == 4.2 and back["probes"] == 1
    (stretch,) = b.downtimes()
    assert stretch.down_at == datetime.fromtimestamp(T0, UTC) and not stretch.gave_up
    assert stretch.back_at is not None and stretch.seconds == pytest.approx(4.2)


@pytest.mark.asyncio
async def test_an_answer_to_a_request_sent_before_it_opened_does_not_close_it() -> None:
    """Only the probe's answer says the host is back: a request that left before the outage
    (in flight when the breaker opened) tells how the host was."""
    clock = Clock()
    b = breaker(clock)
    b.answered("web01", probe=False)
    b.failed("web01", gateway(), probe=False)
    b.failed("web01", gateway(), probe=False)
    assert b.open
    b.answered("web01", probe=False)  # a slow reply to a request of before the outage
    assert b.open and await waits(b), "still open: nothing but the probe is sent"
    clock.t += 1.0 * 1.2
    assert await b.admit("web01", "get_scan_status") is True
    b.answered("web01", probe=True)
    assert not b.open and not await waits(b)


@pytest.mark.asyncio
async def test_each_failed_probe_doubles_the_cool_down_up_to_its_cap() -> None:
    clock = Clock()
    b = breaker(clock)
    b.answered("web01", probe=False)
    b.failed("web01", gateway(), probe=False)
    b.failed("web01", gateway(), probe=False)
    cooldowns = []
    for _ in range(8):
        assert b.probe_at is not None
        cooldowns.append(b.probe_at - clock.t)
        clock.t = b.probe_at - 0.01
        assert await waits(b), "no probe before the cool-down is over"
        clock.t += 0.01
        assert await b.admit("web01", "get_scan_status") is True  # the cool-down's one probe
        assert await waits(b), "one probe at a time"
        b.failed("web01", gateway(), probe=True)
    for got, base in zip(cooldowns, [1, 2, 4, 8, 16, 30, 30, 30], strict=True):
        assert base <= got <= base * 1.2, cooldowns


@pytest.mark.asyncio
async def test_a_retry_after_lengthens_the_cool_down_never_shortens_it() -> None:
    clock = Clock()
    b = breaker(clock)
    b.answered("web01", probe=False)
    b.failed("web01", gateway(), probe=False)
    b.failed("web01", gateway(retry_after=20), probe=False)
    assert b.probe_at == T0 + 20
    clock.t += 19.0
    assert await waits(b)


@pytest.mark.asyncio
async def test_a_host_down_past_server_down_is_given_up_saying_since_when_and_how_long() -> None:
    clock = Clock()
    b = breaker(clock, server_down=900)
    b.answered("web01", probe=False)
    with capture_logs() as logs:
        b.failed("web01", gateway(), probe=False)
        b.failed("web01", gateway(), probe=False)
        probes = 0
        while b.verdict is None:
            assert b.probe_at is not None
            clock.t = b.probe_at
            assert await b.admit("web01", "get_scan_status") is True
            probes += 1
            b.failed("web01", gateway(), probe=True)
    assert clock.t - T0 == pytest.approx(900, abs=1.0), "the last probe at the deadline"
    assert probes <= 36, "one probe per cool-down, capped at 30 s"
    assert b.verdict.message.startswith("server down since 02:14:05 UTC, 15m")
    assert "timeouts.server_down 15m" in b.verdict.message and "HTTP 503" in b.verdict.message
    with pytest.raises(ServerDown) as err:
        await b.admit("web01-bob", "start_scan")
    assert str(err.value) == b.verdict.message and not err.value.maybe_sent
    (given_up,) = events(logs, "server.given_up")
    assert given_up["log_level"] == "error" and given_up["down_s"] == pytest.approx(900, abs=1)
    (stretch,) = b.downtimes()
    assert stretch.gave_up and stretch.back_at is None and stretch.seconds == pytest.approx(900, 1)


@pytest.mark.asyncio
async def test_a_host_that_never_answered_in_this_run_is_given_up_after_three_silent_requests() -> (
    None
):
    clock = Clock()
    b = breaker(clock)
    b.failed("web01", RequestTimeout("request timed out"), probe=False)
    b.failed("web01", RequestTimeout("request timed out"), probe=False)
    assert b.verdict is None
    clock.t += 1.2
    assert await b.admit("web01", "listaccts") is True
    b.failed("web01", RequestTimeout("request timed out"), probe=True)
    assert b.verdict is not None
    assert b.verdict.message == (
        "never answered in this run (3 failed requests, the last: request timed out)"
    )


@pytest.mark.asyncio
async def test_a_run_that_starts_in_a_503_outage_gives_the_host_up_as_fast_as_a_closed_port() -> (
    None
):
    clock = Clock()
    b = breaker(clock)
    b.failed("web01", gateway(), probe=False)
    b.failed("web01", gateway(), probe=False)
    clock.t += 1.2
    assert await b.admit("web01", "listaccts") is True
    b.failed("web01", gateway(), probe=True)
    assert b.verdict is not None and b.verdict.message.startswith("never answered in this run")


def test_a_hosts_first_own_answer_is_told_once_so_the_journal_can_keep_it() -> None:
    told: list[str] = []
    hosts = Hosts(reached=told.append)
    b = hosts.breaker("https://web01.example.com:2083")
    assert hosts.breaker("https://web01.example.com:2083/other") is b
    b.failed("web01", gateway(), probe=False)
    assert told == [], "a gateway's 503 is not the host's answer"
    b.answered("web01", probe=False)
    b.answered("web01-bob", probe=False)
    hosts.breaker("https://web02.example.com:2083").answered("web02", probe=False)
    assert told == ["web01.example.com:2083", "web02.example.com:2083"]


def test_cpanels_own_errors_and_throttling_are_answers_not_outages() -> None:
    assert is_outage_failure(refused())
    assert is_outage_failure(RequestTimeout("request timed out"))
    assert all(is_outage_failure(gateway(status)) for status in (502, 503, 504))
    assert not is_outage_failure(gateway(500)), "cPanel's own error: cpsrvd is up"
    assert not is_outage_failure(gateway(429)), "throttled: waited for by Retry-After"
    assert not is_outage_failure(TlsError("bad certificate"))
    assert not is_outage_failure(ApiError("status 0"))
    assert not is_outage_failure(ServerDown("given up"))


# ---------------------------------------------------------------------------------------------
# Through the client: reads wait for the host instead of spending their attempts


FAST = BreakerTimings(first_cooldown=0.01, max_cooldown=0.02, jitter=0.0, server_down=5)


@pytest_asyncio.fixture
async def quick_http() -> AsyncIterator[Http]:
    async with Http(request_timeout=5, hosts=Hosts(FAST)) as h:
        yield h


@pytest.mark.asyncio
async def test_a_read_during_an_outage_waits_for_the_host_instead_of_failing(
    quick_http: Http,
) -> None:
    with aioresponses() as mocked, capture_logs() as logs:
        for _ in range(6):  # more than stamina's 3 attempts (test mode)
            mocked.get(uapi_url("get_scan_status"), status=503, body="<html>503</html>")
        mocked.get(uapi_url("get_scan_status"), payload=whm(None))
        client = ServerClient(quick_http, server(), NoLimit())
        client_breaker = quick_http.hosts.breaker(server().base_url)
        client_breaker.answered("web01", probe=False)  # the host answered earlier in the run
        assert await client.get_scan_status("alice") is None
    assert [e["event"] for e in logs if e["event"].startswith("server.")] == [
        "server.down",
        "server.back",
    ]
    assert not [e for e in logs if e["event"] == "request.gave_up"]


@pytest.mark.asyncio
async def test_a_start_scan_waits_at_the_gate_while_the_host_is_away_and_is_sent_once(
    quick_http: Http,
) -> None:
    b = quick_http.hosts.breaker(server().base_url)
    b.answered("web01", probe=False)
    b.failed("web01", refused(), probe=False)
    b.failed("web01", refused(), probe=False)
    with aioresponses() as mocked:
        mocked.get(uapi_url("get_scan_status"), payload=whm(None))  # the probe: back
        mocked.post(START_URL, payload=whm(None))
        client = ServerClient(quick_http, server(), NoLimit())
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.start_scan, "alice", ScanType.HOME)
            tg.start_soon(client.get_scan_status, "alice")
        sent = [(m, str(u)) for (m, u), calls in recorded(mocked).items() for _ in calls]
    assert [m for m, _ in sent].count("POST") == 1
    assert not b.open
