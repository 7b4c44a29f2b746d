"""Concurrency lives here and in lanes.py: one task group, a task per server, lanes per server.

    FleetRun.run
      └── task group
            ├── server task (web01)  ── holds a max_concurrent_servers slot
            │     targets.select: which targets, which skipped (listaccts)
            │     pacer.HostScans: the host's scans (entries on one scheme+host+port share
            │       one cap and one pacing.LoadController: the cap, or under load.max), fed
            │       by systemloadavg readings in a task of their own
            │     lanes.Lanes: that many targets in flight, one per account; a timer heap of
            │       waiting targets, a ready queue, a few workers running
            │       driver.Driver.advance: state -> command -> request -> reply -> state
            └── server task (web02) ...
      └── deadline task (settings.max_duration): then no new start; after a grace, cancel

The workflow is pure (workflow.py), so a target between two requests is nothing but its
`State`: no task, no stack. A target's failure is a result, never an exception: one server's
trouble cannot stop another. Cancellation (SIGINT/SIGTERM, via the CLI's cancel scope) turns
targets in flight into `interrupted` results and is then re-raised, never swallowed.

The run's deadline (`settings.max_duration`, `run --max-duration`), counted from the moment the
run starts: no new scan starts after it (targets not started are `interrupted`, "not started:
max_duration 6h reached"); scans in flight are followed for a grace of 10 % of max_duration, at
most GRACE_MAX (60 s), so those about to end still report; then they are interrupted like on
SIGTERM, and the run ends normally: the report is written, cron needs no `timeout(1)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import anyio
import structlog

from orchestrator import workflow
from orchestrator.client import Http, ServerClient
from orchestrator.client.breaker import BreakerTimings
from orchestrator.client.health import Hosts, ServerHealth
from orchestrator.client.parse import Account
from orchestrator.config import AuthMethod, Inventory, Server
from orchestrator.config.durations import format_duration
from orchestrator.config.hosts import HostKey
from orchestrator.engine import targets as targets_mod
from orchestrator.engine.driver import Driver
from orchestrator.engine.exempt import Judge
from orchestrator.engine.lanes import AccountQueue, Lanes
from orchestrator.engine.limiter import FleetLimits
from orchestrator.engine.options import RunOptions as RunOptions  # where callers look
from orchestrator.engine.options import grace_for, workflow_config
from orchestrator.engine.pacer import HostScans, follow_load, load_message
from orchestrator.engine.policy import DestructiveBudget
from orchestrator.engine.seams import Journal, Slot
from orchestrator.engine.seams import NullObserver as NullObserver  # where callers look
from orchestrator.engine.seams import Observer as Observer
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
from orchestrator.workflow.pacing import LoadController
from orchestrator.workflow.window import Window, in_zone

log = structlog.get_logger("clamfleet")


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
        self.limits = FleetLimits(settings, inventory_servers=inventory.servers)
        self.http = Http(
            request_timeout=settings.timeouts.request,
            limit_per_host=options.connections_per_host,
            run_id=options.run_id,
            # a host that went away is waited for this long (client/breaker.py)
            hosts=Hosts(
                BreakerTimings(server_down=settings.timeouts.server_down), self._host_reached
            ),
        )
        self.observer: Observer = observer or NullObserver()
        self.journal = journal
        self.clock = clock
        self.budget = DestructiveBudget(options.policy.limits)
        self.judge = Judge.for_run(
            inventory.servers, options.accepted, options.accepted_on or date.today()
        )
        self.cfg = workflow_config(inventory)
        self.window = options.window or Window.resolve(settings.window, datetime.now(UTC))
        self.controllers: dict[str, LoadController] = {}
        self.hosts: dict[HostKey, HostScans] = {}
        #: Set when max_duration is reached ("max_duration 6h reached"): nothing starts any more.
        self.stopping: str | None = None
        self.targets: dict[str, tuple[Target, ...]] = {}
        self.results_by_target: dict[Target, TargetResult] = {}
        #: per (server, account): paths whose action this run has sent (its POST left), and with
        #: which scan type (a file found by `home` and `mail` alike is one file: disinfected once)
        self.sent: dict[tuple[str, str], dict[str, ScanType]] = {}
        #: (server, account) whose last finished target may have left a disinfection running:
        #: the account's next target waits for it first (a task's end deletes the infected list)
        self.pending_disinfection: set[tuple[str, str]] = set(options.settle)

    async def run(self) -> None:
        self._restore_remediation()
        self.limits.bind_loop_clock()
        deadline = self.inventory.settings.max_duration
        async with self.http, anyio.create_task_group() as outer:
            with anyio.CancelScope() as fleet:  # cancelled by the deadline (after its grace)
                if deadline is not None:
                    outer.start_soon(self._deadline, deadline, fleet, name="deadline")
                async with anyio.create_task_group() as tg:
                    for server in self.inventory.servers:
                        tg.start_soon(self._server, server, name=f"server:{server.name}")
            outer.cancel_scope.cancel()  # the deadline task ends with the fleet

    async def _deadline(self, seconds: float, fleet: anyio.CancelScope) -> None:
        """max_duration: stop starting, follow what runs for the grace, then interrupt it."""
        await anyio.sleep(seconds)
        grace = grace_for(seconds)
        self.stopping = f"max_duration {format_duration(seconds)} reached"
        log.warning(
            "run.deadline",
            max_duration_s=seconds,
            grace_s=grace,
            hint=f"no new scan starts; scans in flight are followed for {grace:g} s more, then"
            " reported interrupted, and the report is written",
        )
        for host in self.hosts.values():
            host.wake()  # the queued targets are reported at once
        await anyio.sleep(grace)
        fleet.cancel()

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
                    if self.stopping is not None:
                        message = f"not started: {self.stopping}"
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
                if not workflow.may_have_sent(state):
                    # never left (the resumed target sends it itself), or refused for sure:
                    # a sibling target must not call these files "already sent"
                    continue
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
                if self.stopping is not None:
                    return  # past the deadline: not even listaccts (its targets: interrupted)
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
                order = targets_mod.start_order(todo, selection.sizes, first, selection.canary)
                queue = AccountQueue(order)
                host = self._host(server)
                # only WHM entries read the load; cPanel logins on the host share its cap
                reads = server.auth.method is AuthMethod.WHM_TOKEN and host.controller.adaptive
                driver = Driver(
                    self,
                    client,
                    health,
                    selection.sizes,
                    held=lambda patience: self._held(host, reads, patience),
                )
                lanes = Lanes[Slot](
                    queue,
                    admit=lambda _running: host.may_start(reads),
                    closing=lambda: self._closing(host, reads),
                    released=host.wake,
                    clock=self.limits.clock,
                    begin=driver.begin,
                    advance=driver.advance,
                    interrupted=driver.interrupted,
                )
                cap = min(server.max_concurrent_scans, host.controller.cap)
                workers = min(cap, 2 * self.options.connections_per_host)
                host.join(lanes)
                try:
                    async with anyio.create_task_group() as tg:
                        if reads:
                            tg.start_soon(self._read_load, server, client, host)
                        await lanes.run(workers=workers)
                        tg.cancel_scope.cancel()  # the readings end with the server's last target
                finally:
                    host.leave(lanes)

    def _host(self, server: Server) -> HostScans:
        """The scans of `server`'s host, shared with the other entries on it (one cap, one
        load controller: its fixed cap, or, with `load.max`, following its load)."""
        limits = self.limits.host(server)
        host = self.hosts.get(limits.key)
        if host is None:
            controller = LoadController(
                limits.load.max,
                limits.max_concurrent_scans,
                limits.load.check_interval,
                time_constant=limits.load.time_constant,
                patience=limits.load.patience,
                origin=self.limits.clock(),
            )
            host = self.hosts[limits.key] = HostScans(limits, controller)
        if server.auth.method is AuthMethod.WHM_TOKEN or not host.controller.adaptive:
            self.controllers[server.name] = host.controller
        return host

    def _closing(self, host: HostScans, reads: bool) -> bool:
        """No target of this entry may start any more: deadline, window, or the load's
        patience ran out (what each queued target then becomes: Driver.begin)."""
        if self.stopping is not None or self.window.closed(datetime.now(UTC)):
            return True
        return reads and host.controller.exhausted(self.limits.clock())

    def _held(self, host: HostScans, reads: bool, patience: bool) -> str | None:
        """While the load keeps every target of the host back, why ("load 3.6 over max 3 since
        02:10"); with `patience`, only once that has lasted load.patience. None otherwise."""
        controller = host.controller
        now = self.limits.clock()
        since = controller.blocked_since
        if not reads or since is None or (patience and not controller.exhausted(now)):
            return None
        wall = in_zone(datetime.now(UTC), self.inventory.settings.window.timezone)
        return load_message(controller, wall - timedelta(seconds=now - since), patience=patience)

    async def _read_load(self, server: Server, client: ServerClient, host: HostScans) -> None:
        await follow_load(server.name, client, host, self.limits.clock, self.observer)

    async def _select(
        self, server: Server, client: ServerClient, health: ServerHealth
    ) -> targets_mod.Selection:
        """The server's targets (listaccts for `whm_token`); skips are recorded at once."""
        scan_types = self._scan_types(server)
        only = self.options.only
        known = self.journal.server_targets(server.name) if self.journal is not None else None
        # --resume: the targets the interrupted run had resolved
        if known is not None and self.journal is not None:
            if self.journal.answered_before(known, health.breaker.label):
                # a host away now (the run resumed mid-restart) is waited for, not given up
                # as one that never answered
                health.breaker.answered_before()
            canary = targets_mod.canary_target(server, known)
            kept = targets_mod.only_failed(known, only, keep=canary)
            return self._resolved(server, targets_mod.Selection(kept, canary=canary))
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

    def _host_reached(self, host: str) -> None:
        """A host's first answer in this run, kept in the journal (`_select` on --resume)."""
        if self.journal is not None:
            self.journal.save_host_answered(host)

    def _in_flight(self, target: Target) -> bool:
        """Whether an interrupted run left this target mid-way (its scan may be running)."""
        if self.journal is None:
            return False
        state = self.journal.state(target)
        return state is not None and state.phase not in workflow.TERMINAL

    # -- results ---------------------------------------------------------------------------------

    def _stopped_in_flight(self, result: TargetResult) -> bool:
        """An `interrupted` result this run made as it stopped with the target in flight: not
        journaled, so a --resume goes on from the saved state. (A workflow verdict of kind
        `interrupted`, e.g. a resumed disinfection cPanel never showed, ends in a terminal
        state and is journaled like any result.)"""
        if result.error is None or result.error.kind is not ErrorKind.INTERRUPTED:
            return False
        assert self.journal is not None
        state = self.journal.state(result.target)
        return state is None or state.phase not in workflow.TERMINAL

    def record(self, result: TargetResult) -> None:
        if result.target in self.results_by_target:
            return
        result = self.judge.mark(result)  # the canary and accepted files are no infection
        self.results_by_target[result.target] = result
        if self.journal is not None and not self._stopped_in_flight(result):
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
        infected=len(result.findings),
        duration_s=round(result.duration_s or 0.0, 1),
        api_calls=result.api_calls,
        error_kind=str(error.kind) if error else None,
        error=error.message if error else None,
    )
