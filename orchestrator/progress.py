"""Live progress of `clamfleet run` on a terminal.

Two halves, so the arithmetic is testable without a terminal:

    FleetProgress   the model: fed by the runner's Observer callbacks (O(1) each, no I/O), read by
                    the display (counts, failures, ETA). Takes a clock, so tests can fake time.
    LiveProgress    the Observer the CLI hands to the runner: forwards callbacks to the model and,
                    inside `running()`, repaints a rich Live area from it four times a second in
                    its own task. Callbacks never touch the terminal; only the repaint task does.

Log lines would tear the live area if written straight to the terminal, so during `running()`
structlog's output (and stdlib logging's) is routed through the live console, which prints them
above the area. Only the sink changes: processors, redaction and level stay exactly as configured.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TextIO, cast

import anyio
import structlog
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchestrator.config import Inventory, Server
from orchestrator.model import ErrorKind, ScanStats, Status, Target, TargetResult

REFRESH_PER_SECOND = 4
#: Server lines shown at most; a fleet run holds up to max_concurrent_servers of them active.
MAX_SERVER_LINES = 15

Clock = Callable[[], float]


# ---------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True, slots=True)
class Failure:
    target: Target
    kind: ErrorKind
    message: str

    def line(self) -> str:
        return f"✗ {self.target}: {self.kind} — {self.message}"


@dataclass(frozen=True, slots=True)
class Estimate:
    """Seconds until the run ends; `lower_bound` while some servers' account lists are unknown."""

    seconds: float
    lower_bound: bool = False


@dataclass(slots=True)
class _Scan:
    started: float
    stats: ScanStats | None = None
    reported_at: float = 0.0  # when `stats` arrived


@dataclass(slots=True)
class ServerProgress:
    name: str
    lanes: int  # max_concurrent_scans: how many of its targets run at once
    expected: int | None  # its target count; None while an `accounts: all` server is unlisted
    resolved: bool = False
    done: int = 0
    failed: int = 0
    infected: int = 0  # infected files found
    files_done: int = 0  # files scanned by its finished targets
    files_running: int = 0  # files scanned so far by its running scans
    running: dict[Target, _Scan] = field(default_factory=dict)
    duration_sum: float = 0.0  # observed durations of its finished scans
    measured: int = 0
    paced: bool = False  # load-aware: `lanes` follows the pacing limit
    load: float | None = None  # its last 1-minute load (None: no reading or it failed)

    @property
    def total(self) -> int | None:
        return None if self.expected is None else max(self.expected, self.done)

    @property
    def files(self) -> int:
        return self.files_done + self.files_running

    @property
    def pending(self) -> int:
        """Targets neither finished nor running (0 while unknown)."""
        return max((self.expected or 0) - self.done - len(self.running), 0)

    @property
    def active(self) -> bool:
        return bool(self.running) or (self.resolved and self.pending > 0)

    @property
    def mean_duration(self) -> float | None:
        return self.duration_sum / self.measured if self.measured else None


