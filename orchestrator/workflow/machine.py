"""The scan workflow of one target as a pure state machine (sans-I/O, no clock).

    begin(target, cfg, now) -> (state, command)
    step(state, reply, now) -> (state, command)
    resume(state, now)      -> (state, command)     after a crash, from the journal

The state is a frozen value (serialisable, see `to_dict`), so the journal can persist it after
every transition. Phases:

    PRECHECK ─► STARTING ─► SCANNING ─► LISTING ─► PLANNING ─► DISINFECTING ─► FOLLOWING ─► DONE
       │           │ ambiguous            ▲                          │ ambiguous      ▲
       ▼           ▼                      │                          └────────────────┘
    FOREIGN     VERIFY_START ─────────────┘           any phase ─► FAILED (sticky)

Which replies a phase takes is one table, `ACCEPTS`: `step` sends any other reply to FAILED with
an internal error (a bug in the driver, never a guess), and each phase's handler `match`es only
what it accepts.

PRECHECK reads the status before starting: its `time_started` is the baseline that tells our
scan's status from the stale one of an earlier scan, and a scan already running (FOREIGN: started
by someone else, or left by a crashed run) is waited for instead of colliding with it.
VERIFY_START follows a start_scan whose answer was lost: it reads the status for up to
`start_grace` (the previous scan's status may linger) before sending start_scan once more.

The state is a few records: `StartAttempts` (getting start_scan to take), `ScanProgress` (what
the status reads showed; when to poll next is `poll_schedule`'s maths over it), the infected
list, `Disinfection` (the plan and what cPanel did with it), and the verdict once terminal.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from orchestrator.workflow import codec
from orchestrator.config import Settings
from orchestrator.workflow.events import (
    ActionsPlanned,
    Command,
    Disinfect,
    DisinfectionRecord,
    DisinfectionStatusReply,
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
    StatusData,
    Tick,
    Verdict,
    Wait,
)
from orchestrator.model import (
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    Outcome,
    ScanStats,
    Status,
    Target,
)
from orchestrator.workflow.poll_schedule import ScanProgress, backoff, next_poll_delay


class Phase(StrEnum):
    SETTLING = "settling"
    PRECHECK = "precheck"
    FOREIGN = "foreign"
    STARTING = "starting"
    VERIFY_START = "verify_start"
    SCANNING = "scanning"
    LISTING = "listing"
    PLANNING = "planning"
    DISINFECTING = "disinfecting"
    FOLLOWING = "following"
    DONE = "done"
    FAILED = "failed"


TERMINAL = frozenset({Phase.DONE, Phase.FAILED})

#: The replies each live phase takes; any other reply is a driver bug (sticky FAILED, internal).
#: Tick: the wait the phase asked for is over. RequestFailed: its request failed for good.
ACCEPTS: dict[Phase, tuple[type, ...]] = {
    Phase.SETTLING: (DisinfectionStatusReply, RequestFailed, Tick),
    Phase.PRECHECK: (ScanStatusReply, RequestFailed, Tick),
    Phase.FOREIGN: (ScanStatusReply, RequestFailed, Tick),
    Phase.STARTING: (ScanStarted, ScanBusy, RequestFailed),
    Phase.VERIFY_START: (ScanStatusReply, RequestFailed, Tick),
    Phase.SCANNING: (ScanStatusReply, RequestFailed, Tick),
    Phase.LISTING: (InfectedListReply, RequestFailed),
    Phase.PLANNING: (ActionsPlanned,),  # the runner's own decision: it cannot fail
    Phase.DISINFECTING: (DisinfectQueued, RequestFailed),
    Phase.FOLLOWING: (DisinfectionStatusReply, RequestFailed, Tick),
}


@dataclass(frozen=True, slots=True)
class WorkflowConfig:
    poll_min: float = 2.0
    poll_max: float = 30.0
    scan_timeout: float = 21600.0
    stall_timeout: float = 1800.0
    disinfection_timeout: float = 3600.0
    #: How long `none` is read as "queued, not started yet" after disinfect_files succeeded.
    none_grace: float = 120.0
    #: start_scan is sent at most this often for one target (only after a status check).
    max_start_attempts: int = 2
    #: After a start_scan whose answer was lost, how long the previous scan's status may still
    #: be shown (the stale window) before the start is taken as not having happened.
    start_grace: float = 10.0
    #: A status that looks freshly reset (not complete, nothing counted) and does not move for
    #: this long is taken as no scan at all: what a refused start_scan leaves behind (cPanel
    #: resets the status before it checks anything), e.g. while clamd was down. A real scan in
    #: its counting pass looks the same; trying start_scan then tells them apart (refused).
    reset_grace: float = 60.0
    #: start_scan refused as "already in progress" (a scan this run did not start) this many
    #: times for one target: give up with kind `api`.
    max_busy_refusals: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkflowConfig:
        """The workflow's settings from the inventory's: the graces follow the poll interval,
        so a fleet polled slowly (or a test polled fast) gets waits in proportion."""
        poll, timeouts = settings.poll_interval, settings.timeouts
        return cls(
            poll_min=poll.min,
            poll_max=poll.max,
            scan_timeout=timeouts.scan,
            stall_timeout=timeouts.stall,
            disinfection_timeout=timeouts.disinfection,
            # cPanel deletes the disinfection state file once the task is queued, so `none`
            # is all it says until the task queue starts it. A busy queue may take a while:
            # wait for 30 fast polls or 4 slow ones, whichever is longer. Capped at the
            # disinfection timeout, which bounds the whole wait anyway.
            none_grace=min(max(30 * poll.min, 4 * poll.max), timeouts.disinfection),
            # The previous scan's status may still be read for a few polls after a start that
            # took; 10 polls. At least 2 s, so a test's tiny poll_min still outlasts it.
            start_grace=max(10 * poll.min, 2.0),
            # A real counting pass shows the same all-zero status as a refused start's reset:
            # give it 10 fast polls or 5 slow ones (whichever is longer) to move before
            # start_scan is tried to tell them apart. At least 2 s, as above.
            reset_grace=max(10 * poll.min, 5 * poll.max, 2.0),
        )


@dataclass(frozen=True, slots=True)
class StartAttempts:
    """Getting start_scan to take: sent at most `max_start_attempts` times, after a read."""

    baseline: int | None = None  # time_started of the status seen before our start_scan
    attempts: int = 0
    busy_refusals: int = 0  # refused "already in progress": not attempts of ours
    sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class Disinfection:
    """The policy's plan for the infected files, and what cPanel reported doing with it."""

    planned: tuple[PlannedFile, ...] = ()
    limit_error: str | None = None  # a destructive-action cap refused this target
    queued_at: float | None = None  # disinfect_files was (or may have been) queued then
    ambiguous: bool = False  # its answer was lost: maybe queued, never resent
    last_id: int | None = None
    records: tuple[DisinfectionRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class State:
    target: Target
    cfg: WorkflowConfig
    phase: Phase = Phase.PRECHECK
    api_calls: int = 0
    started_at: float = 0.0
    last_wait: float = 0.0
    start: StartAttempts = field(default_factory=StartAttempts)
    scan: ScanProgress = field(default_factory=ScanProgress)
    infected: tuple[tuple[str, str], ...] = ()  # (path, virus), HTML-unescaped
    disinfection: Disinfection = field(default_factory=Disinfection)
    error: ErrorInfo | None = None
    verdict: Verdict | None = None
    #: SETTLING since then: a sibling target's disinfection may still run (None: never settled)
    settle_since: float | None = None

    @property
    def stats(self) -> ScanStats | None:
        """The counters the last status read showed (of the scan being watched)."""
        return self.scan.stats


# ---------------------------------------------------------------------------------------------
# Entry points


def begin(
    target: Target, cfg: WorkflowConfig, now: float, *, settle: bool = False
) -> tuple[State, Command]:
    """A target's first command. `settle`: a sibling target of the account stopped following
    a disinfection that may still run: wait for it before anything else (see `_on_settling`)."""
    state = State(target=target, cfg=cfg, started_at=now)
    if settle:
        settling = replace(state, phase=Phase.SETTLING, settle_since=now)
        return _request(settling, GetDisinfection(None))
    return _request(state, GetScanStatus())


def step(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if state.phase in TERMINAL:
        return state, Finish(_verdict(state))
    if not isinstance(reply, ACCEPTS[state.phase]):
        return _unexpected(state, reply)
    return _HANDLERS[state.phase](state, reply, now)


def resume(state: State, now: float) -> tuple[State, Command]:
    """Continue from a journaled state; never resends a request whose fate is unknown."""
    match state.phase:
        case Phase.DONE | Phase.FAILED:
            return state, Finish(_verdict(state))
        case Phase.SETTLING:
            return _request(state, GetDisinfection(None))
        case Phase.STARTING | Phase.VERIFY_START:
            return _request(replace(state, phase=Phase.VERIFY_START), GetScanStatus())
        case Phase.PRECHECK | Phase.FOREIGN:
            return _request(state, GetScanStatus())
        case Phase.SCANNING:
            # sent now: the round trip that bounds the next wait is not the time spent down
            return _poll_status(state, now)
        case Phase.LISTING:
            return _request(state, ListInfected())
        case Phase.PLANNING:
            return state, PlanActions(state.infected)
        case Phase.DISINFECTING:
            queued_at = state.disinfection.queued_at or now
            following = _following(state, queued_at=queued_at, ambiguous=True)
            return _request(following, _poll_disinfection(following))
        case Phase.FOLLOWING:
            return _request(state, _poll_disinfection(state))


# ---------------------------------------------------------------------------------------------
# Phase handlers: each gets only the replies ACCEPTS lists for its phase. The `_unexpected`
# after each `match` is reached only if the table and a handler disagree: a FAILED verdict
# then too, never a crash (tests/test_workflow_replies.py keeps them in step).


def _on_settling(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    """Wait for a disinfection a sibling target left running before starting a scan.

    cPanel keeps one infected list per account, and a disinfection task deletes it when it
    ends (cpanel-api.md 3.5): a scan started while a sibling's task may still run could have
    its own list deleted under it and read as clean. So: `done` (a done record in the log)
    or `none` for the whole `none_grace` (nothing queued, or a task that never started) lets
    the scan go; still queued or running after `disinfection_timeout` fails the target (kind
    `api`: not scanned, rather than a result that cannot be trusted)."""
    since = state.settle_since if state.settle_since is not None else now
    cfg = state.cfg
    match reply:
        case Tick():
            return _request(state, GetDisinfection(None))
        case DisinfectionStatusReply(status=status, details=details):
            if status == "done" or any(r.type == "done" for r in details):
                return _settled(state)
            if status == "none" and now - since >= cfg.none_grace:
                return _settled(state)
        case RequestFailed():
            pass  # lost reads are why the sibling stopped following: keep asking
        case _:
            return _unexpected(state, reply)
    if now - since >= cfg.disinfection_timeout:
        message = (
            f"not scanned: a disinfection of this account was still not done after "
            f"{cfg.disinfection_timeout:g}s (it would delete this scan's infected list)"
        )
        return _fail(state, ErrorInfo(ErrorKind.API, message))
    delay = min(cfg.poll_max, max(cfg.poll_min, state.last_wait * 1.5))
    return _wait(state, min(delay, since + cfg.disinfection_timeout - now))


def _settled(state: State) -> tuple[State, Command]:
    return _request(replace(state, phase=Phase.PRECHECK, settle_since=None), GetScanStatus())


def leaves_disinfection_pending(state: State) -> bool:
    """Whether a finished target may have left a disinfection running at the server: queued
    (or maybe queued) and never seen done, or a settle that ended before the sibling's did."""
    if state.settle_since is not None:  # still settling when it ended
        return True
    task = state.disinfection
    return task.queued_at is not None and not any(r.type == "done" for r in task.records)


def _on_precheck(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case Tick():  # back here after a start_scan the server answered with an error
            return _request(state, GetScanStatus())
        case RequestFailed(error=error):
            return _fail(state, error)
        case ScanStatusReply(data=data) if data is not None and not data.scan_complete:
            # Someone else's scan, or one a crashed run left: wait for it, never collide with it.
            scan = replace(state.scan, progress_at=now, stats=data.stats())
            return _wait(replace(state, phase=Phase.FOREIGN, scan=scan), state.cfg.poll_min)
        case ScanStatusReply(data=data):
            return _start(_with_baseline(state, data), now)
    return _unexpected(state, reply)


def _on_foreign(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case Tick():
            return _request(state, GetScanStatus())
        case RequestFailed(error=error):
            return _fail(state, error)
        case ScanStatusReply(data=data) if data is None or data.scan_complete:
            return _start(_with_baseline(state, data), now)
        case ScanStatusReply(data=StatusData() as data):
            return _watch_foreign(state, data, now)
    return _unexpected(state, reply)


def _watch_foreign(state: State, data: StatusData, now: float) -> tuple[State, Command]:
    moved = _progress_moved(state.scan.stats, data)
    progress_at = state.scan.progress_at
    progress_at = now if moved or progress_at is None else progress_at
    idle = now - progress_at
    if idle >= state.cfg.stall_timeout or (_looks_reset(data) and idle >= state.cfg.reset_grace):
        # A dead scan (its child died), or no scan at all behind a reset status: cPanel lets a
        # new start_scan through (and refuses it, harmlessly, if a scan is in its counting pass).
        return _start(_with_baseline(state, data), now)
    scan = replace(state.scan, stats=data.stats(), progress_at=progress_at)
    state = replace(state, scan=scan)
    return _wait(state, _backoff(state))


def _looks_reset(data: StatusData) -> bool:
    """What start_scan writes first: not complete, nothing counted (or a counting pass)."""
    return not data.scan_complete and data.scanned_file_count == 0 and data.total_file_count == 0


def _start(state: State, now: float) -> tuple[State, Command]:
    if state.start.attempts >= state.cfg.max_start_attempts:
        return _fail(state, ErrorInfo(ErrorKind.UNREACHABLE, "start_scan never took effect"))
    start = replace(state.start, attempts=state.start.attempts + 1, sent_at=now)
    state = replace(state, phase=Phase.STARTING, start=start, last_wait=0.0)
    return _request(state, StartScan(state.target.scan_type))


def _on_starting(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case ScanStarted():
            return _scanning(state, now)
        case ScanBusy():
            return _on_busy(state, reply, now)
        case RequestFailed(ambiguous=True):
            # The request may have reached cPanel: read the status before deciding anything.
            return _request(replace(state, phase=Phase.VERIFY_START), GetScanStatus())
        case RequestFailed(error=error) if (
            error.kind is ErrorKind.UNREACHABLE
            and state.start.attempts < state.cfg.max_start_attempts
        ):
            # The server answered (5xx, 429) or was never reached: start_scan did not run.
            # Not resent blindly: after the wait the server asked for, read the status again.
            delay = reply.retry_after if reply.retry_after is not None else _backoff(state)
            return _wait(replace(state, phase=Phase.PRECHECK), max(delay, state.cfg.poll_min))
        case RequestFailed(error=error):
            # status 0: no new scan (and cPanel has reset the status file): nothing to poll.
            return _fail(state, _attempted(state, error))
    return _unexpected(state, reply)


def _attempted(state: State, error: ErrorInfo) -> ErrorInfo:
    if state.start.attempts < 2:
        return error
    return ErrorInfo(error.kind, f"{error.message} ({state.start.attempts} attempts)")


def _on_busy(state: State, reply: ScanBusy, now: float) -> tuple[State, Command]:
    """A scan this target did not start holds the account (someone started one in cPanel's UI
    between our status read and our start): follow it to its end, then start ours. A refused
    start is no attempt of ours (it did not run), but a few of them end the target."""
    refusals = state.start.busy_refusals + 1
    if refusals >= state.cfg.max_busy_refusals:
        message = (
            f"start_scan refused {refusals} times: a scan this run did not start keeps "
            f"running on this account ({reply.message})"
        )
        return _fail(state, ErrorInfo(ErrorKind.API, message))
    start = replace(state.start, busy_refusals=refusals, attempts=state.start.attempts - 1)
    scan = replace(state.scan, progress_at=now, stats=None)
    foreign = replace(state, phase=Phase.FOREIGN, start=start, scan=scan, last_wait=0.0)
    return _wait(foreign, state.cfg.poll_min)


def _on_verify_start(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case Tick():
            return _request(state, GetScanStatus())
        case RequestFailed(error=error):
            return _fail(state, error)
        case ScanStatusReply(data=data) if _is_ours(state, data):
            state = _scanning(state, now)[0]
            return _on_scanning(state, reply, now)
        case ScanStatusReply():
            # Still the previous scan's status. A start that took may not show yet (the stale
            # window), and sending another would only meet "already in progress": look again
            # for a while.
            sent = state.start.sent_at if state.start.sent_at is not None else now
            if now - sent < state.cfg.start_grace:
                return _wait(state, min(state.cfg.poll_min, state.cfg.start_grace))
            return _start(state, now)
    return _unexpected(state, reply)


def _scanning(state: State, now: float) -> tuple[State, Command]:
    # A fresh record: nothing a foreign scan (or an earlier status) showed is ours.
    state = replace(
        state,
        phase=Phase.SCANNING,
        scan=ScanProgress(started_at=now, progress_at=now),
        last_wait=0.0,
    )
    return _wait(state, state.cfg.poll_min)


def _on_scanning(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case Tick():
            return _poll_status(state, now)
        case RequestFailed(error=error):
            return _fail(state, error)
        case ScanStatusReply(data=data):
            ours = _is_ours(state, data)
            if data is not None and ours:
                state = _track_progress(state, data, now)
                if data.scan_complete:
                    return _request(replace(state, phase=Phase.LISTING), ListInfected())
            return _check_deadlines_then_wait(state, now, stale=not ours)
    return _unexpected(state, reply)


def _poll_status(state: State, now: float) -> tuple[State, Command]:
    """Read our scan's status; when it was sent bounds the round trip (poll_schedule)."""
    return _request(replace(state, scan=replace(state.scan, poll_sent_at=now)), GetScanStatus())


def _is_ours(state: State, data: StatusData | None) -> bool:
    """Whether a status belongs to the scan this run started (not an earlier scan's leftovers)."""
    if data is None:
        return False
    if state.scan.seen_running:
        return True
    same = data.time_started is not None and data.time_started == state.start.baseline
    if not data.scan_complete:
        # Only one scan per account, so a running one after our start took is ours; but the
        # reset status read before the start (a refused start's leftover: all zero, the same
        # time_started) is not a scan at all, e.g. when our start's request never ran.
        return not (same and _looks_reset(data))
    return data.time_started is not None and not same


def _track_progress(state: State, data: StatusData, now: float) -> State:
    scan = state.scan
    moved = _progress_moved(scan.stats, data)
    anchor = scan.rate_anchor
    if anchor is None and data.total_file_count > 0:
        anchor = (now, data.scanned_file_count, data.scanned_file_size)
    progress = replace(
        scan,
        seen_running=scan.seen_running or not data.scan_complete,
        stats=data.stats(),
        progress_at=now if moved else scan.progress_at,
        progress_after=scan.last_poll_sent_at if moved else scan.progress_after,
        last_poll_sent_at=scan.poll_sent_at,
        rate_anchor=anchor,
        total_bytes=data.total_bytes or scan.total_bytes,
    )
    return replace(state, scan=progress)


def _progress_moved(old: ScanStats | None, data: StatusData) -> bool:
    if old is None:
        return True
    return (old.scanned_file_count, old.scanned_file_size, old.total_file_count) != (
        data.scanned_file_count,
        data.scanned_file_size,
        data.total_file_count,
    )


def _check_deadlines_then_wait(state: State, now: float, *, stale: bool) -> tuple[State, Command]:
    cfg = state.cfg
    started = state.scan.started_at if state.scan.started_at is not None else now
    if now - started >= cfg.scan_timeout:
        return _fail(
            state, ErrorInfo(ErrorKind.TIMEOUT, f"scan not complete after {cfg.scan_timeout:g}s")
        )
    progress_at = state.scan.progress_at if state.scan.progress_at is not None else started
    if now - progress_at >= cfg.stall_timeout:
        message = f"no scan progress for {cfg.stall_timeout:g}s"
        return _fail(state, ErrorInfo(ErrorKind.STALLED, message))
    if stale:
        delay = cfg.poll_min
    else:
        delay = next_poll_delay(
            state.scan, now, poll_min=cfg.poll_min, poll_max=cfg.poll_max, last_wait=state.last_wait
        )
    # Never sleep past a deadline: the poll after it is what notices it.
    delay = min(delay, started + cfg.scan_timeout - now, progress_at + cfg.stall_timeout - now)
    return _wait(state, max(delay, 0.0))


def _backoff(state: State) -> float:
    return backoff(state.last_wait, state.cfg.poll_min, state.cfg.poll_max)


def _on_listing(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case RequestFailed(error=error):
            return _fail(state, error)
        case InfectedListReply(files=listed):
            files = tuple(dict.fromkeys((html.unescape(p), html.unescape(v)) for p, v in listed))
            state = replace(state, infected=files)
            if not files:
                return _done(state)
            return replace(state, phase=Phase.PLANNING), PlanActions(files)
    return _unexpected(state, reply)


def _on_planning(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case ActionsPlanned(files=planned, limit_error=limit_error):
            plan = replace(state.disinfection, planned=planned, limit_error=limit_error)
            state = replace(state, disinfection=plan)
            if limit_error is not None:
                return _done(replace(state, error=ErrorInfo(ErrorKind.POLICY_LIMIT, limit_error)))
            actions = {f.path: f.action for f in planned if f.send}
            if not actions:
                return _done(state)
            return _request(replace(state, phase=Phase.DISINFECTING), Disinfect(actions))
    return _unexpected(state, reply)


def _on_disinfecting(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case DisinfectQueued():
            following = _following(state, queued_at=now, ambiguous=False)
            return _wait(replace(following, last_wait=0.0), state.cfg.poll_min)
        case RequestFailed(ambiguous=True):
            # Never resent: follow whatever cPanel queued, if anything.
            following = _following(state, queued_at=now, ambiguous=True)
            return _request(following, _poll_disinfection(following))
        case RequestFailed(error=error):
            return _done(replace(state, error=error))
    return _unexpected(state, reply)


def _following(state: State, *, queued_at: float, ambiguous: bool) -> State:
    """FOLLOWING a disinfection queued at `queued_at` (`ambiguous`: maybe queued)."""
    task = replace(state.disinfection, queued_at=queued_at, ambiguous=ambiguous)
    return replace(state, phase=Phase.FOLLOWING, disinfection=task)


def _on_following(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case Tick():
            return _request(state, _poll_disinfection(state))
        case RequestFailed(error=error):
            return _done(replace(state, error=error))
        case DisinfectionStatusReply(status=status, details=details):
            return _follow(_absorb_records(state, details), status, now)
    return _unexpected(state, reply)


def _follow(state: State, status: str, now: float) -> tuple[State, Command]:
    task = state.disinfection
    if any(r.type == "done" for r in task.records):
        return _done(state)
    queued_at = task.queued_at if task.queued_at is not None else now
    cfg = state.cfg
    if status == "none" and now - queued_at >= cfg.none_grace:
        why = "disinfection state unknown after an interrupted request; not resent"
        if not task.ambiguous:
            why = f"disinfection task did not start within {cfg.none_grace:g}s"
        return _done(replace(state, error=ErrorInfo(ErrorKind.API, why)))
    if now - queued_at >= cfg.disinfection_timeout:
        message = f"disinfection not done after {cfg.disinfection_timeout:g}s"
        return _done(replace(state, error=ErrorInfo(ErrorKind.TIMEOUT, message)))
    delay = min(cfg.poll_max, max(cfg.poll_min, state.last_wait * 1.5))
    return _wait(state, min(delay, queued_at + cfg.disinfection_timeout - now))


def _poll_disinfection(state: State) -> GetDisinfection:
    return GetDisinfection(state.disinfection.last_id)


def _absorb_records(state: State, details: tuple[DisinfectionRecord, ...]) -> State:
    records = state.disinfection.records
    known = {r.id for r in records}
    fresh = tuple(r for r in details if r.id not in known)
    if not fresh:
        return state
    # The workflow ends on the done record, so it never asks past it (which answers `none`).
    last_id = max(r.id for r in (*records, *fresh))
    task = replace(state.disinfection, records=records + fresh, last_id=last_id)
    return replace(state, disinfection=task)


# ---------------------------------------------------------------------------------------------
# Endings


def _done(state: State) -> tuple[State, Command]:
    state = replace(state, phase=Phase.DONE)
    verdict = _verdict(state)
    return replace(state, verdict=verdict), Finish(verdict)


def _fail(state: State, error: ErrorInfo) -> tuple[State, Command]:
    state = replace(state, phase=Phase.FAILED, error=error)
    verdict = _verdict(state)
    return replace(state, verdict=verdict), Finish(verdict)


def _unexpected(state: State, reply: Reply) -> tuple[State, Command]:
    message = f"unexpected {type(reply).__name__} in phase {state.phase}"
    return _fail(state, ErrorInfo(ErrorKind.INTERNAL, message))


def _verdict(state: State) -> Verdict:
    if state.verdict is not None:
        return state.verdict
    if state.phase is Phase.FAILED and not state.infected:
        return Verdict(Status.FAILED, state.stats, (), state.error)
    files = infected_files(state)
    status = Status.INFECTED if files else Status.CLEAN
    return Verdict(status, state.stats, files, state.error)


def infected_files(state: State) -> tuple[InfectedFile, ...]:
    """Every infected file with its planned action and the outcome cPanel reported."""
    planned = {f.path: f for f in state.disinfection.planned}
    steps = _steps_by_path(state)
    out = []
    for path, virus in state.infected:
        plan = planned.get(path)
        if plan is None:
            out.append(InfectedFile(path, virus))
            continue
        out.append(_file_outcome(state, plan, steps.get(path)))
    return tuple(out)


def _file_outcome(
    state: State, plan: PlannedFile, record: DisinfectionRecord | None
) -> InfectedFile:
    limit_error = state.disinfection.limit_error
    if not plan.send or limit_error is not None:
        outcome = Outcome(plan.outcome) if plan.outcome else Outcome.NOT_REQUESTED
        message = plan.message if limit_error is None else "not sent: " + limit_error
        return InfectedFile(plan.path, plan.virus, plan.action, outcome, message)
    if record is None:
        message = state.error.message if state.error else "cPanel reported no step for this file"
        if state.disinfection.queued_at is not None:
            # Queued (or maybe queued), then not followed to the end: cPanel may still do it.
            # Never guessed as an error: the report says unknown, README says rescan.
            return InfectedFile(plan.path, plan.virus, plan.action, Outcome.UNKNOWN, message)
        return InfectedFile(plan.path, plan.virus, plan.action, Outcome.ERROR, message)
    try:
        outcome = Outcome(record.state)
    except ValueError:
        outcome = Outcome.ERROR
    return InfectedFile(plan.path, plan.virus, plan.action, outcome, record.message)


def _steps_by_path(state: State) -> dict[str, DisinfectionRecord]:
    """Step records keyed by our absolute path; cPanel may write home-relative paths."""
    paths = [p for p, _ in state.infected]
    out: dict[str, DisinfectionRecord] = {}
    for record in state.disinfection.records:
        if record.type != "step" or not record.file:
            continue
        path = _match_path(record.file, paths, state.target.account)
        if path is not None:
            out[path] = record
    return out


def _match_path(file: str, paths: list[str], account: str) -> str | None:
    if file.startswith("/"):
        return file if file in paths else None
    suffix = "/" + file.lstrip("./")
    candidates = [p for p in paths if p.endswith(suffix)]
    preferred = [p for p in candidates if p.endswith(f"/{account}{suffix}")]
    chosen = preferred or candidates
    return chosen[0] if len(chosen) == 1 else None


# ---------------------------------------------------------------------------------------------
# Helpers


def _request(state: State, command: Command) -> tuple[State, Command]:
    return replace(state, api_calls=state.api_calls + 1), command


def _wait(state: State, seconds: float) -> tuple[State, Command]:
    return replace(state, last_wait=seconds), Wait(seconds)


def _with_baseline(state: State, data: StatusData | None) -> State:
    """The status seen before start_scan: its time_started tells a stale status from ours."""
    baseline = data.time_started if data is not None else None
    return replace(state, start=replace(state.start, baseline=baseline))


_HANDLERS = {
    Phase.SETTLING: _on_settling,
    Phase.PRECHECK: _on_precheck,
    Phase.FOREIGN: _on_foreign,
    Phase.STARTING: _on_starting,
    Phase.VERIFY_START: _on_verify_start,
    Phase.SCANNING: _on_scanning,
    Phase.LISTING: _on_listing,
    Phase.PLANNING: _on_planning,
    Phase.DISINFECTING: _on_disinfecting,
    Phase.FOLLOWING: _on_following,
}


# ---------------------------------------------------------------------------------------------
# Serialisation for the journal


def to_dict(state: State) -> dict[str, Any]:
    """The state as JSON-ready data, records nested (`codec.to_dict`)."""
    return codec.to_dict(state)


def from_dict(data: dict[str, Any]) -> State:
    """`to_dict`'s output back; `codec.DecodeError` (a ValueError) names a field that is off."""
    return codec.from_dict(State, data)
