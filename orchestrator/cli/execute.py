"""One scan of an inventory, from the first request to the written report: `run` and `demo`.

Logs `run.started` and `run.finished` (the verdict, for a log collector), and owns what happens
when the code itself fails mid-run: the targets already done are still written as a partial
report, `run.finished` says exit code 70, and the error is raised on for the CLI to turn into
one line and exit 70 (never 1 or 2, which a cron job or systemd would read as a verdict).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import structlog

from orchestrator.config import Inventory
from orchestrator.engine.journal import Journal
from orchestrator.engine.runner import FleetRun, NullObserver, Observer, RunOptions
from orchestrator.model import EXIT_INTERNAL, Downtime, RunInfo, ServerPacing, TargetResult
from orchestrator.report import Report, apply_baseline, build_report, write_report

T = TypeVar("T")
logger = structlog.get_logger("clamfleet")


@dataclass(frozen=True, slots=True)
class ScanJob:
    """What to scan and where its report goes; `info.finished_at` is set when it ends."""

    inventory: Inventory
    options: RunOptions
    info: RunInfo
    out: Path
    formats: Collection[str]
    observer: Observer = field(default_factory=NullObserver)
    journal: Journal | None = None
    baseline: Report | None = None
    prometheus_per_target: bool = False


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    report: Report
    paths: list[Path]
    interrupted: bool


def scan_and_report(job: ScanJob) -> ScanOutcome:
    """Scan, write the report, log the verdict; after a crash, write what there is and raise."""
    clock = time.monotonic()
    _log_started(job)
    results, pacing, outages, interrupted, crash = arun(_execute, job)
    info = replace(job.info, finished_at=datetime.now(UTC), pacing=pacing, outages=outages)
    report = build_report(info, results)
    if job.baseline is not None:
        report = apply_baseline(report, job.baseline)
    try:
        paths = write_report(
            report, job.out, job.formats, prometheus_per_target=job.prometheus_per_target
        )
    except Exception as exc:
        if crash is None:
            raise
        # The crash is what the operator must see; this is only why there is no report.
        logger.error("report.not_written", error=f"{type(exc).__name__}: {exc}")
        paths = []
    code = EXIT_INTERNAL if crash is not None else report.summary.exit_code
    _log_finished(job, report, code, time.monotonic() - clock, interrupted)
    if crash is not None:
        raise crash
    return ScanOutcome(report, paths, interrupted)


async def _execute(
    job: ScanJob,
) -> tuple[
    list[TargetResult],
    dict[str, ServerPacing],
    dict[str, tuple[Downtime, ...]],
    bool,
    Exception | None,
]:
    """Run the fleet; SIGINT/SIGTERM cancel it, and every target is still accounted for.

    An exception from the fleet (a bug) ends the run like a signal would, but is returned, so
    that the targets finished before it still reach the report.
    """
    fleet = FleetRun(job.inventory, job.options, observer=job.observer, journal=job.journal)
    interrupted = False
    crash: Exception | None = None
    async with anyio.create_task_group() as tg:
        if threading.current_thread() is threading.main_thread():

            async def watch_signals() -> None:
                nonlocal interrupted
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        interrupted = True
                        logger.warning("run.interrupted", signal=signal.Signals(signum).name)
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch_signals)
        try:
            observed = getattr(job.observer, "running", None)
            if callable(observed):
                async with observed():
                    await fleet.run()
            else:
                await fleet.run()
        except Exception as exc:
            crash = exc
        tg.cancel_scope.cancel()
    return fleet.results(), fleet.pacing(), fleet.outages(), interrupted, crash


def arun(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """anyio.run on asyncio, with uvloop when it is installed."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return anyio.run(func, *args)
    return anyio.run(func, *args, backend_options={"use_uvloop": True})


def planned_targets(inventory: Inventory, options: RunOptions) -> int | None:
    """How many targets the run will have, when the inventory alone says (no `accounts: all`)."""
    names = {s.name for s in inventory.servers}
    if options.only is not None:
        return sum(1 for t in options.only if t.server in names)
    total = 0
    for server in inventory.servers:
        if server.accounts is None:
            return None  # listed by listaccts at run time
        total += len(server.accounts) * len(options.scan_types or server.scan_types)
    return total


def _log_started(job: ScanJob) -> None:
    info = job.info
    logger.info(
        "run.started",
        run_id=info.id,
        inventory=info.inventory,
        shard=info.shard,
        dry_run=info.dry_run,
        servers=len(job.inventory.servers),
        targets=planned_targets(job.inventory, job.options),
        out=str(job.out),
    )


def _log_finished(
    job: ScanJob, report: Report, code: int, duration_s: float, interrupted: bool
) -> None:
    s = report.summary
    logger.info(
        "run.finished",
        run_id=report.run.id,
        exit_code=code,
        targets=s.targets,
        clean=s.clean,
        infected=s.infected,
        failed=s.failed,
        skipped=s.skipped,
        infected_files=s.infected_files,
        interrupted=interrupted,
        duration_s=round(duration_s, 1),
        out=str(job.out),
    )
