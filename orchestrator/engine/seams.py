"""The seams between a run and what drives its targets: the progress observer, the journal,
the run itself as the driver sees it (`Fleet`), and one target in flight (`Slot`). Protocols
and plain values, so tests can pass their own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from orchestrator import workflow
from orchestrator.config import Policy
from orchestrator.engine.exempt import Judge
from orchestrator.engine.policy import DestructiveBudget
from orchestrator.model import ScanStats, ScanType, Target, TargetResult
from orchestrator.workflow.events import Command
from orchestrator.workflow.window import Window


class Observer(Protocol):
    """Progress seam (live display, tests). Called from the event loop; must not block."""

    def targets_resolved(self, server: str, targets: tuple[Target, ...]) -> None: ...
    def target_started(self, target: Target) -> None: ...
    def scan_progress(self, target: Target, stats: ScanStats) -> None: ...
    def target_finished(self, result: TargetResult) -> None: ...
    def server_pacing(self, server: str, load: float | None, limit: int) -> None: ...


class NullObserver:
    def targets_resolved(self, server: str, targets: tuple[Target, ...]) -> None:
        pass

    def target_started(self, target: Target) -> None:
        pass

    def scan_progress(self, target: Target, stats: ScanStats) -> None:
        pass

    def target_finished(self, result: TargetResult) -> None:
        pass

    def server_pacing(self, server: str, load: float | None, limit: int) -> None:
        pass


class Journal(Protocol):
    """What the runner needs of the journal (journal.py)."""

    def server_targets(self, server: str) -> tuple[Target, ...] | None: ...
    def save_server_targets(self, server: str, targets: tuple[Target, ...]) -> None: ...
    def state(self, target: Target) -> workflow.State | None: ...
    def result(self, target: Target) -> TargetResult | None: ...
    def save_state(self, state: workflow.State) -> None: ...
    def save_result(self, result: TargetResult) -> None: ...
    def answered_before(self, targets: tuple[Target, ...], host: str) -> bool: ...
    def save_host_answered(self, host: str) -> None: ...


class Options(Protocol):
    @property
    def policy(self) -> Policy: ...
    @property
    def dry_run(self) -> bool: ...


class Fleet(Protocol):
    """What driving a target needs of the run (runner.FleetRun)."""

    journal: Journal | None
    observer: Observer
    clock: Callable[[], float]
    cfg: workflow.WorkflowConfig
    window: Window
    #: Set once the run's deadline (max_duration) is reached: why nothing starts any more.
    stopping: str | None
    budget: DestructiveBudget
    #: which infected files are not findings (the canary, accepted ones): never acted on
    judge: Judge
    #: per (server, account): paths whose action this run has sent (or whose POST may have
    #: reached cPanel), and with which scan type; never a path no request carried
    sent: dict[tuple[str, str], dict[str, ScanType]]
    results_by_target: dict[Target, TargetResult]
    #: (server, account) whose last finished target may have left a disinfection running
    pending_disinfection: set[tuple[str, str]]

    @property
    def options(self) -> Options: ...

    def record(self, result: TargetResult) -> None: ...


@dataclass(slots=True, eq=False)
class Slot:
    """One target in flight: its workflow state and the command that state asks for next."""

    target: Target
    state: workflow.State
    command: Command
    started: datetime
