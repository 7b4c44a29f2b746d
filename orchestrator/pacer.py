"""The I/O edge of load-aware pacing, for the runner: take a reading, report a deferral.

`pacing.py` decides (pure); this takes the reading through the server's client and feeds it to
the controller, so the runner's wiring is a call, not a block of error handling.

Wiring in the runner (per server; `clock` is the lanes' monotonic clock):
- create `LoadController(server.load.max, server.max_concurrent_scans,
  server.load.check_interval, origin=<run start on that clock>)` once the targets are known
  (`load.max` is already None for cPanel-login servers);
- before starting targets: `if ctl.check_due(now, waiting=bool(todo))`, run
  `take_reading(client, ctl, now, len(live))` (a request: in its own task, not in the
  scheduler's loop), then `observer.server_pacing(server.name, ctl.last_load, ctl.limit())`
  and wake the scheduler; sleep no longer than `ctl.next_check_at()`;
- start a target only while `ctl.may_start(len(live))` (instead of `len(live) < cap`);
- `window.closed(datetime.now(UTC))` (or `not window.fits(now, predicted_seconds(...))` for
  one target) -> record `deferred_result(target, window)` instead of starting it;
- at the end, `ctl.summary()` of every controller with `ctl.adaptive` goes into
  `RunInfo.pacing[server.name]`.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from orchestrator.errors import TargetError
from orchestrator.model import ErrorInfo, ErrorKind, Status, Target, TargetResult
from orchestrator.pacing import LoadController, LoadReading, Window

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
            hint="systemloadavg failed: this server keeps max_concurrent_scans until it works",
        )
    return reading


def deferred_result(target: Target, window: Window) -> TargetResult:
    """A target the window closed on before it started: skipped, counted as incomplete."""
    return TargetResult(
        target, Status.SKIPPED, error=ErrorInfo(ErrorKind.DEFERRED, window.message())
    )
