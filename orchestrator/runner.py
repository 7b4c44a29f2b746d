"""Concurrency lives here and only here: one task group, a worker per server, lanes per server.

    run_fleet
      └── task group
            ├── server worker (web01)  ── holds a max_concurrent_servers slot
            │     resolve targets (listaccts)
            │     _Lanes: up to max_concurrent_scans targets in flight
            │       ├── scheduler: timer heap of waiting targets ── ready queue
            │       └── a few workers: take a ready target, execute its requests, feed the
            │           replies to its workflow, until it waits again (heap) or finishes
            └── server worker (web02) ...

The workflow is pure (workflow.py), so a target between two requests is nothing but its
`State`: no task, no stack. A target's failure is a result, never an exception: one server's
trouble cannot stop another. Cancellation (SIGINT/SIGTERM, via the CLI's cancel scope) turns
targets in flight into `interrupted` results and is then re-raised, never swallowed.
"""

from __future__ import annotations

import fnmatch
import heapq
import itertools
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from orchestrator import workflow
from orchestrator.client import Http, RetryPolicy, ServerClient
from orchestrator.config import REPORT_ONLY, AuthMethod, Inventory, Policy, Server
from orchestrator.errors import ProtocolError, TargetError, TransportError
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
    ScanStarted,
    ScanStatusReply,
    StartScan,
    Tick,
    Wait,
)
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
from orchestrator.parse import Account
from orchestrator.policy import DestructiveBudget, plan

log = structlog.get_logger("clamfleet")

#: Consecutive failed requests (retries spent) after which a server is given up on.
BREAKER_THRESHOLD = 3
ALL_ACCOUNTS = "*"


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


@dataclass(slots=True)
class ServerHealth:
    """Per-server verdicts that stop further requests: auth/TLS refusal, or a tripped breaker."""

    fatal: ErrorInfo | None = None
    consecutive_failures: int = 0

    def blocked(self) -> ErrorInfo | None:
        if self.fatal is not None:
            return self.fatal
        if self.consecutive_failures >= BREAKER_THRESHOLD:
            message = f"given up after {self.consecutive_failures} consecutive failed requests"
            return ErrorInfo(ErrorKind.UNREACHABLE, message)
        return None

    def record(self, error: TargetError | None) -> None:
        if error is None:
            self.consecutive_failures = 0
        elif error.kind in (ErrorKind.AUTH, ErrorKind.TLS):
            # One refusal is final: retrying gets the orchestrator's IP blocked by cPHulk.
            self.fatal = self.fatal or ErrorInfo(error.kind, str(error))
        elif isinstance(error, TransportError):
            self.consecutive_failures += 1


@dataclass(slots=True)
class _Run:
    inventory: Inventory
    options: RunOptions
    limits: FleetLimits
    http: Http
    observer: Observer
    journal: Journal | None
    clock: Callable[[], float]
    budget: DestructiveBudget
    cfg: workflow.WorkflowConfig
    targets: dict[str, tuple[Target, ...]] = field(default_factory=dict)
    results: dict[Target, TargetResult] = field(default_factory=dict)


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
        self._run = _Run(
            inventory=inventory,
            options=options,
            limits=FleetLimits(settings),
            http=Http(
                request_timeout=settings.timeouts.request,
                limit_per_host=options.connections_per_host,
                run_id=options.run_id,
            ),
            observer=observer or NullObserver(),
            journal=journal,
            clock=clock,
            budget=DestructiveBudget(options.policy.limits),
            cfg=_workflow_config(inventory),
        )

    async def run(self) -> None:
        run = self._run
        run.limits.bind_loop_clock()
        async with run.http, anyio.create_task_group() as tg:
            for server in run.inventory.servers:
                tg.start_soon(_server_worker, run, server, name=f"server:{server.name}")

    def results(self) -> list[TargetResult]:
        """One result per target, in inventory order; targets never reached are interrupted."""
        return _collect(self._run)


async def run_fleet(
    inventory: Inventory,
    options: RunOptions | None = None,
    *,
    observer: Observer | None = None,
    journal: Journal | None = None,
    clock: Callable[[], float] = time.time,
) -> list[TargetResult]:
    """Scan every target of the inventory; one result per target, in inventory order."""
    fleet = FleetRun(inventory, options, observer=observer, journal=journal, clock=clock)
    await fleet.run()
    return fleet.results()


def _workflow_config(inventory: Inventory) -> workflow.WorkflowConfig:
    s = inventory.settings
    return workflow.WorkflowConfig(
        poll_min=s.poll_interval.min,
        poll_max=s.poll_interval.max,
        scan_timeout=s.timeouts.scan,
        stall_timeout=s.timeouts.stall,
        disinfection_timeout=s.timeouts.disinfection,
        none_grace=min(
            max(30 * s.poll_interval.min, 4 * s.poll_interval.max), s.timeouts.disinfection
        ),
        start_grace=max(10 * s.poll_interval.min, 2.0),
    )


