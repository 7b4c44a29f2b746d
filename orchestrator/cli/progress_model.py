"""The live progress model of `clamfleet run`: counts, failures and the ETA. Pure.

Fed by the runner's Observer callbacks (O(1) each, no I/O) through `progress.LiveProgress`, read
by its display. Time comes from the clocks it is given (monotonic seconds, and the wall clock
for the finish-by window), so tests step fake ones.

What it never does: call a target "done" that failed or was deferred (each is counted on its
own), give a number for the ETA while nothing can be extrapolated (no "ETA ≥0s"), or keep a
number still while a paced server waits for its load to fall (the wait is named instead).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from orchestrator.config import Inventory, Server
from orchestrator.engine.targets import expected_accounts
from orchestrator.model import ErrorKind, ScanStats, Status, Target, TargetResult
from orchestrator.workflow.pacing import Window

Clock = Callable[[], float]
WallClock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Failure:
    target: Target
    kind: ErrorKind
    message: str

    def line(self) -> str:
        return f"✗ {self.target}: {self.kind} — {self.message}"


@dataclass(frozen=True, slots=True)
class Waiting:
    """A paced server with targets to start, held back: its last load is over its `load.max`."""

    server: str
    load: float
    max_load: float


@dataclass(frozen=True, slots=True)
class Estimate:
    """Seconds until the run ends. `lower_bound` while some servers' account lists are unknown,
    or while `waiting` servers hold targets back for a time nobody can predict."""

    seconds: float
    lower_bound: bool = False
    waiting: tuple[Waiting, ...] = ()


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
    ended: int = 0  # targets with a result, whatever it says
    done: int = 0  # scanned to the end (clean or infected)
    failed: int = 0
    deferred: int = 0  # the finish-by window closed before they started
    skipped: int = 0  # suspended or excluded accounts: nothing to scan
    infected: int = 0  # infected files found
    files_done: int = 0  # files scanned by its finished targets
    files_running: int = 0  # files scanned so far by its running scans
    running: dict[Target, _Scan] = field(default_factory=dict)
    duration_sum: float = 0.0  # observed durations of its finished scans
    measured: int = 0
    paced: bool = False  # load-aware: `lanes` follows the pacing limit
    load: float | None = None  # its last 1-minute load (None: no reading or it failed)
    max_load: float | None = None  # its `load.max` (None: fixed pacing)

    @property
    def total(self) -> int | None:
        return None if self.expected is None else max(self.expected, self.ended)

    @property
    def files(self) -> int:
        return self.files_done + self.files_running

    @property
    def pending(self) -> int:
        """Targets neither finished nor running (0 while unknown)."""
        return max((self.expected or 0) - self.ended - len(self.running), 0)

    @property
    def active(self) -> bool:
        return bool(self.running) or (self.resolved and self.pending > 0)

    @property
    def mean_duration(self) -> float | None:
        return self.duration_sum / self.measured if self.measured else None

    @property
    def waiting(self) -> Waiting | None:
        """Held back by its load: targets to start, and the last reading over `load.max`."""
        load, ceiling = self.load, self.max_load
        if not self.paced or load is None or ceiling is None or load <= ceiling:
            return None
        return Waiting(self.name, load, ceiling) if self.pending else None


class FleetProgress:
    """Counts, failures and the ETA of one run, fed by the Observer callbacks."""

    def __init__(
        self,
        inventory: Inventory,
        clock: Clock,
        *,
        window: Window | None = None,
        wall: WallClock = _utc_now,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self.window = window or Window(None)
        self.slots = max(inventory.settings.max_concurrent_servers, 1)
        self.servers = {s.name: _server_progress(s) for s in inventory.servers}
        self.known_total = sum(s.expected or 0 for s in self.servers.values())
        self.unlisted = sum(s.expected is None for s in self.servers.values())
        self.ended = self.done = self.failed = self.deferred = self.skipped = 0
        self.infected = self.files = 0
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
        s.ended += 1
        self.ended += 1
        s.infected += len(result.findings)  # accepted files and the canary are no infection
        self.infected += len(result.findings)
        if result.status is Status.FAILED:
            self._failed(s, result)
        elif result.status is Status.SKIPPED:
            if result.error is not None and result.error.kind is ErrorKind.DEFERRED:
                s.deferred += 1
                self.deferred += 1
            else:
                s.skipped += 1
                self.skipped += 1
        else:
            s.done += 1
            self.done += 1
            if result.error is not None:
                # scanned, but something after the scan needs a look (a disinfection not
                # confirmed, a destructive cap): a line, though the target is not failed
                self._line(s, Failure(result.target, result.error.kind, result.error.message))

    # -- Display -----------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return max(self.known_total, self.ended)

    @property
    def ready(self) -> bool:
        """Whether there is a target count to show: some targets known, or every server
        listed (no frame says "targets 0/0+" while the account lists are still being read)."""
        return self.known_total > 0 or self.ended > 0 or self.unlisted == 0

    @property
    def finished(self) -> bool:
        """Every target has a result (which need not be "done": see `all_done`)."""
        return self.unlisted == 0 and self.ended >= self.known_total > 0

    @property
    def all_done(self) -> bool:
        """Finished, and every target scanned to the end (or skipped: nothing to scan)."""
        return self.finished and not self.failed and not self.deferred

    def window_left(self) -> float | None:
        """Seconds until the finish-by window closes (0 once closed); None: no window."""
        end = self.window.end
        if end is None:
            return None
        return max((end - self._wall()).total_seconds(), 0.0)

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
        a lower bound (`Estimate.lower_bound`). So is it while a paced server holds targets back
        because its load is over `load.max` (`Estimate.waiting`: how long the load stays up
        nobody can say; its `lanes` is the pacing limit once readings come). Once the finish-by
        window has closed, targets not started yet will be deferred, not scanned: they add
        nothing. None while nothing can be extrapolated, and a bound of nothing (0 s with
        servers still unlisted) is no estimate either.
        """
        now = self._clock()
        fallback = self._fleet_mean()
        closed = self.window_left() == 0.0
        times = []
        for server in self.servers.values():
            mean = server.mean_duration or fallback
            seconds = _server_time(server, now, mean, start_pending=not closed)
            if seconds is None:
                return None
            times.append(seconds)
        seconds = max(max(times, default=0.0), sum(times) / self.slots)
        waiting = () if closed else tuple(w for s in self.servers.values() if (w := s.waiting))
        lower_bound = self.unlisted > 0 or bool(waiting)
        if lower_bound and seconds <= 0 and not waiting:
            return None
        return Estimate(seconds, lower_bound=lower_bound, waiting=waiting)

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
        if failure.kind is ErrorKind.INTERRUPTED:
            return  # the run was stopped: the CLI says so once, not once per target
        self._line(server, failure)

    def _line(self, server: ServerProgress, failure: Failure) -> None:
        """Print it, unless it repeats the server's last printed error (then count it)."""
        key = (failure.kind, failure.message)
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
    if (accounts := expected_accounts(server)) is not None:  # the run's own rule (targets.py)
        expected = len(accounts) * len(server.scan_types)
    return ServerProgress(
        server.name,
        lanes=max(server.max_concurrent_scans, 1),
        expected=expected,
        max_load=server.load.max,
    )


def _server_time(
    server: ServerProgress, now: float, mean: float | None, *, start_pending: bool = True
) -> float | None:
    """Seconds this server still needs once it holds a server slot (see FleetProgress.eta).
    `start_pending` False: its targets not started yet never will be (the window closed)."""
    remaining = []
    for scan in server.running.values():
        seconds = _scan_remaining(scan, now, mean)
        if seconds is None:
            return None
        remaining.append(seconds)
    pending = server.pending if start_pending else 0
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
