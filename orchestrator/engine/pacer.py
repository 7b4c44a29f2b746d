"""The I/O edge of load-aware pacing, for the runner: take a reading, report a deferral.

`pacing.py` decides (pure); this takes the reading through the server's client and feeds it to
the controller, so the runner's wiring is a call, not a block of error handling.

How the runner uses it (runner.FleetRun._server): one `HostScans` per host (scheme+host+port:
the inventory entries on it share one scan cap and one `LoadController`); `take_reading` in a
task of its own whenever `check_due` says so (only while targets wait), then the host's lanes
are woken; the lanes start a target only while `HostScans.may_start`; a target the window
closed on (or a `home` scan predicted to end after it), or one the load kept waiting for
`load.patience`, becomes `deferred_result`; `FleetRun.pacing()` puts every adaptive
controller's `summary()` into the report's `run.pacing`.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from datetime import datetime
from typing import Protocol

import anyio
import structlog

from orchestrator.config.durations import format_duration
from orchestrator.config.hosts import HostLimits
from orchestrator.errors import TargetError
from orchestrator.model import ErrorInfo, ErrorKind, LoadReading, Status, Target, TargetResult
from orchestrator.workflow.pacing import LoadController, PacingObserver
from orchestrator.workflow.window import Window

log = structlog.get_logger("clamfleet")


class LoadSource(Protocol):
    """What a reading needs of the client (`ServerClient.system_load`)."""

    async def system_load(self) -> LoadReading | None: ...


async def take_reading(
    client: LoadSource, controller: LoadController, now: float, running: int
) -> LoadReading | None:
    """Read the server's load and feed it to its controller; a failure is a None reading.

    A failed reading never fails a target: the controller falls back to the fixed cap, and the
    first failure is logged once per server (the rest would only repeat it).
    """
    error = None
    try:
        reading = await client.system_load()
    except TargetError as exc:
        reading = None
        error = f"{exc.kind}: {exc}"
    controller.observe(reading, now, running)
    if controller.take_warning():
        log.warning(
            "load.unreadable",
            error=error,
            hint="systemloadavg failed: this server keeps the scan limit of its last good"
            " reading (1 before any) until a reading works again",
        )
    return reading


def deferred_result(target: Target, window: Window | str) -> TargetResult:
    """A target that never started because the window closed (or it would not have finished
    before it), or because the load kept it waiting: skipped, counted as incomplete."""
    message = window.message() if isinstance(window, Window) else window
    return TargetResult(target, Status.SKIPPED, error=ErrorInfo(ErrorKind.DEFERRED, message))


def stopped_result(target: Target, message: str) -> TargetResult:
    """A target the run's deadline (max_duration) came before: interrupted, not started."""
    return TargetResult(target, Status.FAILED, error=ErrorInfo(ErrorKind.INTERRUPTED, message))


def load_message(controller: LoadController, since: datetime, *, patience: bool = True) -> str:
    """Why the load kept a target back: `load 3.6 over max 3 since 02:10` (`since`: the wall
    time the load began to keep every start back, in the window's timezone), and, when that
    is why it is deferred, `(waited load.patience 1h)`."""
    last = controller.last_load
    load = "load" if last is None else f"load {round(last, 1):g}"
    ceiling = f"{controller.max_load:g}" if controller.max_load is not None else "?"
    message = f"{load} over max {ceiling} since {since:%H:%M}"
    if patience:
        message += f" (waited load.patience {format_duration(controller.patience or 0.0)})"
    return message


class Member(Protocol):
    """One inventory entry's scheduler (lanes.Lanes), as its host sees it."""

    @property
    def live(self) -> Sized: ...
    @property
    def queue(self) -> object: ...
    def wake(self) -> None: ...


class HostScans:
    """The scans of one host across its inventory entries: one cap (the smallest given), one
    load controller (the load is the machine's), one reading at a time.

    Entries that cannot read the load (cPanel logins) count against the host's scans but are
    held only by the cap: they cannot take readings, and nothing must wait for readings that
    only a WHM entry of the host, perhaps not running now, would take.
    """

    def __init__(self, limits: HostLimits, controller: LoadController) -> None:
        self.limits = limits
        self.controller = controller
        self.reading = False  # a systemloadavg request is in flight (one per host at a time)
        self._members: list[Member] = []

    def join(self, member: Member) -> None:
        self._members.append(member)

    def leave(self, member: Member) -> None:
        if member in self._members:
            self._members.remove(member)

    def running(self) -> int:
        return sum(len(m.live) for m in self._members)

    def waiting(self) -> bool:
        return any(bool(m.queue) for m in self._members)

    def may_start(self, reads_load: bool) -> bool:
        running = self.running()
        if reads_load:
            return self.controller.may_start(running)
        return running < self.controller.cap

    def wake(self) -> None:
        """A slot of the host is free, or its limit changed: every entry's lanes look again."""
        for member in list(self._members):
            member.wake()


#: The shortest sleep between two looks at whether a load reading is due.
MIN_READING_GAP = 0.05


async def follow_load(
    name: str,
    client: LoadSource,
    host: HostScans,
    clock: Callable[[], float],
    observer: PacingObserver,
) -> None:
    """systemloadavg whenever the host's controller wants a reading (only while targets
    wait; one reading at a time for all the host's entries), and a look when the load's
    patience runs out."""
    pacer = host.controller
    while True:
        now = clock()
        if not host.reading and pacer.check_due(now, waiting=host.waiting()):
            host.reading = True
            try:
                await take_reading(client, pacer, now, host.running())
            finally:
                host.reading = False
            observer.server_pacing(name, pacer.last_load, pacer.limit())
            host.wake()  # the limit may have risen, or the load fallen under max
        due = pacer.next_check_at()
        ends = pacer.patience_ends_at()
        if ends is not None:
            if clock() >= ends:
                host.wake()  # patience ran out: the waiting targets are deferred
            else:
                due = min(due, ends) if due is not None else ends
        await anyio.sleep(max(MIN_READING_GAP, (due - clock()) if due else pacer.check_interval))