# ---------------------------------------------------------------------------------------------
# Servers


async def _server_worker(run: _Run, server: Server) -> None:
    with structlog.contextvars.bound_contextvars(server=server.name):
        async with run.limits.servers:
            # Lanes are the per-server scan cap: max_concurrent_scans of them share one queue.
            gate = run.limits.gate_for(server)
            client = ServerClient(run.http, server, gate, run.options.retry)
            health = ServerHealth()
            if not server.tls.verify and server.base_url.startswith("https"):
                log.warning(
                    "tls.verify_disabled", hint="certificate checks are off for this server"
                )
            targets, sizes = await _resolve_targets(run, server, client, health)
            run.targets[server.name] = targets
            run.observer.targets_resolved(server.name, targets)
            todo = deque(_start_order([t for t in targets if t not in run.results], sizes))
            cap = server.max_concurrent_scans
            lanes = _Lanes(run, client, health, todo, cap)
            await lanes.run_all(workers=min(cap, 2 * run.options.connections_per_host))


async def _resolve_targets(
    run: _Run, server: Server, client: ServerClient, health: ServerHealth
) -> tuple[tuple[Target, ...], dict[str, float]]:
    """The server's targets in report order, and the accounts' disk use (MiB) when listed."""
    scan_types = run.options.scan_types or server.scan_types
    if run.journal is not None and (known := run.journal.server_targets(server.name)) is not None:
        return _only(run, known), {}
    listed: dict[str, Account] | None = None  # None: no account list (explicit accounts only)
    names = list(server.accounts or ())
    if server.auth.method is AuthMethod.WHM_TOKEN:
        try:
            accounts = await client.list_accounts()
        except TargetError as exc:
            health.record(exc)
            return _unlisted(run, server, scan_types, ErrorInfo(exc.kind, str(exc))), {}
        health.record(None)
        listed = {a.user: a for a in accounts}
        if server.accounts is None:
            names = list(listed)
    found: list[Target] = []
    verdicts: dict[Target, tuple[ErrorKind, str, Status]] = {}
    for name in names:
        verdict = _account_verdict(server, name, listed)
        for scan_type in scan_types:
            target = Target(server.name, name, scan_type)
            found.append(target)
            if verdict is not None:
                verdicts[target] = verdict
    targets = _only(run, tuple(found))  # before recording anything: --only-failed reruns
    for target in targets:
        if (verdict := verdicts.get(target)) is not None:
            _skip(run, target, *verdict)
    sizes = {
        a.user: a.disk_used_mib for a in (listed or {}).values() if a.disk_used_mib is not None
    }
    return _save_targets(run, server, targets), sizes


def _start_order(targets: list[Target], sizes: dict[str, float]) -> list[Target]:
    """Largest accounts first (listaccts' disk use), else inventory order.

    A scan's duration grows with the account's size, and a server's run ends with its last
    scan: starting the longest scans first (the classic longest-processing-time rule) keeps a
    big account from starting last, behind the lane cap or the start-up rush, and setting the
    whole night's finish. The sort is stable: equal or unknown sizes keep their order.
    """
    if not sizes:
        return targets
    return sorted(targets, key=lambda t: -sizes.get(t.account, 0.0))


def _account_verdict(
    server: Server, name: str, listed: dict[str, Account] | None
) -> tuple[ErrorKind, str, Status] | None:
    """Why an account of the inventory is not scanned (None: it is)."""
    for pattern in server.exclude_accounts:
        if fnmatch.fnmatchcase(name, pattern):
            return ErrorKind.SKIPPED, f"excluded by exclude_accounts: {pattern}", Status.SKIPPED
    if listed is None:
        return None
    account = listed.get(name)
    if account is None:
        return ErrorKind.API, "no such account on this server (listaccts)", Status.FAILED
    if account.suspended and not server.include_suspended:
        return ErrorKind.SKIPPED, "account is suspended", Status.SKIPPED
    return None


def _unlisted(
    run: _Run, server: Server, scan_types: tuple[ScanType, ...], error: ErrorInfo
) -> tuple[Target, ...]:
    """The account list itself failed: with `accounts: all`, one row per scan type, account `*`."""
    accounts = server.accounts if server.accounts is not None else (ALL_ACCOUNTS,)
    targets = _only(run, tuple(Target(server.name, a, st) for a in accounts for st in scan_types))
    for target in targets:
        _record(run, TargetResult(target, Status.FAILED, error=error))
    log.error("server.failed", error_kind=error.kind, error=error.message)
    return targets


