"""Concurrency lives here and in lanes.py: one task group, a task per server, lanes per server.

    FleetRun.run
      └── task group
            ├── server task (web01)  ── holds a max_concurrent_servers slot
            │     targets.select: which targets, which skipped (listaccts)
            │     lanes.Lanes: up to max_concurrent_scans targets in flight, one per account;
            │       a timer heap of waiting targets, a ready queue, a few workers running
            │       _Driver.advance: state -> command -> request -> reply -> state
            └── server task (web02) ...

The workflow is pure (workflow.py), so a target between two requests is nothing but its
`State`: no task, no stack. A target's failure is a result, never an exception: one server's
trouble cannot stop another. Cancellation (SIGINT/SIGTERM, via the CLI's cancel scope) turns
targets in flight into `interrupted` results and is then re-raised, never swallowed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import anyio
import structlog

from orchestrator import policy as policy_mod
from orchestrator import targets as targets_mod
from orchestrator import workflow
from orchestrator.client import Http, RetryPolicy, ServerClient
from orchestrator.config import REPORT_ONLY, AuthMethod, Inventory, Policy, Server
from orchestrator.errors import ApiError, ProtocolError, TargetError, TransportError
from orchestrator.events import (
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
from orchestrator.health import BREAKER_THRESHOLD as BREAKER_THRESHOLD  # tests import it here
from orchestrator.health import ServerHealth
from orchestrator.lanes import AccountQueue, Lanes
from orchestrator.limiter import FleetLimits
from orchestrator.model import (
    ErrorInfo,
    ErrorKind,
    ScanStats,
    ScanType,
    Status,
    Target,
    TargetResult,
)
from orchestrator.parse import Account, scan_in_progress
from orchestrator.policy import DestructiveBudget, plan

log = structlog.get_logger("clamfleet")


class Observer(Protocol):
    """Progress seam (live display, tests). Called from the event loop; must not block."""

    def targets_resolved(self, server: str, targets: tuple[Target, ...]) -> None: ...
    def target_started(self, target: Target) -> None: ...
    def scan_progress(self, target: Target, stats: ScanStats) -> None: ...
    def target_finished(self, result: TargetResult) -> None: ...


class NullObserver:
    def targets_resolved(self, server: str, targets: tuple[Target, ...]) -> None:
        pass

    def target_started(self, target: Target) -> None:
        pass

    def scan_progress(self, target: Target, stats: ScanStats) -> None:
        pass

    def target_finished(self, result: TargetResult) -> None:
        pass


class Journal(Protocol):
    """What the runner needs of the journal (journal.py)."""

    def server_targets(self, server: str) -> tuple[Target, ...] | None: ...
    def save_server_targets(self, server: str, targets: tuple[Target, ...]) -> None: ...
    def state(self, target: Target) -> workflow.State | None: ...
    def result(self, target: Target) -> TargetResult | None: ...
    def save_state(self, state: workflow.State) -> None: ...
    def save_result(self, result: TargetResult) -> None: ...


@dataclass(frozen=True, slots=True)
class RunOptions:
    policy: Policy = REPORT_ONLY
    dry_run: bool = False
    scan_types: tuple[ScanType, ...] | None = None  # --scan-type overrides the inventory
    only: frozenset[Target] | None = None  # --only-failed: just these targets
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connections_per_host: int = 4
    # Sent in the User-Agent (the simulator's referee tells runs apart by it); `run` sets the
    # journal's on --resume, every other run gets its own.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)


class FleetRun:
    """One run over an inventory. `await run()`, then `results()`; also after cancellation.

    Cancelling `run()` (the CLI does on SIGINT/SIGTERM) stops new work; targets in flight become
    `interrupted` results, and `results()` still accounts for every target.
    """

    def __init__(
        self,
        inventory: Inventory,
        options: RunOptions | None = None,
        *,
        observer: Observer | None = None,
        journal: Journal | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        options = options or RunOptions()
        settings = inventory.settings
        self.inventory = inventory
        self.options = options
        self.limits = FleetLimits(settings)
        self.http = Http(
            request_timeout=settings.timeouts.request,
            limit_per_host=options.connections_per_host,
            run_id=options.run_id,
        )
        self.observer: Observer = observer or NullObserver()
        self.journal = journal
        self.clock = clock
        self.budget = DestructiveBudget(options.policy.limits)
        self.cfg = _workflow_config(inventory)
        self.targets: dict[str, tuple[Target, ...]] = {}
        self.results_by_target: dict[Target, TargetResult] = {}
        #: per (server, account): paths whose action this run has sent, and with which scan type
        #: (a file found by `home` and `mail` alike is one file: disinfected once)
        self.sent: dict[tuple[str, str], dict[str, ScanType]] = {}

    async def run(self) -> None:
        self.limits.bind_loop_clock()
        async with self.http, anyio.create_task_group() as tg:
            for server in self.inventory.servers:
                tg.start_soon(self._server, server, name=f"server:{server.name}")

    def results(self) -> list[TargetResult]:
        """One result per target, in inventory order; targets never reached are interrupted."""
        out: list[TargetResult] = []
        for server in self.inventory.servers:
            targets = self.targets.get(server.name)
            if targets is None:
                targets = targets_mod.unlisted(server, self._scan_types(server), self.options.only)
            for target in targets:
                result = self.results_by_target.get(target)
                if result is None:
                    message = "run ended before this target started"
                    result = TargetResult(
                        target, Status.FAILED, error=ErrorInfo(ErrorKind.INTERRUPTED, message)
                    )
                    self.results_by_target[target] = result
                out.append(result)
        return out

    def _scan_types(self, server: Server) -> tuple[ScanType, ...]:
        return targets_mod.scan_types_of(server, self.options.scan_types)

    # -- one server ------------------------------------------------------------------------------

    async def _server(self, server: Server) -> None:
        with structlog.contextvars.bound_contextvars(server=server.name):
            async with self.limits.servers:
                gate = self.limits.gate_for(server)
                client = ServerClient(self.http, server, gate, self.options.retry)
                health = self.http.hosts.for_server(server)
                if not server.tls.verify and server.base_url.startswith("https"):
                    log.warning(
                        "tls.verify_disabled", hint="certificate checks are off for this server"
                    )
                selection = await self._select(server, client, health)
                todo = [t for t in selection.to_scan() if t not in self.results_by_target]
                first = {t.account for t in todo if self._in_flight(t)}
                queue = AccountQueue(targets_mod.start_order(todo, selection.sizes, first))
                driver = _Driver(self, client, health)
                cap = server.max_concurrent_scans
                lanes = Lanes[_Slot](
                    queue,
                    limit=lambda: cap,
                    clock=self.limits.clock,
                    begin=driver.begin,
                    advance=driver.advance,
                    interrupted=driver.interrupted,
                )
                await lanes.run(workers=min(cap, 2 * self.options.connections_per_host))

    async def _select(
        self, server: Server, client: ServerClient, health: ServerHealth
    ) -> targets_mod.Selection:
        """The server's targets (listaccts for `whm_token`); skips are recorded at once."""
        scan_types = self._scan_types(server)
        only = self.options.only
        known = self.journal.server_targets(server.name) if self.journal is not None else None
        if known is not None:  # --resume: the targets the interrupted run had resolved
            selection = targets_mod.Selection(targets_mod.only_failed(known, only))
            return self._resolved(server, selection)
        listed: tuple[Account, ...] | None = None
        if server.auth.method is AuthMethod.WHM_TOKEN:
            try:
                listed = await client.list_accounts()
            except TargetError as exc:
                health.record(exc)
                error = ErrorInfo(exc.kind, str(exc))
                rows = targets_mod.unlisted(server, scan_types, only)
                for target in rows:
                    self._record(TargetResult(target, Status.FAILED, error=error))
                log.error("server.failed", error_kind=error.kind, error=error.message)
                return self._resolved(server, targets_mod.Selection(rows))
            health.record(None)
        selection = targets_mod.select(server, scan_types, listed, only)
        for target, skip in selection.skips.items():
            self._record(skip.result(target))
        if self.journal is not None:
            self.journal.save_server_targets(server.name, selection.targets)
        return self._resolved(server, selection)

    def _resolved(self, server: Server, selection: targets_mod.Selection) -> targets_mod.Selection:
        self.targets[server.name] = selection.targets
        self.observer.targets_resolved(server.name, selection.targets)
        return selection

    def _in_flight(self, target: Target) -> bool:
        """Whether an interrupted run left this target mid-way (its scan may be running)."""
        if self.journal is None:
            return False
        state = self.journal.state(target)
        return state is not None and state.phase not in workflow.TERMINAL

    # -- results ---------------------------------------------------------------------------------

    def _record(self, result: TargetResult) -> None:
        if result.target in self.results_by_target:
            return
        self.results_by_target[result.target] = result
        if self.journal is not None and (
            result.error is None or result.error.kind is not ErrorKind.INTERRUPTED
        ):
            self.journal.save_result(result)
        self.observer.target_finished(result)
        _log_finished(result)


