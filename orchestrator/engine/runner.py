"""Concurrency lives here and in lanes.py: one task group, a task per server, lanes per server.

    FleetRun.run
      └── task group
            ├── server task (web01)  ── holds a max_concurrent_servers slot
            │     targets.select: which targets, which skipped (listaccts)
            │     pacing.LoadController: how many may run now (the cap, or under load.max),
            │       fed by systemloadavg readings in a task of their own
            │     lanes.Lanes: that many targets in flight, one per account; a timer heap of
            │       waiting targets, a ready queue, a few workers running
            │       driver.Driver.advance: state -> command -> request -> reply -> state
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

import anyio
import structlog

from orchestrator import workflow
from orchestrator.client import Http, RetryPolicy, ServerClient
from orchestrator.client.breaker import BreakerTimings
from orchestrator.client.health import Hosts, ServerHealth
from orchestrator.client.parse import Account
from orchestrator.config import REPORT_ONLY, AuthMethod, Inventory, Policy, Server
from orchestrator.engine import targets as targets_mod
from orchestrator.engine.driver import Driver, Journal, Slot
from orchestrator.engine.driver import NullObserver as NullObserver  # the seams, where callers look
from orchestrator.engine.driver import Observer as Observer
from orchestrator.engine.lanes import AccountQueue, Lanes
from orchestrator.engine.limiter import FleetLimits
from orchestrator.engine.pacer import take_reading
from orchestrator.engine.policy import DestructiveBudget
from orchestrator.errors import TargetError
from orchestrator.model import (
    Downtime,
    ErrorInfo,
    ErrorKind,
    ScanType,
    ServerPacing,
    Status,
    Target,
    TargetResult,
)
from orchestrator.workflow.pacing import LoadController, Window

log = structlog.get_logger("clamfleet")

#: The shortest sleep between two looks at whether a load reading is due.
MIN_READING_GAP = 0.05
#: Phases a target is in before any answer of its server was taken (or after one failed it).
_UNANSWERED_PHASES = frozenset(
    {workflow.Phase.SETTLING, workflow.Phase.PRECHECK, workflow.Phase.FAILED}
)


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
    #: The finish-by window, resolved against the run's start (None: from the inventory's
    #: `settings.window`, resolved now; `run` passes the journal's start on --resume).
    window: Window | None = None


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
            # a host that went away is waited for this long (client/breaker.py)
            hosts=Hosts(BreakerTimings(server_down=settings.timeouts.server_down)),
        )
        self.observer: Observer = observer or NullObserver()
        self.journal = journal
        self.clock = clock
        self.budget = DestructiveBudget(options.policy.limits)
        self.cfg = _workflow_config(inventory)
        self.window = options.window or Window.resolve(settings.window, datetime.now(UTC))
        self.controllers: dict[str, LoadController] = {}
        self.targets: dict[str, tuple[Target, ...]] = {}
        self.results_by_target: dict[Target, TargetResult] = {}
        #: per (server, account): paths whose action this run has sent, and with which scan type
        #: (a file found by `home` and `mail` alike is one file: disinfected once)
        self.sent: dict[tuple[str, str], dict[str, ScanType]] = {}
        #: (server, account) whose last finished target may have left a disinfection running:
        #: the account's next target waits for it first (a task's end deletes the infected list)
        self.pending_disinfection: set[tuple[str, str]] = set()

    async def run(self) -> None:
        self._restore_remediation()
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

    def _restore_remediation(self) -> None:
        """--resume: what the interrupted process already sent still counts, for the
        destructive caps and for disinfect-once (a sibling scan type must not send it again),
        and a disinfection it may have left running is still waited for by the next sibling."""
        if self.journal is None:
            return
        for server in self.inventory.servers:
            for target in self.journal.server_targets(server.name) or ():
                state = self.journal.state(target)
                if state is None:
                    continue
                if state.phase in workflow.TERMINAL and workflow.leaves_disinfection_pending(state):
                    self.pending_disinfection.add((target.server, target.account))
                if state.disinfection.limit_error is not None:
                    continue
                sent = [f for f in state.disinfection.planned if f.send]
                if not sent:
                    continue
                destructive = sum(1 for f in sent if f.action.destructive)
                self.budget.reserve(target.server, target.account, destructive)
                paths = self.sent.setdefault((target.server, target.account), {})
                for f in sent:
                    paths.setdefault(f.path, target.scan_type)

    def pacing(self) -> dict[str, ServerPacing]:
        """What load-aware pacing did, per server whose concurrency followed its load."""
        return {name: c.summary() for name, c in self.controllers.items() if c.adaptive}

    def outages(self) -> dict[str, tuple[Downtime, ...]]:
        """Per server (only those whose host went down), each stretch its host was away."""
        out: dict[str, tuple[Downtime, ...]] = {}
        for server in self.inventory.servers:
            if downtimes := self.http.hosts.breaker(server.base_url).downtimes():
                out[server.name] = downtimes
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
                pacer = self._pacer(server)
                driver = Driver(self, client, health, selection.sizes)
                lanes = Lanes[Slot](
                    queue,
                    admit=pacer.may_start,
                    closing=lambda: self.window.closed(datetime.now(UTC)),
                    clock=self.limits.clock,
                    begin=driver.begin,
                    advance=driver.advance,
                    interrupted=driver.interrupted,
                )
                workers = min(server.max_concurrent_scans, 2 * self.options.connections_per_host)
                async with anyio.create_task_group() as tg:
                    if pacer.adaptive:
                        tg.start_soon(self._read_load, server, client, pacer, lanes)
                    await lanes.run(workers=workers)
                    tg.cancel_scope.cancel()  # the readings end with the server's last target

    def _pacer(self, server: Server) -> LoadController:
        """The server's concurrency: its fixed cap, or (with `load.max`) following its load."""
        controller = LoadController(
            server.load.max,
            server.max_concurrent_scans,
            server.load.check_interval,
            origin=self.limits.clock(),
        )
        self.controllers[server.name] = controller
        return controller

    async def _read_load(
        self, server: Server, client: ServerClient, pacer: LoadController, lanes: Lanes[Slot]
    ) -> None:
        """systemloadavg whenever the controller wants a reading (only while targets wait)."""
        clock = self.limits.clock
        while True:
            now = clock()
            if pacer.check_due(now, waiting=bool(lanes.queue)):
                await take_reading(client, pacer, now, len(lanes.live))
                self.observer.server_pacing(server.name, pacer.last_load, pacer.limit())
                lanes.wake()  # the limit may have risen, or the load fallen under max
            due = pacer.next_check_at()
            await anyio.sleep(
                max(MIN_READING_GAP, (due - clock()) if due else pacer.check_interval)
            )

    async def _select(
        self, server: Server, client: ServerClient, health: ServerHealth
    ) -> targets_mod.Selection:
        """The server's targets (listaccts for `whm_token`); skips are recorded at once."""
        scan_types = self._scan_types(server)
        only = self.options.only
        known = self.journal.server_targets(server.name) if self.journal is not None else None
        if known is not None:  # --resume: the targets the interrupted run had resolved
            if self._answered_before(known):
                # a host away now (the run resumed mid-restart) is waited for, not given up
                # as one that never answered
                health.breaker.answered_before()
            selection = targets_mod.Selection(targets_mod.only_failed(known, only))
            return self._resolved(server, selection)
        listed: tuple[Account, ...] | None = None
        if server.auth.method is AuthMethod.WHM_TOKEN:
            try:
                listed = await client.list_accounts()
            except TargetError as exc:
                health.record(exc)
                # a host given up says why (never answered, down since when), like a target
                blocked = health.blocked()
                same = blocked is not None and blocked.kind is exc.kind
                error = blocked if blocked is not None and same else ErrorInfo(exc.kind, str(exc))
                rows = targets_mod.unlisted(server, scan_types, only)
                for target in rows:
                    self.record(TargetResult(target, Status.FAILED, error=error))
                log.error("server.failed", error_kind=error.kind, error=error.message)
                return self._resolved(server, targets_mod.Selection(rows))
            health.record(None)
        selection = targets_mod.select(server, scan_types, listed, only)
        for target, skip in selection.skips.items():
            self.record(skip.result(target))
        if self.journal is not None:
            self.journal.save_server_targets(server.name, selection.targets)
        return self._resolved(server, selection)

    def _resolved(self, server: Server, selection: targets_mod.Selection) -> targets_mod.Selection:
        self.targets[server.name] = selection.targets
        self.observer.targets_resolved(server.name, selection.targets)
        return selection

    def _answered_before(self, targets: tuple[Target, ...]) -> bool:
        """Whether the interrupted run had answers from this server: a target past its first
        status read, or finished with a scan."""
        assert self.journal is not None
        for target in targets:
            state = self.journal.state(target)
            if state is not None and state.phase not in _UNANSWERED_PHASES:
                return True
            done = self.journal.result(target)
            if done is not None and done.scan is not None:
                return True
        return False

    def _in_flight(self, target: Target) -> bool:
        """Whether an interrupted run left this target mid-way (its scan may be running)."""
        if self.journal is None:
            return False
        state = self.journal.state(target)
        return state is not None and state.phase not in workflow.TERMINAL

    # -- results ---------------------------------------------------------------------------------

    def record(self, result: TargetResult) -> None:
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
