"""One scan of an inventory, from the first request to the written report: `run` and `demo`.

Logs `run.started` (with the resolved window) and `run.finished` (the verdict, for a log
collector), and owns what happens when things go wrong mid-run:

- SIGINT/SIGTERM stop the fleet (targets in flight `interrupted`); the partial report is then
  written while the signal handlers are still clamfleet's, so a second or third SIGTERM (the
  one `timeout(1)` sends to the whole process group right after the first, or systemd's) is
  logged and ignored: only SIGKILL stops the report being written.
- The code itself fails (a bug): the targets already done are still written as a partial
  report, `run.finished` says exit code 70, and the error is raised on for the CLI to turn into
  one line and exit 70 (never 1 or 2, which a cron job or systemd would read as a verdict).
- The report cannot be written (disk full): the summary table is still printed, the file that
  failed is named, `run.finished` says exit code 70, and the error is raised on (exit 70). With
  `--journal`, `--resume` rebuilds the report from the journal without scanning again.

With a history (`ScanJob.history`), the report is annotated from it before it is written and
the night recorded after (not after a failure, and not for one shard of a sharded night: its
merge records it). A history that cannot be read or written costs its annotations or its
entry (`history.unreadable`, `history.not_recorded`, errors), never the report or the verdict.
"""

from __future__ import annotations

import math
import signal
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import structlog

from orchestrator.cli.acceptance import attention_lines
from orchestrator.config import Inventory
from orchestrator.config.durations import format_duration
from orchestrator.engine.exempt import accepted_info, canary_infos
from orchestrator.engine.journal import Journal
from orchestrator.engine.runner import FleetRun, NullObserver, Observer, RunOptions
from orchestrator.errors import ConfigError
from orchestrator.model import EXIT_INTERNAL, RunInfo
from orchestrator.report import Report, apply_baseline, build_report, summary_table, write_report
from orchestrator.report.writers import ReportWriteError
from orchestrator.workflow.window import Window

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
    #: the history (already checked by `prepare_history`), and whether this run records itself
    history: Path | None = None
    record_history: bool = True


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    report: Report
    paths: list[Path]
    interrupted: bool
    #: Why the run stopped starting scans before the end ("max_duration 6h reached"); None: it
    #: did not (or a signal stopped it: `interrupted`).
    stopped: str | None = None


@dataclass(slots=True)
class _Done:
    """What the event loop hands back: the report (written or not) and what went wrong."""

    report: Report
    paths: list[Path]
    interrupted: bool
    stopped: str | None
    crash: Exception | None
    write_error: Exception | None


def scan_and_report(job: ScanJob) -> ScanOutcome:
    """Scan, write the report, log the verdict; after a crash, write what there is and raise."""
    clock = time.monotonic()
    _log_started(job)
    done = arun(_execute, job)
    failed = done.crash is not None or done.write_error is not None
    code = EXIT_INTERNAL if failed else done.report.summary.exit_code
    if job.history is not None and not failed:
        if job.record_history:
            record_history(done.report, job.history)
        else:
            logger.info("history.not_recorded", reason="one shard: the merge records the night")
    for line in attention_lines(done.report):
        logger.warning("run.attention", message=line.removeprefix("warning: "))
    not_written = _failed_file(done.write_error)
    _log_finished(job, done.report, code, time.monotonic() - clock, done.interrupted, not_written)
    if done.write_error is not None:
        # No report on disk: the summary is all the operator gets, so it is printed anyway.
        print(summary_table(done.report))
        print(f"report NOT written: {done.write_error}  (exit code {EXIT_INTERNAL})")
        if job.journal is not None:
            print("the journal holds every result: the same command with --resume writes it")
        raise done.crash or done.write_error
    if done.crash is not None:
        raise done.crash
    return ScanOutcome(done.report, done.paths, done.interrupted, done.stopped)


