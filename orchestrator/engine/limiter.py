"""The shared limits: request rates (global and per host) and concurrency caps.

Inventory entries on one host (scheme+host+port: config/hosts.py) share one request pacer at
the smallest `requests_per_second` any of them gives: five cPanel-login entries of one server
at 5/s each are 5 requests per second to that server, not 25.

`requests_per_second: R` is a promise to a server's owner: never more than R requests in any
one-second window, and no burst beyond a single request. A `Pacer` keeps its requests at least
1/R apart, counted from the moment each request actually goes out.

A request must satisfy its server's pacer and the global one. Slots are booked only at send
time, never ahead: a server's requests queue first behind their own server's lock (FIFO), and
only the head of that queue then queues, behind the global lock, for a global slot. So a long
queue on one busy server books nothing in advance and cannot push the global pacer into the
future for every other server (the failure of booking ahead: one server's backlog of 40 polls
at 5/s made a request from an idle server wait 8 s).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from orchestrator.config import Server, Settings
from orchestrator.config.hosts import HostKey, HostLimits, host_key, shared_limits

Clock = Callable[[], float]
MIN_SLEEP = 0.001  # seconds: the event loop's timer resolution (libuv's, under uvloop)
Sleep = Callable[[float], Awaitable[None]]


class Pacer:
    """Keeps the requests that pass it at least `1/rate` seconds apart, FIFO."""

    __slots__ = ("_lock", "interval", "last_sent")

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.last_sent = -math.inf
        # FIFO: waiters are served in arrival order. fast_acquire: an uncontended acquire does
        # not yield to the loop first (two loop turns per request otherwise).
        self._lock = anyio.Lock(fast_acquire=True)

    def free_at(self, now: float) -> bool:
        """Nobody queued and the next slot already due: a request may go at once."""
        return not self._lock.locked() and self.last_sent + self.interval <= now

    async def wait_turn(self, clock: Clock, sleep: Sleep) -> None:
        """Sleep until a slot is free (the caller books it, without awaiting in between)."""
        while (delay := self.last_sent + self.interval - clock()) > 0:
            # Never a sub-millisecond sleep: uvloop's timers have millisecond resolution, so
            # one would return at once, unchanged clock and all, and the loop would spin.
            await sleep(max(delay, MIN_SLEEP))


class Gate:
    """The way out for one server's requests: its own pacer, then the fleet's global one."""

    __slots__ = ("_clock", "_global", "_own", "_sleep")

    def __init__(self, own: Pacer, shared: Pacer | None, clock: Clock, sleep: Sleep) -> None:
        self._own = own
        self._global = shared
        self._clock = clock
        self._sleep = sleep

    async def acquire(self) -> None:
        """Return when this request may be sent now; its slot is booked at that instant."""
        own, shared, clock, sleep = self._own, self._global, self._clock, self._sleep
        now = clock()
        if own.free_at(now) and (shared is None or shared.free_at(now)):
            # The common case at a server's pace: no queue, no wait, no lock, no loop turn.
            own.last_sent = now
            if shared is not None:
                shared.last_sent = now
            return
        async with own._lock:
            await own.wait_turn(clock, sleep)
            if shared is None:
                own.last_sent = clock()
                return
            async with shared._lock:
                await shared.wait_turn(clock, sleep)
                # no await between the checks above and booking: both rates hold
                own.last_sent = shared.last_sent = clock()


def loop_clock() -> Clock:
    """The running event loop's clock, bound once.

    `anyio.current_time` looks the backend up on every call (py-spy: 3.5 % of a full run, a few
    calls per request); on asyncio it is the loop's own `time()`, which this returns directly.
    """
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # not asyncio (trio)
        return anyio.current_time


@dataclass(slots=True)
class FleetLimits:
    """All limits of one run; the runner is their only user."""

    settings: Settings
    clock: Clock = anyio.current_time
    sleep: Sleep = anyio.sleep
    #: Every entry of the inventory: the ones on one host share that host's limits.
    inventory_servers: tuple[Server, ...] = ()
    global_pacer: Pacer = field(init=False)
    servers: anyio.CapacityLimiter = field(init=False)
    hosts: dict[HostKey, HostLimits] = field(init=False)
    _pacers: dict[HostKey, Pacer] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.global_pacer = Pacer(self.settings.requests_per_second)
        self.servers = anyio.CapacityLimiter(self.settings.max_concurrent_servers)
        self.hosts = shared_limits(self.inventory_servers)

    def bind_loop_clock(self) -> None:
        """Read the default clock straight from the running loop (call inside it)."""
        if self.clock is anyio.current_time:
            self.clock = loop_clock()

    def host(self, server: Server) -> HostLimits:
        """The limits `server` shares with the other entries on its host."""
        key = host_key(server.base_url)
        found = self.hosts.get(key)
        if found is None:  # not in the inventory given (a caller's own server): alone
            found = self.hosts[key] = shared_limits([server])[key]
        return found

    def gate_for(self, server: Server) -> Gate:
        """The gate of one server: its host's pacer and the fleet's global one."""
        host = self.host(server)
        own = self._pacers.get(host.key)
        if own is None:
            own = self._pacers[host.key] = Pacer(host.requests_per_second)
        return Gate(own, self.global_pacer, self.clock, self.sleep)