def _only(run: _Run, targets: tuple[Target, ...]) -> tuple[Target, ...]:
    """With --only-failed: the failed targets, and every account of a server whose account
    list could not be read last time (reported as account `*`)."""
    only = run.options.only
    if only is None:
        return targets
    return tuple(
        t for t in targets if t in only or Target(t.server, ALL_ACCOUNTS, t.scan_type) in only
    )


def _save_targets(run: _Run, server: Server, targets: tuple[Target, ...]) -> tuple[Target, ...]:
    if run.journal is not None:
        run.journal.save_server_targets(server.name, targets)
    return targets


def _skip(run: _Run, target: Target, kind: ErrorKind, message: str, status: Status) -> None:
    _record(run, TargetResult(target, status, error=ErrorInfo(kind, message)))


# ---------------------------------------------------------------------------------------------
# Targets


@dataclass(slots=True, eq=False)
class _Slot:
    """One target in flight: its workflow state and the command that state asks for next."""

    target: Target
    state: workflow.State
    command: Command
    started: datetime


class _Lanes:
    """One server's targets in flight: `max_concurrent_scans` lanes without a task per lane.

    A target spends nearly all its life waiting for its next poll, and a task parked in
    `sleep` holds its coroutine frames, context and cancel scopes (~10 KiB). Here a waiting
    target is just its workflow state in a timer heap; one scheduler task moves due targets
    to a ready queue, and a few worker tasks (enough to keep the server's connections busy)
    take them, run their requests until the workflow asks to wait or finishes, and hand them
    back. The sans-I/O workflow is what makes this possible: a target's whole context is its
    `State`, nothing is left on a stack between two requests.

    Workers: `min(max_concurrent_scans, 2 x connections_per_host)`; more could only queue for a
    connection. A worker in a retry backoff keeps its place, so a server answering with errors
    gets fewer requests for its other targets too, which is what backing off is for.
    """

    def __init__(
        self, run: _Run, client: ServerClient, health: ServerHealth, todo: deque[Target], cap: int
    ) -> None:
        self.run = run
        self.client = client
        self.health = health
        self.todo = todo
        self.cap = cap
        self.live: dict[Target, _Slot] = {}  # started, not finished: what a cancel interrupts
        self.timers: list[tuple[float, int, _Slot]] = []  # (due, tie-break, slot) min-heap
        self.order = itertools.count()
        self.nap: anyio.CancelScope | None = None  # the scheduler's sleep, while it sleeps
        self.next_due = math.inf  # when the scheduler will next wake on its own

    async def run_all(self, workers: int) -> None:
        send, receive = anyio.create_memory_object_stream[_Slot](math.inf)
        async with anyio.create_task_group() as tg:
            for n in range(workers):
                tg.start_soon(self._worker, receive, name=f"worker:{n}")
            try:
                with send:
                    await self._schedule(send)
            except anyio.get_cancelled_exc_class():
                for slot in self.live.values():
                    _record(self.run, _interrupted(slot.state, slot.started))
                raise

    async def _schedule(self, ready: MemoryObjectSendStream[_Slot]) -> None:
        clock, timers = self.run.limits.clock, self.timers
        while True:
            self._fill(ready)
            if not self.live:
                return  # every target taken and finished
            now = clock()
            while timers and timers[0][0] <= now:
                ready.send_nowait(heapq.heappop(timers)[2])
            self.next_due = timers[0][0] if timers else math.inf
            # A plain sleep, cut short by _wake: a deadline cancel scope (move_on_after) would
            # re-check its deadline against uvloop's millisecond clock and spin up to 1 ms.
            # Between two of these naps the scheduler never awaits, so no wake-up is lost.
            with anyio.CancelScope() as self.nap:
                await anyio.sleep(self.next_due - now)
            self.nap = None

    def _park(self, slot: _Slot, wait: Wait) -> None:
        """Into the timer heap; its worker picks it up again (and ticks it) when it is due."""
        due = self.run.limits.clock() + wait.seconds
        heapq.heappush(self.timers, (due, next(self.order), slot))
        if due < self.next_due:
            self._wake()

    def _wake(self) -> None:
        if self.nap is not None:
            self.nap.cancel()
            self.nap = None

    def _fill(self, ready: MemoryObjectSendStream[_Slot]) -> None:
        run = self.run
        while len(self.live) < self.cap and self.todo:
            target = self.todo.popleft()
            if (done := run.journal.result(target) if run.journal else None) is not None:
                _record(run, done)
                continue
            slot = self._begin(target)
            if isinstance(slot.command, Wait):
                self._park(slot, slot.command)
            else:
                ready.send_nowait(slot)

    def _begin(self, target: Target) -> _Slot:
        run = self.run
        run.observer.target_started(target)
        saved = run.journal.state(target) if run.journal else None
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
        slot = _Slot(target, state, command, datetime.now(UTC))
        self.live[target] = slot
        return slot

    async def _worker(self, ready: MemoryObjectReceiveStream[_Slot]) -> None:
        async for slot in ready:
            target = slot.target
            with structlog.contextvars.bound_contextvars(
                account=target.account, scan_type=str(target.scan_type)
            ):
                await self._advance(slot)

    async def _advance(self, slot: _Slot) -> None:
        """Run the slot's requests until its workflow waits (back to the heap) or finishes."""
        run, target = self.run, slot.target
        state, command = slot.state, slot.command
        if isinstance(command, Wait):  # its wait is over
            state, command = workflow.step(state, Tick(), run.clock())
            slot.state, slot.command = state, command
        while not isinstance(command, Finish | Wait):
            if run.journal is not None:
                run.journal.save_state(state)  # before the request it leads to
            reply = await _execute(run, self.client, self.health, target, command)
            before = state.stats
            state, command = workflow.step(state, reply, run.clock())
            slot.state, slot.command = state, command
            if state.stats is not before and state.stats is not None and _own_scan(state):
                # only counters the workflow accepted as this scan's (never stale ones)
                run.observer.scan_progress(target, state.stats)
        if isinstance(command, Wait):
            self._park(slot, command)
            return
        if run.journal is not None:
            run.journal.save_state(state)
        del self.live[target]
        _record(run, _result(state, command, slot.started))
        if self.todo or not self.live:  # a lane is free for the next target, or all are done
            self._wake()