class FleetProgress:
    """Counts, failures and the ETA of one run, fed by the Observer callbacks."""

    def __init__(self, inventory: Inventory, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.slots = max(inventory.settings.max_concurrent_servers, 1)
        self.servers = {s.name: _server_progress(s) for s in inventory.servers}
        self.known_total = sum(s.expected or 0 for s in self.servers.values())
        self.unlisted = sum(s.expected is None for s in self.servers.values())
        self.done = self.failed = self.infected = self.files = 0
        self.failures: list[Failure] = []
        #: Failure lines the display has yet to print (drained by `take_lines`).
        self._lines: deque[str] = deque()
        #: Per server, the last printed error and how many identical ones were not printed:
        #: a refused token fails every target of its server, one line says it.
        self._last_error: dict[str, tuple[ErrorKind, str]] = {}
        self.suppressed: dict[str, int] = {}
        self._duration_sum = 0.0
        self._measured = 0

    # -- Observer ----------------------------------------------------------------------------

    def targets_resolved(self, server: str, targets: tuple[Target, ...]) -> None:
        s = self._server(server)
        if s.expected is None:
            self.unlisted -= 1
        self.known_total += len(targets) - (s.expected or 0)
        s.expected = len(targets)
        s.resolved = True

    def server_pacing(self, server: str, load: float | None, limit: int) -> None:
        """A paced server's last load reading and its concurrency limit now."""
        s = self._server(server)
        s.paced, s.load, s.lanes = True, load, max(limit, 1)  # the ETA uses the current limit

    def target_started(self, target: Target) -> None:
        self._server(target.server).running[target] = _Scan(self._clock())

    def scan_progress(self, target: Target, stats: ScanStats) -> None:
        s = self._server(target.server)
        scan = s.running.get(target)
        if scan is None:
            return
        delta = stats.scanned_file_count - _scanned(scan.stats)
        s.files_running += delta
        self.files += delta
        scan.stats = stats
        scan.reported_at = self._clock()

    def target_finished(self, result: TargetResult) -> None:
        s = self._server(result.server)
        scan = s.running.pop(result.target, None)
        if scan is not None:
            s.files_running -= _scanned(scan.stats)
            self.files -= _scanned(scan.stats)
            if result.status in (Status.CLEAN, Status.INFECTED):
                # Failures end early (a refused token takes milliseconds): not a scan's duration.
                self._measure(s, self._clock() - scan.started)
        files = result.scan.scanned_file_count if result.scan else 0
        s.files_done += files
        self.files += files
        s.done += 1
        self.done += 1
        s.infected += len(result.infected_files)
        self.infected += len(result.infected_files)
        if result.status is Status.FAILED:
            self._failed(s, result)

    # -- Display -----------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return max(self.known_total, self.done)

    @property
    def finished(self) -> bool:
        return self.unlisted == 0 and self.done >= self.known_total > 0

    def active_servers(self) -> list[ServerProgress]:
        return [s for s in self.servers.values() if s.active]

    def take_lines(self) -> list[str]:
        lines = list(self._lines)
        self._lines.clear()
        return lines

    def eta(self) -> Estimate | None:
        """Seconds until every target is done, or None while nothing can be extrapolated.

        Everything comes from the servers' own counters, never from a guess of scan speed:

        * a running scan whose last status said `scanned_file_count / total_file_count = f > 0`,
          `e` seconds after it started, needed `e * (1 - f) / f` more then (its own rate,
          extrapolated), less the time since that status arrived;
        * a running scan without a usable fraction needs `mean - e` (at least 0), and a target not
          started yet needs `mean`, where `mean` is the average observed duration of the
          server's finished scans, else of the whole fleet's, else the projected total duration
          (`e / f`) of the fleet's running scans; failed targets are left out of the mean;
        * a server's work W (the sum of the above) runs in `lanes = min(max_concurrent_scans,
          targets left)` parallel lanes, so it needs `T = max(W / lanes, longest running scan)`;
        * servers run `max_concurrent_servers` at a time, so the fleet needs
          `max(max(T), sum(T) / max_concurrent_servers)` (the longest server, or the total
          server-time spread over the slots, whichever is longer).

        Servers whose `accounts: all` list is not read yet add nothing, so the estimate is then
        a lower bound (`Estimate.lower_bound`).
        """
        now = self._clock()
        fallback = self._fleet_mean()
        times = []
        for server in self.servers.values():
            seconds = _server_time(server, now, server.mean_duration or fallback)
            if seconds is None:
                return None
            times.append(seconds)
        seconds = max(max(times, default=0.0), sum(times) / self.slots)
        return Estimate(seconds, lower_bound=self.unlisted > 0)

    # -- internals ---------------------------------------------------------------------------

    def _server(self, name: str) -> ServerProgress:
        if name not in self.servers:  # not in the inventory: count it rather than crash a run
            self.servers[name] = ServerProgress(name, lanes=1, expected=0, resolved=True)
        return self.servers[name]

    def _measure(self, server: ServerProgress, seconds: float) -> None:
        server.duration_sum += seconds
        server.measured += 1
        self._duration_sum += seconds
        self._measured += 1

    def _failed(self, server: ServerProgress, result: TargetResult) -> None:
        server.failed += 1
        self.failed += 1
        error = result.error
        failure = Failure(
            result.target,
            error.kind if error else ErrorKind.INTERNAL,
            error.message if error else "failed",
        )
        self.failures.append(failure)
        key = (failure.kind, failure.message)
        if failure.kind is ErrorKind.INTERRUPTED:
            return  # the run was stopped: the CLI says so once, not once per target
        if self._last_error.get(server.name) == key:
            self.suppressed[server.name] = self.suppressed.get(server.name, 0) + 1
            return
        self._last_error[server.name] = key
        self._lines.append(failure.line())

    def _fleet_mean(self) -> float | None:
        if self._measured:
            return self._duration_sum / self._measured
        projected = [
            (scan.reported_at - scan.started) / f
            for s in self.servers.values()
            for scan in s.running.values()
            if (f := _fraction(scan.stats))
        ]
        return sum(projected) / len(projected) if projected else None


def _server_progress(server: Server) -> ServerProgress:
    expected = None
    if server.accounts is not None:
        accounts = [
            a
            for a in server.accounts
            if not any(fnmatchcase(a, p) for p in server.exclude_accounts)
        ]
        expected = len(accounts) * len(server.scan_types)
    return ServerProgress(server.name, lanes=max(server.max_concurrent_scans, 1), expected=expected)


def _server_time(server: ServerProgress, now: float, mean: float | None) -> float | None:
    """Seconds this server still needs once it holds a server slot (see FleetProgress.eta)."""
    remaining = []
    for scan in server.running.values():
        seconds = _scan_remaining(scan, now, mean)
        if seconds is None:
            return None
        remaining.append(seconds)
    pending = server.pending
    if pending and mean is None:
        return None
    lanes = min(server.lanes, len(remaining) + pending)
    if lanes == 0:
        return 0.0
    work = sum(remaining) + pending * (mean or 0.0)
    return max(work / lanes, max(remaining, default=0.0))


def _scan_remaining(scan: _Scan, now: float, mean: float | None) -> float | None:
    fraction = _fraction(scan.stats)
    if fraction:
        # Extrapolated from when the counters were read, minus the time since: a poll interval
        # of 30 s must not make a scan look slower between polls.
        took = max(scan.reported_at - scan.started, 0.0)
        return max(took * (1.0 - fraction) / fraction - (now - scan.reported_at), 0.0)
    elapsed = max(now - scan.started, 0.0)
    if mean is not None:
        return max(mean - elapsed, 0.0)
    return None


def _fraction(stats: ScanStats | None) -> float | None:
    if stats is None or stats.total_file_count <= 0:
        return None
    return min(stats.scanned_file_count / stats.total_file_count, 1.0)


def _scanned(stats: ScanStats | None) -> int:
    return stats.scanned_file_count if stats else 0


# ---------------------------------------------------------------------------------------------
# Display


class LiveProgress:
    """The runner's Observer for a terminal: a live area of fleet and per-server progress.

    Use `async with progress.running():` around the run; callbacks outside it only update the
    model. Failures are printed above the area as they happen; the area is left showing the
    final state.
    """

    def __init__(
        self,
        inventory: Inventory,
        console: Console | None = None,
        *,
        clock: Clock = time.monotonic,
        route_logs: bool | None = None,
    ) -> None:
        self.model = FleetProgress(inventory, clock)
        self._console = console or Console()
        self._clock = clock
        self._started = clock()
        #: None: route logs through the console when both it and stderr are terminals (when
        #: stderr goes to a file, logs cannot tear the display and belong in that file).
        self._route_logs = route_logs

    # -- Observer (model updates only: O(1), no I/O) -----------------------------------------

    def targets_resolved(self, server: str, targets: tuple[Target, ...]) -> None:
        self.model.targets_resolved(server, targets)

    def target_started(self, target: Target) -> None:
        self.model.target_started(target)

    def server_pacing(self, server: str, load: float | None, limit: int) -> None:
        self.model.server_pacing(server, load, limit)

    def scan_progress(self, target: Target, stats: ScanStats) -> None:
        self.model.scan_progress(target, stats)

    def target_finished(self, result: TargetResult) -> None:
        self.model.target_finished(result)

    # -- the live area -----------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self._started = self._clock()
        live = Live(
            self.render(),
            console=self._console,
            auto_refresh=False,  # repainted by our own task, on the event loop: no data race
            transient=False,
            vertical_overflow="crop",
        )
        failure: Exception | None = None
        try:
            with self._logs_through_console(), live:
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._repaint_forever, live)
                        try:
                            yield
                        except Exception as exc:  # re-raised as is below, not in a group
                            failure = exc
                        finally:
                            tg.cancel_scope.cancel()
                finally:
                    self._repaint(live)  # the final state stays on screen
        finally:
            self._print_suppressed()
        if failure is not None:
            raise failure

    async def _repaint_forever(self, live: Live) -> None:
        while True:
            await anyio.sleep(1 / REFRESH_PER_SECOND)
            self._repaint(live)

    def _repaint(self, live: Live) -> None:
        for line in self.model.take_lines():
            self._console.print(Text(line, style="red"))
        live.update(self.render(), refresh=True)

    def _print_suppressed(self) -> None:
        for server, count in self.model.suppressed.items():
            self._console.print(
                Text(f"✗ {server}: {count} more targets failed with the same error", style="red")
            )

    def render(self) -> RenderableType:
        return Group(self._overall(), *self._server_lines())

    def _overall(self) -> Table:
        m = self.model
        more = "+" if m.unlisted else ""
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            ProgressBar(total=max(m.total, 1), completed=m.done, width=30),
            Text(f"targets {m.done}/{m.total}{more}", style="bold"),
            Text(_eta_text(m), style="cyan"),
            Text(f"elapsed {_duration(self._clock() - self._started)}"),
            Text(f"files {m.files:,}"),
            Text(f"infections {m.infected}", style="yellow" if m.infected else ""),
            Text(f"failed {m.failed}", style="red" if m.failed else ""),
        )
        return grid

    def _server_lines(self) -> Iterator[RenderableType]:
        active = self.model.active_servers()
        if not active:
            return
        grid = Table.grid(padding=(0, 2))
        for s in active[:MAX_SERVER_LINES]:
            grid.add_row(
                Text(f"  {s.name}"),
                Text(f"{len(s.running)} running"),
                Text(f"{s.done}/{s.total if s.total is not None else '?'} done"),
                Text(f"files {s.files:,}"),
                Text(f"infections {s.infected}", style="yellow" if s.infected else ""),
                Text(f"failed {s.failed}", style="red" if s.failed else ""),
                Text(_pacing_text(s)),
            )
        yield grid
        if len(active) > MAX_SERVER_LINES:
            yield Text(f"  … and {len(active) - MAX_SERVER_LINES} more active servers")

    @contextmanager
    def _logs_through_console(self) -> Iterator[None]:
        route = self._route_logs
        if route is None:
            route = self._console.is_terminal and _isatty(sys.stderr)
        if not route:
            yield
            return
        with _logs_to(cast(TextIO, _ConsoleLines(self._console))):
            yield


