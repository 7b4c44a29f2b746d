"""Live progress that tells the truth: no frame before there is a count, an ETA that names a
server held back by its load instead of a number standing still, failed and deferred targets
apart from done ones, and the finish-by window's remaining time. The model is pure (fake
clocks); the display is painted into a buffer."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.live import Live

from orchestrator.cli.progress import FleetProgress, LiveProgress
from orchestrator.config import LoadLimit
from orchestrator.model import ErrorInfo, ErrorKind, ScanType, Status, Target, TargetResult
from orchestrator.workflow.pacing import Window
from tests.cli.test_progress import FakeClock, inventory, server, stats

HOME = ScanType.HOME
START = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


class FakeWall:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def painted(progress: LiveProgress) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(progress.render())
    return buffer.getvalue()


def deferred(target: Target) -> TargetResult:
    error = ErrorInfo(ErrorKind.DEFERRED, "window closed at 06:00")
    return TargetResult(target, Status.SKIPPED, error=error)


def test_no_frame_is_painted_before_the_target_count_is_known() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160, color_system=None)
    progress = LiveProgress(inventory(server("web01", None)), console, route_logs=False)
    live = Live(console=console, auto_refresh=False)
    try:
        progress._repaint(live)  # the repaint task's first turn: listaccts not answered yet
        assert not progress.model.ready
        assert buffer.getvalue() == "", "no 'targets 0/0+' frame"
        targets = tuple(Target("web01", a, HOME) for a in ("alice", "bob"))
        progress.targets_resolved("web01", targets)
        progress._repaint(live)
        assert "targets 0/2" in buffer.getvalue()
    finally:
        live.stop()


def test_an_eta_with_nothing_to_extrapolate_is_no_number() -> None:
    model = FleetProgress(inventory(server("web01", None), server("web02", None)), FakeClock())
    model.targets_resolved("web01", ())
    assert model.eta() is None, "a bound of 0 s while web02 is unlisted says nothing"


def test_a_server_held_back_by_its_load_is_named_not_given_a_number_that_stands_still() -> None:
    clock = FakeClock()
    paced = server("web01", ("a", "b", "c"), max_concurrent_scans=4, load=LoadLimit(max=3.0))
    progress = LiveProgress(inventory(paced), clock=clock)
    targets = tuple(Target("web01", a, HOME) for a in "abc")
    progress.targets_resolved("web01", targets)
    progress.target_started(targets[0])
    clock.now += 60
    progress.target_finished(TargetResult(targets[0], Status.CLEAN, scan=stats(10, 10)))
    progress.server_pacing("web01", 4.3, 1)  # over max: nothing new starts there
    estimate = progress.model.eta()
    assert estimate is not None and estimate.lower_bound
    assert [w.server for w in estimate.waiting] == ["web01"]
    area = painted(progress)
    assert "waiting: load 4.3 > max 3" in area, area
    assert "ETA 1m" not in area, "not a plain number while the load holds targets back"
    progress.server_pacing("web01", 2.1, 2)  # under max again: a number
    area = painted(progress)
    assert "waiting" not in area and "ETA 1m00s" in area, area


def test_failed_and_deferred_targets_are_counted_apart_from_done_ones() -> None:
    accounts = tuple(f"u{i}" for i in range(8))
    progress = LiveProgress(inventory(server("web01", accounts)), clock=FakeClock())
    targets = [Target("web01", a, HOME) for a in accounts]
    progress.targets_resolved("web01", tuple(targets))
    progress.target_finished(TargetResult(targets[0], Status.CLEAN))
    refused = ErrorInfo(ErrorKind.AUTH, "credentials refused")
    progress.target_finished(TargetResult(targets[1], Status.FAILED, error=refused))
    for target in targets[2:]:
        progress.target_finished(deferred(target))
    model = progress.model
    assert (model.ended, model.done, model.failed, model.deferred) == (8, 1, 1, 6)
    assert model.finished and not model.all_done
    area = painted(progress)
    assert "targets 8/8" in area and "1 done, 1 failed, 6 deferred" in area, area
    assert "all done" not in area
    assert "ended: 1 failed, 6 deferred" in area


def test_a_scan_that_ended_with_an_error_prints_a_line_without_counting_as_failed() -> None:
    model = FleetProgress(inventory(server("web01", ("alice",))), FakeClock())
    why = "disinfect_files was going out when the run was interrupted; not resent"
    target = Target("web01", "alice", HOME)
    error = ErrorInfo(ErrorKind.INTERRUPTED, why)
    model.target_finished(TargetResult(target, Status.INFECTED, error=error))
    assert (model.done, model.failed) == (1, 0)
    assert model.take_lines() == [f"✗ web01/alice/home: interrupted — {why}"]


def test_the_window_shows_its_remaining_time_and_once_closed_adds_no_pending_work() -> None:
    clock, wall = FakeClock(), FakeWall()
    web01 = server("web01", ("a", "b", "c"), max_concurrent_scans=1)
    window = Window(START + timedelta(hours=1, minutes=20))
    progress = LiveProgress(inventory(web01), clock=clock, window=window, wall=wall)
    targets = tuple(Target("web01", a, HOME) for a in "abc")
    progress.targets_resolved("web01", targets)
    progress.target_started(targets[0])
    clock.now += 600
    progress.target_finished(TargetResult(targets[0], Status.CLEAN, scan=stats(5, 5)))
    progress.target_started(targets[1])
    assert "window 1h20m left" in painted(progress)
    open_eta = progress.model.eta()
    wall.now += timedelta(hours=2)
    area = painted(progress)
    assert "window closed" in area
    closed_eta = progress.model.eta()
    assert open_eta is not None and closed_eta is not None
    assert closed_eta.seconds < open_eta.seconds, "c will be deferred, not scanned"