def _log_finished(result: TargetResult) -> None:
    """The one summary line of every target, scanned, skipped or failed."""
    target, error = result.target, result.error
    log.info(
        "target.finished",
        server=target.server,
        account=target.account,
        scan_type=str(target.scan_type),
        status=str(result.status),
        infected=len(result.infected_files),
        duration_s=round(result.duration_s or 0.0, 1),
        api_calls=result.api_calls,
        error_kind=str(error.kind) if error else None,
        error=error.message if error else None,
    )


def _workflow_config(inventory: Inventory) -> workflow.WorkflowConfig:
    return workflow.WorkflowConfig.from_settings(inventory.settings)


# ---------------------------------------------------------------------------------------------
# Targets


@dataclass(slots=True, eq=False)
class _Slot:
    """One target in flight: its workflow state and the command that state asks for next."""

    target: Target
    state: workflow.State
    command: Command
    started: datetime


class _Driver:
    """Drives one server's targets through their workflows: state -> command -> request ->
    reply -> state, until the workflow waits (back to the lanes' timer heap) or finishes."""

    def __init__(self, run: FleetRun, client: ServerClient, health: ServerHealth) -> None:
        self.run = run
        self.client = client
        self.health = health

    def begin(self, target: Target) -> tuple[_Slot, float | None] | None:
        run = self.run
        journal = run.journal
        if journal is not None and (done := journal.result(target)) is not None:
            run.results_by_target[target] = done  # finished before: reported, not logged again
            run.observer.target_finished(done)
            return None
        run.observer.target_started(target)
        saved = journal.state(target) if journal is not None else None
        if saved is not None:
            log.info(
                "target.resumed",
                account=target.account,
                scan_type=str(target.scan_type),
                phase=str(saved.phase),
            )
            state, command = workflow.resume(saved, run.clock())
        else:
            state, command = workflow.begin(target, run.cfg, run.clock())
        # a resumed target's clock is the whole target's, not the resumed part's
        started = datetime.fromtimestamp(state.started_at, UTC)
        slot = _Slot(target, state, command, started)
        return slot, command.seconds if isinstance(command, Wait) else None

    async def advance(self, slot: _Slot) -> float | None:
        target = slot.target
        with structlog.contextvars.bound_contextvars(
            account=target.account, scan_type=str(target.scan_type)
        ):
            command = await self._advance(slot)
        if isinstance(command, Wait):
            return command.seconds
        self.run._record(_result(slot.state, command, slot.started))
        return None

    def interrupted(self, slot: _Slot) -> None:
        self.run._record(_interrupted(slot.state, slot.started))

    async def _advance(self, slot: _Slot) -> Finish | Wait:
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
            return _plan(self.run, target, command.files)
        health = self.health
        if (blocked := health.blocked()) is not None:
            return RequestFailed(blocked)
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
            return _failed(exc)
        health.record(None)
        return reply


def _failed(exc: TargetError) -> RequestFailed:
    ambiguous = isinstance(exc, ProtocolError | TransportError) and exc.maybe_sent
    retry_after = exc.retry_after if isinstance(exc, TransportError) else None
    return RequestFailed(
        ErrorInfo(exc.kind, str(exc)), ambiguous=ambiguous, retry_after=retry_after
    )


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


def _plan(run: FleetRun, target: Target, files: tuple[tuple[str, str], ...]) -> ActionsPlanned:
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
