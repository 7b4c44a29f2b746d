"""Live progress of `clamfleet run` on a terminal: the rendering half.

Two halves, so the arithmetic is testable without a terminal:

    FleetProgress   the model (progress_model.py, pure): fed by the runner's Observer callbacks
                    (O(1) each, no I/O), read by the display (counts, failures, ETA).
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
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TextIO, cast

import anyio
import structlog
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchestrator.cli.progress_model import (
    Clock,
    Estimate,
    FleetProgress,
    ServerProgress,
    Waiting,
    WallClock,
)
from orchestrator.config import Inventory
from orchestrator.model import ScanStats, Target, TargetResult
from orchestrator.workflow.pacing import Window

# The model's names stay importable from here, where the CLI and older callers look for them.
__all__ = ["Estimate", "FleetProgress", "LiveProgress", "ServerProgress"]

REFRESH_PER_SECOND = 4
#: Server lines shown at most; a fleet run holds up to max_concurrent_servers of them active.
MAX_SERVER_LINES = 15


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
        window: Window | None = None,
        wall: WallClock | None = None,
    ) -> None:
        if wall is None:
            self.model = FleetProgress(inventory, clock, window=window)
        else:
            self.model = FleetProgress(inventory, clock, window=window, wall=wall)
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
        """The live area, shown from the first repaint at which the model has a target count
        (`FleetProgress.ready`): never a frame of "targets 0/0+" while accounts are listed."""
        self._started = self._clock()
        live = Live(
            console=self._console,
            auto_refresh=False,  # repainted by our own task, on the event loop: no data race
            transient=False,
            vertical_overflow="crop",
        )
        failure: Exception | None = None
        try:
            with self._logs_through_console():
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
                    try:
                        self._repaint(live)  # the final state stays on screen
                    finally:
                        if live.is_started:
                            live.stop()
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
        if not live.is_started:
            if not self.model.ready:
                return
            live.start()
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
        cells: list[RenderableType] = [
            ProgressBar(total=max(m.total, 1), completed=m.ended, width=30),
            Text(f"targets {m.ended}/{m.total}{more}", style="bold"),
            _outcomes_text(m),
            Text(_eta_text(m), style="cyan" if not m.finished or m.all_done else "yellow"),
        ]
        if (left := m.window_left()) is not None:
            window = "window closed" if left <= 0 else f"window {_duration(left)} left"
            cells.append(Text(window, style="yellow" if left <= 0 else ""))
        cells += [
            Text(f"elapsed {_duration(self._clock() - self._started)}"),
            Text(f"files {m.files:,}"),
            Text(f"infections {m.infected}", style="yellow" if m.infected else ""),
        ]
        grid.add_row(*cells)
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
                Text(f"deferred {s.deferred}" if s.deferred else ""),
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
    text = f"{load} limit {server.lanes}"
    if (waiting := server.waiting) is not None:
        text += f" (waiting: over max {waiting.max_load:g})"
    return text


def _outcomes_text(model: FleetProgress) -> Text:
    """Done, failed, deferred and skipped targets, each counted on its own."""
    text = Text(f"· {model.done} done")
    for count, word, style in (
        (model.failed, "failed", "red"),
        (model.deferred, "deferred", "yellow"),
        (model.skipped, "skipped", ""),
    ):
        if count:
            text.append(", ")
            text.append(f"{count} {word}", style=style)
    return text


def _eta_text(model: FleetProgress) -> str:
    if model.finished:
        if model.all_done:
            return "all done"
        return "ended: " + ", ".join(
            f"{count} {word}"
            for count, word in ((model.failed, "failed"), (model.deferred, "deferred"))
            if count
        )
    estimate = model.eta()
    if estimate is None:
        return "ETA estimating…"
    if estimate.waiting:
        wait = _waiting_text(estimate.waiting, several=len(model.servers) > 1)
        if estimate.seconds <= 0:
            return wait
        return f"ETA ≥{_duration(estimate.seconds)}, {wait}"
    prefix = "≥" if estimate.lower_bound else ""
    return f"ETA {prefix}{_duration(estimate.seconds)}"


def _waiting_text(waiting: tuple[Waiting, ...], *, several: bool) -> str:
    """`waiting: load 4.3 > max 3` (on which server, when the fleet has several)."""
    first = max(waiting, key=lambda w: w.load - w.max_load)
    text = f"waiting: load {first.load:.1f} > max {first.max_load:g}"
    if several:
        text += f" on {first.server}"
    if len(waiting) > 1:
        text += f" (+{len(waiting) - 1} more servers)"
    return text


def _duration(seconds: float) -> str:
    whole = max(round(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