async def _execute(job: ScanJob) -> _Done:
    """Run the fleet, then write the report, with SIGINT/SIGTERM handled throughout.

    The first signal cancels the fleet (every target is still accounted for); any later one,
    while the partial report is written, is ignored. An exception from the fleet (a bug) ends
    the run like a signal would, but is returned, so that the targets finished before it still
    reach the report.
    """
    fleet = FleetRun(job.inventory, job.options, observer=job.observer, journal=job.journal)
    fleet_scope = anyio.CancelScope()
    stop = _Stop(fleet_scope)
    crash: Exception | None = None
    async with anyio.create_task_group() as tg:
        if threading.current_thread() is threading.main_thread():
            tg.start_soon(_watch_signals, stop)
        with fleet_scope:
            try:
                observed = getattr(job.observer, "running", None)
                if callable(observed):
                    async with observed():
                        await fleet.run()
                else:
                    await fleet.run()
            except Exception as exc:
                crash = exc
        # The fleet is done or stopped; the signal watcher still runs while the report is
        # written (synchronously: a signal meanwhile waits for the loop, and is then ignored).
        stop.writing = True
        results = fleet.results()
        accepted = job.options.accepted
        info = replace(
            job.info,
            finished_at=datetime.now(UTC),
            pacing=fleet.pacing(),
            outages=fleet.outages(),
            canaries=canary_infos(job.inventory.servers),
            accepted=None if accepted is None else accepted_info(accepted, results),
        )
        report = build_report(info, results)
        if job.baseline is not None:
            report = apply_baseline(report, job.baseline)
        if job.history is not None:
            report = annotate_history(report, job.history)
        paths: list[Path] = []
        write_error: Exception | None = None
        try:
            paths = write_report(
                report, job.out, job.formats, prometheus_per_target=job.prometheus_per_target
            )
        except Exception as exc:
            write_error = exc
            logger.error(
                "report.not_written",
                file=_failed_file(exc),
                error=f"{type(exc).__name__}: {exc}",
            )
        tg.cancel_scope.cancel()
    return _Done(report, paths, stop.interrupted, fleet.stopping, crash, write_error)


@dataclass(slots=True)
class _Stop:
    """The run's response to signals: the first one while scanning stops the fleet; any other
    (or one once the report is being written) is ignored."""

    fleet: anyio.CancelScope
    interrupted: bool = False
    writing: bool = False


async def _watch_signals(stop: _Stop) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not stop.interrupted and not stop.writing:
                stop.interrupted = True
                logger.warning("run.interrupted", signal=name)
                stop.fleet.cancel()
            else:
                logger.warning(
                    "run.signal_ignored",
                    signal=name,
                    hint="the report is being written (only SIGKILL stops that)",
                )


def _failed_file(error: Exception | None) -> str | None:
    return str(error.path) if isinstance(error, ReportWriteError) else None


def annotate_history(report: Report, path: Path) -> Report:
    """The report with the history's delta, first-seen dates and trend; as it was if the
    history cannot be read now (it was checked before the run: a lock held too long, a disk)."""
    from orchestrator.report.history import annotate

    try:
        return annotate(report, path)
    except (ConfigError, sqlite3.Error, OSError) as exc:
        logger.error("history.unreadable", history=str(path), error=_reason(exc))
        return report


def record_history(report: Report, path: Path) -> None:
    from orchestrator.report.history import record

    try:
        record(report, path)
    except (ConfigError, sqlite3.Error, OSError) as exc:
        logger.error("history.not_recorded", history=str(path), error=_reason(exc))
        return
    logger.info("history.recorded", history=str(path), run_id=report.run.id)


def write_with_history(
    report: Report,
    out: Path,
    formats: Collection[str],
    history: Path | None,
    record: bool,
    prometheus_per_target: bool = False,
) -> tuple[Report, list[Path]]:
    """`merge`: annotate from the history, write the report, record the night (if `record`)."""
    if history is not None:
        report = annotate_history(report, history)
    paths = write_report(report, out, formats, prometheus_per_target=prometheus_per_target)
    if history is not None and record:
        record_history(report, history)
    elif history is not None:
        logger.info("history.not_recorded", reason="folds a rerun: the rerun recorded itself")
    return report, paths


def _reason(exc: BaseException) -> str:
    return exc.render() if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"


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
    window = job.options.window
    deadline = job.inventory.settings.max_duration
    logger.info(
        "run.started",
        run_id=info.id,
        inventory=info.inventory,
        shard=info.shard,
        dry_run=info.dry_run,
        servers=len(job.inventory.servers),
        targets=planned_targets(job.inventory, job.options),
        out=str(job.out),
        **_window_fields(window),
        max_duration_s=deadline,
    )
    if window is not None and window.end is not None and window.far(info.started_at):
        ahead = format_duration(math.ceil((window.end - info.started_at).total_seconds()))
        logger.warning(
            "run.window_far",
            window_end=window.end.isoformat(),
            ahead=ahead,
            hint=f"the window ends {ahead} after the start: a typo, or a time that had already"
            " passed when the run started (it then means tomorrow)?",
        )


def _window_fields(window: Window | None) -> dict[str, str | None]:
    if window is None or window.end is None:
        return {"window_end": None}
    return {
        "window_end": window.end.isoformat(),
        "window_timezone": window.timezone,
        "window_source": window.source,
    }


def _log_finished(
    job: ScanJob,
    report: Report,
    code: int,
    duration_s: float,
    interrupted: bool,
    not_written: str | None = None,
) -> None:
    s = report.summary
    extra = {"report_not_written": not_written} if not_written else {}
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
        accepted=s.accepted,
        unverified=s.unverified,
        interrupted=interrupted,
        duration_s=round(duration_s, 1),
        out=str(job.out),
        **extra,
    )
