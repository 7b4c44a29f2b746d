"""The per-host breaker: a server that stops answering is waited for, never hammered.

cPanel's nightly update (`upcp`) and any service restart take cpsrvd's ports away for seconds
to minutes, for the whole host; a proxy in front may answer 503 meanwhile. Scans go on (clamd
is another process), so a failed request then is no verdict on a target: the host comes back.

    closed ──(OPEN_AFTER outage failures in a row)──► open ──(cool-down)──► half-open: ONE probe
      ▲                                                 ▲                          │
      └─────────────────── any answer ◄─────────────────┴── failed: cool-down x2 ◄─┘ (capped)

    open for `timeouts.server_down`, continuously          ──► given up (ServerDown), for the run
    never answered in this run, `never_answered_limit` failures ──► given up at once (a closed
                                                                    port, no DNS: as before)

An outage failure is no answer at all (refused, reset, timed out) or a gateway's 502/503/504;
any other answer, an error included, is cpsrvd's own and closes the breaker. While it is open
every request to the host waits at the gate (`admit`, called by client/channel.py before each
send): none is sent but the probe, and no target fails; the retry layer (client/retry.py) does
not spend a read's attempts on an open breaker, it waits here instead.

One breaker per host (scheme+host+port, like the cPHulk budget in health.py): a cpsrvd restart
takes every inventory entry on the host away at once, and one probe tells them all.

The timings (why): the first cool-down is 1 s, a cpsrvd restart takes seconds and a probe a
second is nothing to a host (the simulator's referee holds a client to at most that); each
failed probe doubles it, up to 30 s: a long outage costs one request per 30 s, and the host is
noticed back at most 30 s late (60 s, the first idea, doubles that lag for no gain); +0-20 %
jitter, added, never taken off. Two failures in a row open it: the requests in flight when the
host went away fail together, and a lone failure (one 502 among answers) is left to the retry
policy. A Retry-After on a gateway's answer lengthens the cool-down, never shortens it.
"Never answered" means no answer of cpsrvd's own: a host behind a proxy that has answered
nothing but 503 since the run began is given up as fast as a closed port (nothing tells a
restart from a host that is gone, and the run must not wait `server_down` for every such host).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
import structlog

from orchestrator.config.durations import format_duration
from orchestrator.errors import ServerDown, TargetError, TlsError, TransportError
from orchestrator.model import Downtime, ErrorInfo, ErrorKind

log = structlog.get_logger("clamfleet")

#: Statuses of a gateway or proxy in front of cpsrvd while it is away: outage failures.
OUTAGE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class BreakerTimings:
    """The breaker's timings (module docstring); `server_down` is `timeouts.server_down`."""

    server_down: float = 900.0
    open_after: int = 2
    first_cooldown: float = 1.0
    factor: float = 2.0
    max_cooldown: float = 30.0
    jitter: float = 0.2
    never_answered_limit: int = 3


def is_outage_failure(exc: BaseException) -> bool:
    """A failure that says the host is away: no answer, or a gateway's 502/503/504."""
    return (
        isinstance(exc, TransportError)
        and exc.transient
        and not isinstance(exc, TlsError)
        and (exc.http_status is None or exc.http_status in OUTAGE_STATUSES)
    )


@dataclass(slots=True)
class _Window:
    start: float  # wall clock, epoch seconds
    end: float | None = None
    gave_up: bool = False