# ---------------------------------------------------------------------------------------------
# Logs through the live console


class _ConsoleLines:
    """A write-only text stream printing each whole line through a rich console.

    rich prints it above the live area and repaints the area below it. Colours that structlog's
    console renderer put in (ANSI) are kept as colours, not as escape-sequence garbage.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            self._console.print(Text.from_ansi(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self._console.is_terminal


@contextmanager
def _logs_to(sink: TextIO) -> Iterator[None]:
    """Swap only the output of structlog and of stdlib's root handlers; restore on exit."""
    saved = structlog.get_config()
    handlers = [
        (h, h.stream)
        for h in logging.getLogger().handlers
        if type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.__stderr__)
    ]
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sink))
    for handler, _ in handlers:
        handler.setStream(sink)
    try:
        yield
    finally:
        structlog.configure(**saved)
        for handler, stream in handlers:
            handler.setStream(stream)


def _isatty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed
        return False


def _pacing_text(server: ServerProgress) -> str:
    if not server.paced:
        return ""
    load = "load ?" if server.load is None else f"load {server.load:.2f}"
    return f"{load} limit {server.lanes}"


def _eta_text(model: FleetProgress) -> str:
    if model.finished:
        return "all done"
    estimate = model.eta()
    if estimate is None:
        return "ETA estimating…"
    prefix = "≥" if estimate.lower_bound else ""
    return f"ETA {prefix}{_duration(estimate.seconds)}"


def _duration(seconds: float) -> str:
    whole = max(round(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