async def _execute(
    run: _Run, client: ServerClient, health: ServerHealth, target: Target, command: Command
) -> Reply:
    if isinstance(command, PlanActions):
        return _plan(run, target, command.files)
    if (blocked := health.blocked()) is not None:
        return RequestFailed(blocked)
    try:
        reply = await _request(client, target, command)
    except TargetError as exc:
        health.record(exc)
        ambiguous = isinstance(exc, ProtocolError | TransportError) and exc.maybe_sent
        log.debug(
            "request.failed", command=type(command).__name__, error_kind=exc.kind, error=str(exc)
        )
        return RequestFailed(ErrorInfo(exc.kind, str(exc)), ambiguous=ambiguous)
    health.record(None)
    return reply


def _own_scan(state: workflow.State) -> bool:
    return state.phase is not workflow.Phase.FOREIGN


async def _request(client: ServerClient, target: Target, command: Command) -> Reply:
    account = target.account
    match command:
        case GetScanStatus():
            return ScanStatusReply(await client.get_scan_status(account))
        case StartScan(scan_type=scan_type):
            await client.start_scan(account, scan_type)
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


def _plan(run: _Run, target: Target, files: tuple[tuple[str, str], ...]) -> ActionsPlanned:
    decided = plan(run.options.policy, target, files, dry_run=run.options.dry_run)
    planned = tuple(
        PlannedFile(f.path, f.virus, f.action, f.send, f.outcome, f.message) for f in decided.files
    )
    count = decided.destructive_count()
    if count and (refusal := run.budget.reserve(target.server, target.account, count)) is not None:
        log.warning("policy.limit", destructive=count, reason=refusal)
        return ActionsPlanned(planned, limit_error=refusal)
    return ActionsPlanned(planned)


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


def _record(run: _Run, result: TargetResult) -> None:
    if result.target in run.results:
        return
    run.results[result.target] = result
    if run.journal is not None and (
        result.error is None or result.error.kind is not ErrorKind.INTERRUPTED
    ):
        run.journal.save_result(result)
    run.observer.target_finished(result)
    target, error = result.target, result.error
    log.info(  # the one summary line of every target, scanned, skipped or failed
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


def _collect(run: _Run) -> list[TargetResult]:
    """Results in inventory order; targets never reached are reported as interrupted."""
    out: list[TargetResult] = []
    for server in run.inventory.servers:
        targets = run.targets.get(server.name)
        if targets is None:
            targets = _planned_targets(run, server)
        for target in targets:
            result = run.results.get(target)
            if result is None:
                result = TargetResult(
                    target,
                    Status.FAILED,
                    error=ErrorInfo(ErrorKind.INTERRUPTED, "run ended before this target started"),
                )
                run.results[target] = result
            out.append(result)
    return out


def _planned_targets(run: _Run, server: Server) -> tuple[Target, ...]:
    scan_types = run.options.scan_types or server.scan_types
    accounts = server.accounts if server.accounts is not None else (ALL_ACCOUNTS,)
    return _only(run, tuple(Target(server.name, a, st) for a in accounts for st in scan_types))