@dataclass(slots=True)
class Breaker:
    """One host's breaker. Every method runs on the event loop; only `admit` waits."""

    label: str  # host:port, for the log
    timings: BreakerTimings = field(default_factory=BreakerTimings)
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    #: Set when the host is given up: every later request raises ServerDown with it.
    verdict: ErrorInfo | None = None
    _failures: int = 0  # outage failures in a row
    _open: bool = False
    _probing: bool = False
    _reached: bool = False  # any answer of the host's own (not a gateway's) in this run
    _since: float = 0.0  # monotonic time of the streak's first failure
    _since_wall: float = 0.0  # the same moment on the wall clock (the report, the message)
    _cooldown: float = 0.0
    _next_probe: float = 0.0
    _probes: int = 0
    _last_error: str = ""
    _changed: anyio.Event | None = None
    _windows: list[_Window] = field(default_factory=list)
    _random: random.Random = field(default_factory=random.Random)
    #: Called once, at the run's first answer of the host's own (the journal keeps it, so a
    #: --resume knows the host is one that comes back: `answered_before`).
    on_reached: Callable[[], None] | None = None

    @property
    def open(self) -> bool:
        return self._open

    @property
    def probe_at(self) -> float | None:
        """When (on `clock`) the next probe may go, while the breaker is open."""
        return self._next_probe if self._open else None

    # -- the gate ---------------------------------------------------------------------------

    async def admit(self, server: str, function: str) -> bool:
        """Wait while the breaker is open; True when this request is the half-open probe.
        Raises ServerDown once the host is given up (also for requests waiting here)."""
        while True:
            if self.verdict is not None:
                raise ServerDown(self.verdict.message, server=server, function=function) from None
            if not self._open:
                return False
            now = self.clock()
            if not self._probing and now >= self._next_probe:
                self._probing = True
                self._probes += 1
                return True
            if self._changed is None:
                self._changed = anyio.Event()
            changed = self._changed
            with anyio.move_on_after(math.inf if self._probing else self._next_probe - now):
                await changed.wait()

    def clear(self) -> bool:
        """Whether a request admitted as not-a-probe may still go (nothing opened meanwhile)."""
        return not self._open and self.verdict is None

    def holding(self, exc: BaseException) -> bool:
        """Whether a failed request should wait at the gate rather than spend a retry: an
        outage failure while the breaker is open. (Once the host is given up, the failure
        that gave it up is raised as it is; the requests still waiting get ServerDown.)"""
        return is_outage_failure(exc) and self._open and self.verdict is None

    def answered_before(self) -> None:
        """The host answered an earlier, interrupted run (--resume): it is one that comes
        back, not one that never answered."""
        self._reached = True

    # -- outcomes (client/channel.py reports every request's) --------------------------------

    def answered(self, server: str, *, probe: bool) -> None:
        """The host answered (any status but a gateway's 502/503/504): it is there. While the
        breaker is open only the probe's answer closes it: another answer is to a request that
        left before the breaker opened (in flight then) and tells how the host was, not how
        it is (a proxy may answer 503 to everything sent since; the fleet fuzz found a run
        whose requests flooded the 503 after such an answer)."""
        if not self._reached:
            self._reached = True
            if self.on_reached is not None:
                self.on_reached()
        if probe:
            self._probing = False
        elif self._open:
            return
        self._failures = 0
        if self._open:
            self._open = False
            down = self.clock() - self._since
            self._windows[-1].end = self.wall()
            log.warning(
                "server.back",
                server=server,
                host=self.label,
                down_s=round(down, 1),
                probes=self._probes,
            )
        self._notify()

    def failed(self, server: str, error: TargetError, *, probe: bool) -> None:
        """An outage failure (`is_outage_failure`) of a request the gate let through."""
        if probe:
            self._probing = False
        if self.verdict is not None:
            return
        now = self.clock()
        if self._failures == 0:
            self._since = now
            self._since_wall = self.wall()
        self._failures += 1
        self._last_error = str(error)
        if not self._reached and self._failures >= self.timings.never_answered_limit:
            message = (
                f"never answered in this run ({self._failures} failed requests, the last: "
                f"{self._last_error})"
            )
            self._give_up(server, message)
        elif self._open:
            if probe:
                if now - self._since >= self.timings.server_down:
                    self._give_up(server, self._down_message(now))
                else:
                    self._cooldown = min(self._cooldown * self.timings.factor, self.max_cooldown)
                    self._schedule(now, error.retry_after)
        elif self._failures >= self.timings.open_after:
            self._open = True
            self._probes = 0
            self._cooldown = self.timings.first_cooldown
            self._schedule(now, error.retry_after)
            self._windows.append(_Window(self._since_wall))
            log.warning(
                "server.down",
                server=server,
                host=self.label,
                since=_clock_text(self._since_wall),
                error=self._last_error,
                hint="its requests wait; one probe per cool-down until it answers",
            )
        self._notify()

    def release(self, *, probe: bool) -> None:
        """A request the gate let through ended without an outcome (cancelled, or refused
        before it was sent): a probe's turn passes on, a cool-down later."""
        if probe and self._probing:
            self._probing = False
            self._next_probe = max(self._next_probe, self.clock() + self.timings.first_cooldown)
            self._notify()

    # -- what the run reports ----------------------------------------------------------------

    def downtimes(self) -> tuple[Downtime, ...]:
        """Each stretch the host was down in this run; one still down ends now."""
        now = self.wall()
        out = []
        for w in self._windows:
            end = w.end if w.end is not None else now
            out.append(
                Downtime(
                    down_at=_utc(w.start),
                    back_at=None if w.end is None or w.gave_up else _utc(w.end),
                    seconds=max(end - w.start, 0.0),
                    gave_up=w.gave_up,
                )
            )
        return tuple(out)

    # -- inside ------------------------------------------------------------------------------

    @property
    def max_cooldown(self) -> float:
        return max(self.timings.max_cooldown, self.timings.first_cooldown)

    def _schedule(self, now: float, retry_after: float | None) -> None:
        t = self.timings
        delay = self._cooldown * (1.0 + self._random.uniform(0.0, t.jitter))
        if retry_after is not None:
            delay = max(delay, retry_after)
        # the last probe at the deadline, never sooner than a first cool-down after the last
        deadline = self._since + t.server_down
        self._next_probe = max(min(now + delay, deadline), now + t.first_cooldown)

    def _give_up(self, server: str, message: str) -> None:
        self.verdict = ErrorInfo(ErrorKind.UNREACHABLE, message)
        self._open = False
        self._probing = False
        wall = self.wall()
        if self._windows and self._windows[-1].end is None:
            self._windows[-1].end, self._windows[-1].gave_up = wall, True
        else:
            self._windows.append(_Window(self._since_wall, wall, gave_up=True))
        log.error(
            "server.given_up",
            server=server,
            host=self.label,
            down_s=round(self.clock() - self._since, 1),
            error=message,
            hint="its remaining targets end unreachable",
        )

    def _down_message(self, now: float) -> str:
        down = format_duration(round(now - self._since))
        limit = format_duration(self.timings.server_down)
        return (
            f"server down since {_clock_text(self._since_wall)}, {down} (timeouts.server_down "
            f"{limit}); the last error: {self._last_error}"
        )

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _clock_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")
