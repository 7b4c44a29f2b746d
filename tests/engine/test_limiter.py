"""The limiter under real concurrency, in virtual time.

Trio's MockClock with autojump: whenever every task is blocked, time jumps to the next timer.
So hundreds of concurrent requests run in milliseconds of wall time, and every timestamp is exact.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from orchestrator.config import AuthMethod, Credentials, Server, Settings
from orchestrator.engine.limiter import FleetLimits, Gate, Pacer, loop_clock
from orchestrator.model import Secret


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": MockClock(autojump_threshold=0)}


def gate(rate: float, shared: Pacer | None = None) -> Gate:
    return Gate(Pacer(rate), shared, anyio.current_time, anyio.sleep)


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """Most requests in any window [t, t + width) that starts at a request."""
    return max(sum(1 for t in times if start <= t < start + width - 1e-9) for start in times)


async def send_all(gates: dict[str, Gate], per_gate: int) -> dict[str, list[float]]:
    """`per_gate` concurrent requests through each gate; when each was let through."""
    sent: dict[str, list[float]] = {name: [] for name in gates}

    async def one(name: str) -> None:
        await gates[name].acquire()
        sent[name].append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        for name in gates:
            for _ in range(per_gate):
                tg.start_soon(one, name)
    return sent


@pytest.mark.anyio
async def test_requests_are_spaced_one_over_rate_with_no_burst() -> None:
    start = anyio.current_time()
    sent = await send_all({"a": gate(5)}, per_gate=6)
    offsets = [t - start for t in sent["a"]]
    assert offsets == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert max_in_window(sent["a"]) == 5


@pytest.mark.anyio
async def test_idle_time_does_not_bank_a_burst() -> None:
    g = gate(2)
    await g.acquire()
    await anyio.sleep(100)
    first = anyio.current_time()
    await g.acquire()
    assert anyio.current_time() == pytest.approx(first)  # idle: goes at once
    await g.acquire()
    assert anyio.current_time() == pytest.approx(first + 0.5)  # but only one


@pytest.mark.anyio
async def test_server_and_global_rates_both_hold_in_every_one_second_window() -> None:
    shared = Pacer(8)
    gates = {f"s{i}": gate(3, shared) for i in range(4)}
    sent = await send_all(gates, per_gate=12)
    everything = sorted(t for times in sent.values() for t in times)
    assert len(everything) == 48
    assert max_in_window(everything) <= 8
    for times in sent.values():
        assert max_in_window(times) <= 3
    # and the global limit is used, not wasted: 48 requests at 8/s take about 6 s
    assert everything[-1] - everything[0] == pytest.approx(47 / 8, rel=0.05)


@pytest.mark.anyio
async def test_a_busy_servers_backlog_does_not_delay_an_idle_server() -> None:
    """Booking happens at send time: 40 queued polls on one server hold no global slots."""
    shared = Pacer(50)
    busy, idle = gate(5, shared), gate(5, shared)
    start = anyio.current_time()
    idle_sent: list[float] = []

    async def idle_request() -> None:
        await anyio.sleep(0.5)  # arrives while busy's backlog is queued
        await idle.acquire()
        idle_sent.append(anyio.current_time())

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(busy.acquire)
        tg.start_soon(idle_request)
    assert idle_sent[0] - start == pytest.approx(0.5, abs=0.03)


@pytest.mark.anyio
async def test_waiters_on_one_server_are_served_in_arrival_order() -> None:
    g = gate(10)
    order: list[int] = []

    async def one(i: int) -> None:
        await anyio.sleep(i * 0.001)  # arrive in order 0, 1, 2, ...
        await g.acquire()
        order.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)
    assert order == list(range(20))


@pytest.mark.anyio
async def test_a_request_arriving_as_the_slot_frees_does_not_overtake_a_waiter() -> None:
    """A free gate lets a request through without queueing; a queued one still goes first."""
    g = gate(2)
    order: list[str] = []
    await g.acquire()  # the next slot is at +0.5 s

    async def waiter() -> None:
        await g.acquire()  # queues at +0, due at +0.5
        order.append("waiter")

    async def late() -> None:
        await anyio.sleep(0.5)  # arrives exactly when the slot frees
        await g.acquire()
        order.append("late")

    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        tg.start_soon(late)
    assert order == ["waiter", "late"]
    assert anyio.current_time() - start == pytest.approx(1.0)


@pytest.mark.anyio
async def test_a_free_gate_lets_a_request_through_without_waiting() -> None:
    g = gate(2)
    await g.acquire()
    await anyio.sleep(0.5)
    before = anyio.current_time()
    await g.acquire()
    await g.acquire()  # the one after it waits its 0.5 s
    assert anyio.current_time() - before == pytest.approx(0.5)


@pytest.mark.anyio
async def test_a_cancelled_waiter_books_nothing() -> None:
    g = gate(1)
    await g.acquire()
    with anyio.move_on_after(0.3):
        await g.acquire()  # would need to wait 1 s: cancelled first
    await anyio.sleep(0.8)
    before = anyio.current_time()
    await g.acquire()
    assert anyio.current_time() == pytest.approx(before)  # the cancelled one took no slot


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


def test_a_millisecond_timer_does_not_make_the_wait_spin() -> None:
    """uvloop rounds timers to whole milliseconds: a 0.4 ms sleep returns with the clock unmoved."""
    now = [100.0]
    sleeps: list[float] = []

    async def ms_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        assert len(sleeps) < 10, "spinning"
        now[0] += int(seconds * 1000) / 1000  # the clock moves in whole milliseconds

    pacer = Pacer(5)
    pacer.last_sent = now[0] - 0.2 + 0.0004  # the next slot is 0.4 ms away
    asyncio.run(pacer.wait_turn(lambda: now[0], ms_sleep))
    assert len(sleeps) == 1
    assert now[0] >= pacer.last_sent + pacer.interval


def test_on_asyncio_the_clock_is_the_loops_own_time() -> None:
    async def main() -> None:
        clock = loop_clock()
        assert clock == asyncio.get_running_loop().time  # no backend lookup per reading
        assert abs(clock() - anyio.current_time()) < 0.05

    asyncio.run(main())


@pytest.mark.anyio
async def test_on_trio_the_clock_falls_back_to_anyio() -> None:
    assert loop_clock() is anyio.current_time


@pytest.mark.anyio
async def test_entries_of_one_host_share_one_pacer_at_the_smallest_rate() -> None:
    def entry(name: str, url: str, rate: float) -> Server:
        auth = Credentials(AuthMethod.CPANEL_TOKEN, name, Secret("x"))
        return Server(name=name, base_url=url, auth=auth, requests_per_second=rate)

    servers = (
        entry("a", "https://shop:2083", 5),
        entry("b", "https://shop:2083", 5),
        entry("c", "https://shop:2083", 4),
        entry("d", "https://other:2083", 5),
    )
    limits = FleetLimits(Settings(requests_per_second=1000), inventory_servers=servers)
    gates = {s.name: limits.gate_for(s) for s in servers}
    sent = await send_all(gates, per_gate=4)
    shop = sorted(sent["a"] + sent["b"] + sent["c"])
    assert max_in_window(shop) == 4  # three entries at 5, 5 and 4/s: 4/s to the host
    assert max_in_window(sent["d"]) == 4  # (another host: its own pacer, 4 in 0.6 s)
    assert min(b - a for a, b in itertools.pairwise(shop)) == pytest.approx(0.25)
