"""The I/O edge of load-aware pacing, for the runner: take a reading, report a deferral.

`pacing.py` decides (pure); this takes the reading through the server's client and feeds it to
the controller, so the runner's wiring is a call, not a block of error handling.

How the runner uses it (runner.FleetRun._server): one `LoadController` per server, created
with the targets; `take_reading` in a task of its own whenever `check_due` says so (only while
targets wait), then the lanes are woken; the lanes start a target only while
`controller.may_start(running)`; a target the window closed on (or a `home` scan predicted to
end after it) becomes `deferred_result`; `FleetRun.pacing()` puts every adaptive controller's
`summary()` into the report's `run.pacing`.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from orchestrator.errors import TargetError
from orchestrator.model import ErrorInfo, ErrorKind, LoadReading, Status, Target, TargetResult
from orchestrator.workflow.pacing import (
    LoadController,
    Window,
)

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
