"""One server's targets driven through their workflows, one request at a time.

    Driver.begin    a target's first state (fresh, or resumed from the journal), or None when
                    it needs no work: already finished, deferred (the finish-by window, the
                    load's patience), or stopped by the run's deadline
    Driver.advance  state -> command -> request -> reply -> state, until the workflow waits
                    (back to the lanes' timer heap) or finishes (its result is recorded)

The workflow decides (workflow.py, pure); this module does what it asks: one client call per
request command, the policy for `PlanActions` (after setting the canary and accepted files
aside: they never reach it), and nothing else. The run-wide things it needs
(journal, observer, clock, the destructive budget...) come from the run (`Fleet`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import structlog

from orchestrator import workflow
from orchestrator.client import ServerClient
from orchestrator.client.health import ServerHealth
from orchestrator.client.parse import scan_in_progress
from orchestrator.engine import policy as policy_mod
from orchestrator.engine.pacer import deferred_result, stopped_result
from orchestrator.engine.policy import plan
from orchestrator.engine.seams import Fleet, Slot
from orchestrator.errors import (
    ApiError,
    ProtocolError,
    ServerDown,
    TargetError,
    TransportError,
)
from orchestrator.model import (
    Action,
    ErrorInfo,
    ErrorKind,
    Outcome,
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
from orchestrator.workflow.pacing import Throughput, predicted_seconds

log = structlog.get_logger("clamfleet")


class Driver:
    """Drives one server's targets through their workflows: state -> command -> request ->
    reply -> state, until the workflow waits (back to the lanes' timer heap) or finishes."""

    def __init__(
        self,
        run: Fleet,
        client: ServerClient,
        health: ServerHealth,
        sizes: Mapping[str, float] | None = None,
        held: Callable[[bool], str | None] = lambda _patience: None,
    ) -> None:
        self.run = run
        self.client = client
        self.health = health
        self.sizes = sizes or {}
        #: Why the server's load keeps every target from starting (None: it does not);
        #: `held(True)`: only once that has lasted load.patience (they are then deferred).
        self.held = held
        self.throughput = Throughput()  # this server's bytes per second per scan, this run

    def begin(self, target: Target) -> tuple[Slot, float | None] | None:
        run = self.run
        journal = run.journal
        if journal is not None and (done := journal.result(target)) is not None:
            run.results_by_target[target] = done  # finished before: reported, not logged again
            run.observer.target_finished(done)
            return None
        saved = journal.state(target) if journal is not None else None
        if run.stopping is not None:  # a resumed target too: its journal state is kept
            run.record(stopped_result(target, f"not started: {run.stopping}"))
            return None
        if saved is None and (deferral := self._deferral(target)) is not None:
            run.record(deferred_result(target, deferral))
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

    def _deferral(self, target: Target) -> str | None:
        """Why a target may not start now (None: it may): the window has closed, the load has
        kept the server's targets waiting past load.patience, or a `home` scan predicted from
        the account's disk use and this server's measured speed would end after the window.
        (Other scan types read part of the account: their size is not known, so they start
        while the window is open.) A resumed target is never deferred: it may be running."""
        window = self.run.window
        now = datetime.now(UTC)
        if window.closed(now):
            # the window closed on targets the load was keeping back: the load is why
            held = self.held(False)
            return window.message() if held is None else f"{held} until the {window.message()}"
        if (held := self.held(True)) is not None:
            return held
        if target.scan_type is not ScanType.HOME:
            return None
        seconds = predicted_seconds(
            self.sizes.get(target.account), self.throughput.bytes_per_second
        )
        if seconds is not None and not window.fits(now, seconds):
            return window.would_not_finish(seconds)
        return None

    def interrupted(self, slot: Slot) -> None:
        self.run.record(_interrupted(slot.state, slot.started, self.run.stopping))

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
            before = state.stats
            reply = await self._execute(slot, command)
            state = slot.state  # disinfect_files marks it `sending` as it leaves
            state, command = workflow.step(state, reply, run.clock())
            slot.state, slot.command = state, command
            if state.stats is not before and state.stats is not None and _own_scan(state):
                # only counters the workflow accepted as this scan's (never stale ones)
                run.observer.scan_progress(target, state.stats)
        if isinstance(command, Finish) and run.journal is not None:
            run.journal.save_state(state)
        return command

    async def _execute(self, slot: Slot, command: Command) -> Reply:
        target = slot.target
        if isinstance(command, PlanActions):
            return plan_actions(self.run, target, command.files)
        health = self.health
        if (blocked := health.blocked()) is not None:
            return RequestFailed(blocked, final=True)
        try:
            if isinstance(command, Disinfect):
                reply: Reply = await self._disinfect(slot, command)
            else:
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
            blocked = health.blocked()
            final = blocked is not None or isinstance(exc, ServerDown)
            failed = _failed(exc, final)
            if isinstance(command, Disinfect) and not failed.ambiguous:
                self._unsent(target, command)  # never sent, or refused without running
            if blocked is not None and blocked.kind is exc.kind:
                return RequestFailed(blocked, final=True)
            return failed
        health.record(None)
        return reply

    async def _disinfect(self, slot: Slot, command: Disinfect) -> DisinfectQueued:
        """disinfect_files; the moment its POST leaves (after any session login) is journaled
        first, and only then do sibling targets count its files as sent."""
        target = slot.target

        def sending() -> None:
            slot.state = workflow.disinfect_sending(slot.state)
            if self.run.journal is not None:
                self.run.journal.save_state(slot.state)
            sent = self.run.sent.setdefault((target.server, target.account), {})
            for path in command.actions:
                sent[path] = target.scan_type

        task_id = await self.client.disinfect(target.account, command.actions, sending=sending)
        log.info("disinfection.queued", files=len(command.actions), task_id=task_id)
        return DisinfectQueued(task_id)

    def _unsent(self, target: Target, command: Disinfect) -> None:
        """disinfect_files did not run: a sibling target may send these files itself."""
        sent = self.run.sent.get((target.server, target.account), {})
        for path in command.actions:
            if sent.get(path) is target.scan_type:
                del sent[path]


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
        case GetDisinfection(last_id=last_id):
            return await client.check_disinfection(account, last_id)
    raise AssertionError(f"not a request: {command!r}")


def plan_actions(run: Fleet, target: Target, files: tuple[tuple[str, str], ...]) -> ActionsPlanned:
    """The policy's plan for the findings; the canary and accepted files are set aside first:
    the policy is not consulted for them and nothing is ever sent for them."""
    exempt = {
        i: why for i, (p, v) in enumerate(files) if (why := run.judge.exemption(target, p, v))
    }
    findings = [f for i, f in enumerate(files) if i not in exempt]
    decided = iter(plan(run.options.policy, target, findings, dry_run=run.options.dry_run).files)
    sent = run.sent.setdefault((target.server, target.account), {})
    planned = tuple(
        _set_aside(path, virus, exempt[i]) if i in exempt else _once(next(decided), sent)
        for i, (path, virus) in enumerate(files)
    )
    count = sum(1 for f in planned if f.send and f.action.destructive)
    if count and (refusal := run.budget.reserve(target.server, target.account, count)) is not None:
        log.warning("policy.limit", destructive=count, reason=refusal)
        return ActionsPlanned(planned, limit_error=refusal)
    # `sent` learns these files when their POST leaves (Driver._disinfect), not here: a plan
    # whose request never went out must not stop a sibling target from sending its files.
    return ActionsPlanned(planned)


def _set_aside(path: str, virus: str, why: str) -> PlannedFile:
    return PlannedFile(path, virus, Action.REPORT, False, str(Outcome.NOT_REQUESTED), why)


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


def _interrupted(
    state: workflow.State, started: datetime, stopping: str | None = None
) -> TargetResult:
    finished = datetime.now(UTC)
    message = f"run interrupted {workflow.doing(state.phase)}"
    if stopping is not None:
        message = (
            f"{stopping}: stopped following it {workflow.doing(state.phase)} (what runs on the"
            " server goes on; --only-failed rescans it)"
        )
    return TargetResult(
        target=state.target,
        status=Status.FAILED,
        scan=state.stats,
        infected_files=workflow.infected_files(state),
        started_at=started,
        finished_at=finished,
        duration_s=(finished - started).total_seconds(),
        api_calls=state.api_calls,
        error=ErrorInfo(ErrorKind.INTERRUPTED, message),
    )
