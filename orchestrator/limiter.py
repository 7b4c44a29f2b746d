"""The shared limits: request rates (global and per server) and concurrency caps.

`requests_per_second: R` is a promise to a server's owner: never more than R requests in any
one-second window, and no burst beyond a single request. A `Pacer` keeps its requests at least
1/R apart. A request must satisfy its server's pacer and the global one at once, so both are
reserved in one synchronous step (`Gate.reserve`): no await between reading and booking, hence no
race between tasks, and a delay imposed by one pacer can never let the other burst afterwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from orchestrator.config import Server, Settings

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Pacer:
    """Books request slots at least `1/rate` seconds apart."""

    __slots__ = ("interval", "next_slot")

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.next_slot = -math.inf


class Gate:
    """Every request through it waits for a slot free on all of its pacers."""

    __slots__ = ("_clock", "_pacers", "_sleep")

    def __init__(self, pacers: tuple[Pacer, ...], clock: Clock, sleep: Sleep) -> None:
        self._pacers = pacers
        self._clock = clock
        self._sleep = sleep

    def reserve(self, now: float) -> float:
        """Book the earliest common slot; return how long to wait for it."""
        slot = max(now, *(p.next_slot for p in self._pacers))
        for pacer in self._pacers:
            pacer.next_slot = slot + pacer.interval
        return slot - now

    async def acquire(self) -> None:
        delay = self.reserve(self._clock())
        if delay > 0:
            await self._sleep(delay)


@dataclass(slots=True)
class FleetLimits:
    """All limits of one run; the runner is their only user."""

    settings: Settings
    clock: Clock = time.monotonic
    sleep: Sleep = anyio.sleep
    global_pacer: Pacer = field(init=False)
    servers: anyio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.global_pacer = Pacer(self.settings.requests_per_second)
        self.servers = anyio.CapacityLimiter(self.settings.max_concurrent_servers)

    def gate_for(self, server: Server) -> Gate:
        """The gate of one server: its own pacer and the fleet's global one."""
        return Gate((Pacer(server.requests_per_second), self.global_pacer), self.clock, self.sleep)
