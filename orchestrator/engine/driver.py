"""One server's targets driven through their workflows, one request at a time.

    Driver.begin    a target's first state (fresh, or resumed from the journal), or None when
                    it needs no work: already finished, or deferred by the finish-by window
    Driver.advance  state -> command -> request -> reply -> state, until the workflow waits
                    (back to the lanes' timer heap) or finishes (its result is recorded)

The workflow decides (workflow.py, pure); this module does what it asks: one client call per
request command, the policy for `PlanActions`, and nothing else. The run-wide things it needs
(journal, observer, clock, the destructive budget...) come from the run (`Fleet`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from orchestrator import workflow
from orchestrator.client import ServerClient
from orchestrator.client.health import ServerHealth
from orchestrator.client.parse import scan_in_progress
from orchestrator.config import Policy
from orchestrator.engine import policy as policy_mod
from orchestrator.engine.pacer import deferred_result
from orchestrator.engine.policy import DestructiveBudget, plan
from orchestrator.errors import (
    ApiError,
    ProtocolError,
    ServerDown,
    TargetError,
    TransportError,
)
from orchestrator.model import (
    ErrorInfo,
    ErrorKind,
    ScanStats,
    ScanType,
    Status,
    Target,
    TargetResult,
)
from orchestrator.workflow.events import (
    ActionsPlanned,
    Command,
    Disinfect,
    DisinfectQueued,
    Finish,
    GetDisinfection,
    GetScanStatus,
    InfectedListReply,
    ListInfected,
    PlanActions,
    PlannedFile,
    Reply,
    RequestFailed,
    ScanBusy,
    ScanStarted,
    ScanStatusReply,
    StartScan,
    Tick,
    Wait,
)
from orchestrator.workflow.pacing import Throughput, Window, predicted_seconds

log = structlog.get_logger("clamfleet")


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
    budget: DestructiveBudget
    #: per (server, account): paths whose action this run has sent, and with which scan type
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


class Driver:
    """Drives one server's targets through their workflows: state -> command -> request ->
    reply -> state, until the workflow waits (back to the lanes' timer heap) or finishes."""

    def __init__(
        self,
        run: Fleet,
        client: ServerClient,
        health: ServerHealth,
        sizes: Mapping[str, float] | None = None,
    ) -> None:
        self.run = run
        self.client = client
        self.health = health
        self.sizes = sizes or {}
        self.throughput = Throughput()  # this server's bytes per second per scan, this run

    def begin(self, target: Target) -> tuple[Slot, float | None] | None:
        run = self.run
        journal = run.journal
        if journal is not None and (done := journal.result(target)) is not None:
            run.results_by_target[target] = done  # finished before: reported, not logged again
            run.observer.target_finished(done)
            return None
        saved = journal.state(target) if journal is not None else None
        if saved is None and not self._fits(target):
            run.record(deferred_result(target, run.window))
            return None
        run.observer.target_started(target)
        if saved is not None:
            log.info(
                "target.resumed",
                account=target.account,
                scan_type=str(target.scan_type),
                phase=str(saved.phase),
            )
            state, command = workflow.resume(saved, run.clock())
        else:
            settle = (target.server, target.account) in run.pending_disinfection
            state, command = workflow.begin(target, run.cfg, run.clock(), settle=settle)
        # a resumed target's clock is the whole target's, not the resumed part's
        started = datetime.fromtimestamp(state.started_at, UTC)
        slot = Slot(target, state, command, started)
        return slot, command.seconds if isinstance(command, Wait) else None

    async def advance(self, slot: Slot) -> float | None:
        target = slot.target
        with structlog.contextvars.bound_contextvars(
            account=target.account, scan_type=str(target.scan_type)
        ):
            command = await self._advance(slot)
        if isinstance(command, Wait):
            return command.seconds
        result = _result(slot.state, command, slot.started)
        if result.scan is not None and result.duration_s and slot.target.scan_type is ScanType.HOME:
            self.throughput.observe(result.scan.scanned_file_size, result.duration_s)
        account = (target.server, target.account)
        if workflow.leaves_disinfection_pending(slot.state):
            self.run.pending_disinfection.add(account)  # the account's next target settles
        else:
            self.run.pending_disinfection.discard(account)
        self.run.record(result)
        return None

    def _fits(self, target: Target) -> bool:
        """Whether a target may still start: the window is open, and a `home` scan predicted
        from the account's disk use and this server's measured speed ends before it closes.
        (Other scan types read part of the account: their size is not known, so they start
        while the window is open.) A resumed target is never deferred: it may be running."""
        window = self.run.window
        now = datetime.now(UTC)
        if target.scan_type is not ScanType.HOME:
            return not window.closed(now)
        seconds = predicted_seconds(
            self.sizes.get(target.account), self.throughput.bytes_per_second
        )
        return window.fits(now, seconds)

    def interrupted(self, slot: Slot) -> None:
        self.run.record(_interrupted(slot.state, slot.started))

    async def _advance(self, slot: Slot) -> Finish | Wait:
        """Run the slot's requests until its workflow waits or finishes."""
        run, target = self.run, slot.target
        state, command = slot.state, slot.command
        if isinstance(command, Wait):  # its wait is over
            state, command = workflow.step(state, Tick(), run.clock())
            slot.state, slot.command = state, command
        while not isinstance(command, Finish | Wait):
            if run.journal is not None:
                run.journal.save_state(state)  # before the request it leads to
            reply = await self._execute(target, command)
            before = state.stats
            state, command = workflow.step(state, reply, run.clock())
            slot.state, slot.command = state, command
            if state.stats is not before and state.stats is not None and _own_scan(state):
                # only counters the workflow accepted as this scan's (never stale ones)
                run.observer.scan_progress(target, state.stats)
        if isinstance(command, Finish) and run.journal is not None:
            run.journal.save_state(state)
        return command

    async def _execute(self, target: Target, command: Command) -> Reply:
        if isinstance(command, PlanActions):
            return plan_actions(self.run, target, command.files)
        health = self.health
        if (blocked := health.blocked()) is not None:
            return RequestFailed(blocked, final=True)
        try:
            reply = await _request(self.client, target, command)
        except TargetError as exc:
            health.record(exc)
            log.debug(
                "request.failed",
                command=type(command).__name__,
                error_kind=exc.kind,
                error=str(exc),
            )
            # given up for the run (down past server_down, never answered, a refusal, TLS):
            # nothing will be sent to this server again, so no phase waits to retry; the
            # target says why the server was given up (the breaker's verdict: down since when)
            if (blocked := health.blocked()) is not None and blocked.kind is exc.kind:
                return RequestFailed(blocked, final=True)
            final = blocked is not None or isinstance(exc, ServerDown)
            return _failed(exc, final)
        health.record(None)
        return reply


def _failed(exc: TargetError, final: bool = False) -> RequestFailed:
    ambiguous = isinstance(exc, ProtocolError | TransportError) and exc.maybe_sent
    retry_after = exc.retry_after if isinstance(exc, TransportError) else None
    error = ErrorInfo(exc.kind, str(exc))
    return RequestFailed(error, ambiguous=ambiguous, retry_after=retry_after, final=final)


def _own_scan(state: workflow.State) -> bool:
    return state.phase is not workflow.Phase.FOREIGN


async def _request(client: ServerClient, target: Target, command: Command) -> Reply:
    account = target.account
    match command:
        case GetScanStatus():
            return ScanStatusReply(await client.get_scan_status(account))
        case StartScan(scan_type=scan_type):
            try:
                await client.start_scan(account, scan_type)
            except ApiError as exc:
                if not scan_in_progress(str(exc)):
                    raise
                log.info("scan.refused_busy", reason=str(exc))
                return ScanBusy(str(exc))
            log.info("scan.started")
            return ScanStarted()
        case ListInfected():
            return InfectedListReply(await client.list_infected(account))
        case Disinfect(actions=actions):
            task_id = await client.disinfect(account, actions)
            log.info("disinfection.queued", files=len(actions), task_id=task_id)
            return DisinfectQueued(task_id)
        case GetDisinfection(last_id=last_id):
            return await client.check_disinfection(account, last_id)
    raise AssertionError(f"not a request: {command!r}")


def plan_actions(run: Fleet, target: Target, files: tuple[tuple[str, str], ...]) -> ActionsPlanned:
    decided = plan(run.options.policy, target, files, dry_run=run.options.dry_run)
    sent = run.sent.setdefault((target.server, target.account), {})
    planned = tuple(_once(f, sent) for f in decided.files)
    count = sum(1 for f in planned if f.send and f.action.destructive)
    if count and (refusal := run.budget.reserve(target.server, target.account, count)) is not None:
        log.warning("policy.limit", destructive=count, reason=refusal)
        return ActionsPlanned(planned, limit_error=refusal)
    for f in planned:
        if f.send:
            sent[f.path] = target.scan_type
    return ActionsPlanned(planned)


def _once(file: policy_mod.PlannedFile, sent: dict[str, ScanType]) -> PlannedFile:
    """A file a sibling target of the account already sent an action for is not sent again:
    `home` contains `mail/`, `public_html/` and `public_ftp/`, so two scan types of one account
    can find the same file, and it is one file (disinfected once, counted once)."""
    if file.send and (by := sent.get(file.path)) is not None:
        message = f"action already sent for this file with the {by} scan of this account"
        return PlannedFile(file.path, file.virus, file.action, False, "not-requested", message)
    return PlannedFile(file.path, file.virus, file.action, file.send, file.outcome, file.message)


def _result(state: workflow.State, command: Finish, started: datetime) -> TargetResult:
    verdict = command.verdict
    finished = datetime.now(UTC)
    return TargetResult(
        target=state.target,
        status=verdict.status,
        scan=verdict.scan,
        infected_files=verdict.files,
        started_at=started,
        finished_at=finished,
        duration_s=(finished - started).total_seconds(),
        api_calls=state.api_calls,
        error=verdict.error,
    )


def _interrupted(state: workflow.State, started: datetime) -> TargetResult:
    finished = datetime.now(UTC)
    return TargetResult(
        target=state.target,
        status=Status.FAILED,
        scan=state.stats,
        infected_files=workflow.infected_files(state),
        started_at=started,
        finished_at=finished,
        duration_s=(finished - started).total_seconds(),
        api_calls=state.api_calls,
        error=ErrorInfo(ErrorKind.INTERRUPTED, f"run interrupted during {state.phase}"),
    )
