"""Live progress of load-paced servers: their last load and current limit, and the ETA."""

from __future__ import annotations

import io

from rich.console import Console

from orchestrator.cli.progress import FleetProgress, LiveProgress
from orchestrator.model import ScanType, Status, Target, TargetResult
from orchestrator.workflow.pacing import PacingObserver
from tests.cli.test_progress import FakeClock, inventory, server

HOME = ScanType.HOME


def test_the_eta_follows_the_pacing_limit_rather_than_the_fixed_cap() -> None:
    clock = FakeClock()
    accounts = tuple(f"u{i}" for i in range(8))
    model = FleetProgress(inventory(server("web01", accounts, max_concurrent_scans=4)), clock)
    first = Target("web01", "u0", HOME)
    model.target_started(first)
    clock.now += 100
    model.target_finished(TargetResult(first, Status.CLEAN, duration_s=100.0))
    wide = model.eta()
    model.server_pacing("web01", 7.5, 1)  # overloaded: one scan at a time
    narrow = model.eta()
    assert wide is not None and narrow is not None
    assert narrow.seconds > wide.seconds


def test_server_lines_show_load_and_limit_of_paced_servers_only() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160, color_system=None)
    inv = inventory(server("web01", ("a", "b")), server("web02", ("c", "d")))
    progress = LiveProgress(inv, console)
    observer: PacingObserver = progress  # the hook the runner calls
    for name, account in (("web01", "a"), ("web02", "c")):
        progress.targets_resolved(name, (Target(name, account, HOME),))
        progress.target_started(Target(name, account, HOME))
    observer.server_pacing("web01", 3.456, 3)
    console.print(progress.render())
    lines = {line.split()[0]: line for line in buffer.getvalue().splitlines() if "running" in line}
    assert "load 3.46 limit 3" in lines["web01"]
    assert "load" not in lines["web02"]
    observer.server_pacing("web01", None, 2)  # a failed reading
    buffer.truncate(0)
    console.print(progress.render())
    assert "load ? limit 2" in buffer.getvalue()
