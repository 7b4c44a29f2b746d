"""The scan workflow of one target as a pure state machine (sans-I/O, no clock).

    begin(target, cfg, now) -> (state, command)
    step(state, reply, now) -> (state, command)
    resume(state, now)      -> (state, command)     after a crash, from the journal

The state is a frozen value (and serialisable, see `to_dict`), so the journal can persist it
after every transition. Phases:

    PRECHECK ─► STARTING ─► SCANNING ─► LISTING ─► PLANNING ─► DISINFECTING ─► FOLLOWING ─► DONE
       │           │ ambiguous            ▲                          │ ambiguous      ▲
       ▼           ▼                      │                          └────────────────┘
    FOREIGN     VERIFY_START ─────────────┘           any phase ─► FAILED (sticky)

PRECHECK reads the status before starting: its `time_started` is the baseline that tells our
scan's status from the stale one of an earlier scan, and a scan already running (FOREIGN: started
by someone else, or left by a crashed run) is waited for instead of colliding with it.
VERIFY_START follows a start_scan whose answer was lost: it reads the status for up to
`start_grace` (the previous scan's status may linger) before sending start_scan once more.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from orchestrator.events import (
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
    Action,
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    Outcome,
    ScanStats,
    ScanType,
    Status,
    Target,
)


class Phase(StrEnum):
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


@dataclass(frozen=True, slots=True)
class State:
    target: Target
    cfg: WorkflowConfig
    phase: Phase = Phase.PRECHECK
    api_calls: int = 0
    started_at: float = 0.0
    # scanning
    baseline: int | None = None  # time_started of the status seen before our start_scan
    start_attempts: int = 0
    busy_refusals: int = 0
    start_sent_at: float | None = None
    scan_started_at: float | None = None
    seen_running: bool = False
    stats: ScanStats | None = None
    progress_at: float | None = None  # last time the counters moved (or the scan started)
    # The counters reached their current values after `progress_after` (when the status read
    # before the one that first showed them was sent) and by `progress_at`; None: not known
    progress_after: float | None = None
    poll_sent_at: float | None = None  # when the status request being answered was sent
    last_poll_sent_at: float | None = None  # when the last answered one (of our scan) was sent
    # (time, files scanned, bytes scanned) when the totals were first known: rates are
    # measured from here
    rate_anchor: tuple[float, int, int] | None = None
    total_bytes: int = 0  # the byte total, once cPanel reports it (0: predict from file counts)
    last_wait: float = 0.0
    # results
    infected: tuple[tuple[str, str], ...] = ()
    planned: tuple[PlannedFile, ...] = ()
    limit_error: str | None = None
    # disinfection
    queued_at: float | None = None
    disinfect_ambiguous: bool = False
    last_id: int | None = None
    records: tuple[DisinfectionRecord, ...] = ()
    error: ErrorInfo | None = None
    verdict: Verdict | None = None


# ---------------------------------------------------------------------------------------------
# Entry points


def begin(target: Target, cfg: WorkflowConfig, now: float) -> tuple[State, Command]:
    state = State(target=target, cfg=cfg, started_at=now)
    return _request(state, GetScanStatus())


def step(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if state.phase in TERMINAL:
        return state, Finish(_verdict(state))
    handler = _HANDLERS[state.phase]
    return handler(state, reply, now)


def resume(state: State, now: float) -> tuple[State, Command]:
    """Continue from a journaled state; never resends a request whose fate is unknown."""
    phase = state.phase
    if phase in TERMINAL:
        return state, Finish(_verdict(state))
    if phase in (Phase.STARTING, Phase.VERIFY_START):
        return _request(replace(state, phase=Phase.VERIFY_START), GetScanStatus())
    if phase in (Phase.PRECHECK, Phase.FOREIGN):
        return _request(state, GetScanStatus())
    if phase is Phase.SCANNING:
        # sent now: the round trip that bounds the next wait is not the time spent down
        return _request(replace(state, poll_sent_at=now), GetScanStatus())
    if phase is Phase.LISTING:
        return _request(state, ListInfected())
    if phase is Phase.PLANNING:
        return state, PlanActions(state.infected)
    if phase is Phase.DISINFECTING:
        following = replace(state, phase=Phase.FOLLOWING, disinfect_ambiguous=True)
        return _request(
            replace(following, queued_at=state.queued_at or now), _poll_disinfection(following)
        )
    return _request(state, _poll_disinfection(state))


# ---------------------------------------------------------------------------------------------
# Phase handlers


def _on_precheck(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if isinstance(reply, Tick):  # back here after a start_scan the server answered with an error
        return _request(state, GetScanStatus())
    if isinstance(reply, RequestFailed):
        return _fail(state, reply.error)
    if not isinstance(reply, ScanStatusReply):
        return _unexpected(state, reply)
    data = reply.data
    if data is not None and not data.scan_complete:
        # Someone else's scan, or one a crashed run left: wait for it, never collide with it.
        foreign = replace(state, phase=Phase.FOREIGN, progress_at=now, stats=data.stats())
        return _wait(foreign, state.cfg.poll_min)
    baseline = data.time_started if data is not None else None
    return _start(replace(state, baseline=baseline), now)


def _on_foreign(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if isinstance(reply, Tick):
        return _request(state, GetScanStatus())
    if isinstance(reply, RequestFailed):
        return _fail(state, reply.error)
    if not isinstance(reply, ScanStatusReply):
        return _unexpected(state, reply)
    data = reply.data
    if data is None or data.scan_complete:
        return _start(replace(state, baseline=data.time_started if data else None), now)
    moved = _progress_moved(state.stats, data)
    progress_at = now if moved or state.progress_at is None else state.progress_at
    idle = now - progress_at
    if idle >= state.cfg.stall_timeout or (_looks_reset(data) and idle >= state.cfg.reset_grace):
        # A dead scan (its child died), or no scan at all behind a reset status: cPanel lets a
        # new start_scan through (and refuses it, harmlessly, if a scan is in its counting pass).
        return _start(replace(state, baseline=data.time_started), now)
    state = replace(state, stats=data.stats(), progress_at=progress_at)
    return _wait(state, _backoff(state))


def _looks_reset(data: StatusData) -> bool:
    """What start_scan writes first: not complete, nothing counted (or a counting pass)."""
    return not data.scan_complete and data.scanned_file_count == 0 and data.total_file_count == 0


def _start(state: State, now: float) -> tuple[State, Command]:
    if state.start_attempts >= state.cfg.max_start_attempts:
        return _fail(state, ErrorInfo(ErrorKind.UNREACHABLE, "start_scan never took effect"))
    state = replace(
        state,
        phase=Phase.STARTING,
        start_attempts=state.start_attempts + 1,
        start_sent_at=now,
        last_wait=0.0,
    )
    return _request(state, StartScan(state.target.scan_type))


def _on_starting(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if isinstance(reply, ScanStarted):
        return _scanning(state, now)
    if isinstance(reply, ScanBusy):
        return _on_busy(state, reply, now)
    if isinstance(reply, RequestFailed):
        if reply.ambiguous:
            # The request may have reached cPanel: read the status before deciding anything.
            return _request(replace(state, phase=Phase.VERIFY_START), GetScanStatus())
        if reply.error.kind is ErrorKind.UNREACHABLE and (
            state.start_attempts < state.cfg.max_start_attempts
        ):
            # The server answered (5xx, 429) or was never reached: start_scan did not run.
            # Not resent blindly: after the wait the server asked for, read the status again.
            delay = reply.retry_after if reply.retry_after is not None else _backoff(state)
            return _wait(replace(state, phase=Phase.PRECHECK), max(delay, state.cfg.poll_min))
        # status 0: no new scan (and cPanel has reset the status file): nothing to poll.
        return _fail(state, _attempted(state, reply.error))
    return _unexpected(state, reply)


def _attempted(state: State, error: ErrorInfo) -> ErrorInfo:
    if state.start_attempts < 2:
        return error
    return ErrorInfo(error.kind, f"{error.message} ({state.start_attempts} attempts)")


def _on_busy(state: State, reply: ScanBusy, now: float) -> tuple[State, Command]:
    """A scan this target did not start holds the account (someone started one in cPanel's UI
    between our status read and our start): follow it to its end, then start ours. A refused
    start is no attempt of ours (it did not run), but a few of them end the target."""
    refusals = state.busy_refusals + 1
    if refusals >= state.cfg.max_busy_refusals:
        message = (
            f"start_scan refused {refusals} times: a scan this run did not start keeps "
            f"running on this account ({reply.message})"
        )
        return _fail(state, ErrorInfo(ErrorKind.API, message))
    foreign = replace(
        state,
        phase=Phase.FOREIGN,
        busy_refusals=refusals,
        start_attempts=state.start_attempts - 1,
        progress_at=now,
        stats=None,
        last_wait=0.0,
    )
    return _wait(foreign, state.cfg.poll_min)


def _on_verify_start(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if isinstance(reply, Tick):
        return _request(state, GetScanStatus())
    if isinstance(reply, RequestFailed):
        return _fail(state, reply.error)
    if not isinstance(reply, ScanStatusReply):
        return _unexpected(state, reply)
    if _is_ours(state, reply.data):
        state = _scanning(state, now)[0]
        return _on_scanning(state, reply, now)
    # Still the previous scan's status. A start that took may not show yet (the stale window),
    # and sending another would only meet "already in progress": look again for a while.
    sent = state.start_sent_at if state.start_sent_at is not None else now
    if now - sent < state.cfg.start_grace:
        return _wait(state, min(state.cfg.poll_min, state.cfg.start_grace))
    return _start(state, now)


def _scanning(state: State, now: float) -> tuple[State, Command]:
    state = replace(
        state,
        phase=Phase.SCANNING,
        scan_started_at=now,
        progress_at=now,
        progress_after=None,
        poll_sent_at=None,
        last_poll_sent_at=None,
        seen_running=False,
        stats=None,
        rate_anchor=None,
        last_wait=0.0,
    )
    return _wait(state, state.cfg.poll_min)


def _on_scanning(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if isinstance(reply, Tick):
        return _request(replace(state, poll_sent_at=now), GetScanStatus())
    if isinstance(reply, RequestFailed):
        return _fail(state, reply.error)
    if not isinstance(reply, ScanStatusReply):
        return _unexpected(state, reply)
    data = reply.data
    ours = _is_ours(state, data)
    if data is not None and ours:
        state = _track_progress(state, data, now)
        if data.scan_complete:
            return _request(replace(state, phase=Phase.LISTING), ListInfected())
    return _check_deadlines_then_wait(state, now, stale=not ours)


def _is_ours(state: State, data: StatusData | None) -> bool:
    """Whether a status belongs to the scan this run started (not an earlier scan's leftovers)."""
    if data is None:
        return False
    if state.seen_running or not data.scan_complete:
        return True
    return data.time_started is not None and data.time_started != state.baseline


def _track_progress(state: State, data: StatusData, now: float) -> State:
    moved = _progress_moved(state.stats, data)
    anchor = state.rate_anchor
    if anchor is None and data.total_file_count > 0:
        anchor = (now, data.scanned_file_count, data.scanned_file_size)
    return replace(
        state,
        seen_running=state.seen_running or not data.scan_complete,
        stats=data.stats(),
        progress_at=now if moved else state.progress_at,
        progress_after=state.last_poll_sent_at if moved else state.progress_after,
        last_poll_sent_at=state.poll_sent_at,
        rate_anchor=anchor,
        total_bytes=data.total_bytes or state.total_bytes,
    )


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
    started = state.scan_started_at if state.scan_started_at is not None else now
    if now - started >= cfg.scan_timeout:
        return _fail(
            state, ErrorInfo(ErrorKind.TIMEOUT, f"scan not complete after {cfg.scan_timeout:g}s")
        )
    progress_at = state.progress_at if state.progress_at is not None else started
    if now - progress_at >= cfg.stall_timeout:
        message = f"no scan progress for {cfg.stall_timeout:g}s"
        return _fail(state, ErrorInfo(ErrorKind.STALLED, message))
    delay = cfg.poll_min if stale else next_poll_delay(state, now)
    # Never sleep past a deadline: the poll after it is what notices it.
    delay = min(delay, started + cfg.scan_timeout - now, progress_at + cfg.stall_timeout - now)
    return _wait(state, max(delay, 0.0))


#: The lateness accepted in noticing a scan's end, as a share of the time it has run so far
#: (so at most this share of its duration).
LATE_SHARE = 0.03
#: A prediction is followed at most this many times the span its rate was measured over.
SPAN_REACH = 3.0
#: Before the counters have moved twice, how far toward the nearer prediction the earliest
#: end is put (one move since the totals appeared bounds the rate on one side only).
FIRST_RATE_SHARE = 0.6


def next_poll_delay(state: State, now: float) -> float:
    """When to poll next: as late as the counters allow without noticing the end late.

    Before there is a progress rate (the counting pass, then until a file is scanned after the
    totals appear), a growing backoff; `poll_interval.max` caps this blind backoff only. With a
    rate, `_end_bracket` gives the earliest and the latest time the scan can end. The slack is
    3 % of the time the scan has run, at least `poll_interval.min` and at least the last status
    request's round trip (polling faster than answers come back only adds load):

    * within the slack of the latest end: poll just after it;
    * otherwise: poll at the earliest end plus the slack, but never past the latest end, never
      more than 3 times the span the rate was measured over (a rate from a short span is
      noise), and never sooner than the slack;
    * past the latest end (a file larger than any so far is being scanned): every slack.

    So the poll that sees `scan_complete` comes at most the slack after the end (while the
    rate holds): at most 3 % of the scan's duration late. A scan 10 % done after 60 s is still
    not polled every few seconds, and the stall timeout and scan deadline still bound waits.

    Measured with bench/polls.py (the simulator's scan model: files scanned one at a time, the
    counters rewritten after each; the full benchmark's 10,000 scans of 145..1439 s and 2,000
    rescaled to 1000..1440 s; poll interval 2..30 s), lateness as a share of the duration:
    scans of 1000 s and more at most 3.0 % late (p99 3.0 %, median 1.3 %; the previous rule,
    the nearer prediction with far sleeps capped at twice their span: max 32.6 %, p99 20.8 %),
    all scans at most 3.0 % (was 48.7 %). The price is polls: 14.5 status polls per scan when
    every request is answered at once (was 11.2), and in bench/polls.py's model of the full
    benchmark's contention 9.1 calls per target (was 8.2; `run.py` measured 8.08). In that
    model's start-up rush, where a status read waits ~100 s for the CPU, scans of 300..600 s
    are noticed later than before (median 7 % of their duration, was 4 %): waits follow the
    round trip there, and the long scans that set the wall time end after the rush.
    """
    cfg = state.cfg
    bracket = _end_bracket(state, now)
    if bracket is None:
        return _backoff(state)
    earliest, latest, span = bracket
    started = state.scan_started_at if state.scan_started_at is not None else now
    slack = max(cfg.poll_min, LATE_SHARE * (now - started))
    if state.poll_sent_at is not None:
        slack = max(slack, now - state.poll_sent_at)
    if latest <= now:
        return slack
    if latest - now <= slack:
        return max(cfg.poll_min, latest - now + 0.05 * cfg.poll_min)
    reach = max(cfg.poll_max, SPAN_REACH * span)
    return max(slack, min(earliest + slack - now, latest - now, reach))


def _end_bracket(state: State, now: float) -> tuple[float, float, float] | None:
    """(earliest, latest, span): when the scan can end, from its rate since the totals appeared.

    Two predictions, from file counts and (once cPanel gives their total) from bytes. A scan's
    time is per-file overhead plus per-byte work, so its end lies between the two. And cPanel
    rewrites the counters once per file: while a file is scanned its work is not counted yet,
    so a rate measured up to "now" is too low (one large file in progress made a prediction
    2.5 times too far). The counters shown reached their values after the previous status
    request was sent (`progress_after`) and by the reply that first showed them
    (`progress_at`); a rate measured up to the one and up to the other bounds the real rate.
    The earliest end is the nearer prediction at the fast rate, the latest the farther one at
    the slow rate; `span` is what the slow rate was measured over. None: no rate yet.
    """
    stats, anchor = state.stats, state.rate_anchor
    if stats is None or anchor is None or stats.total_file_count <= 0:
        return None
    anchor_t = anchor[0]
    seen = anchor_t if state.progress_at is None else max(state.progress_at, anchor_t)
    ends = _ends_from(state, seen)
    if not ends:
        return None
    after = state.progress_after
    if after is not None and after > anchor_t:
        earliest = min(_ends_from(state, after))
    else:  # no fast rate: the counters moved just once since the totals appeared
        earliest = now + FIRST_RATE_SHARE * (min(ends) - now)
    return earliest, max(ends), seen - anchor_t


def _ends_from(state: State, at: float) -> list[float]:
    """When the scan ends if the counters shown were reached at `at`: by files, by bytes."""
    stats, anchor = state.stats, state.rate_anchor
    assert stats is not None
    assert anchor is not None
    anchor_t, anchor_count, anchor_bytes = anchor
    span = at - anchor_t
    counters = [(stats.scanned_file_count, anchor_count, stats.total_file_count)]
    if state.total_bytes:
        counters.append((stats.scanned_file_size, anchor_bytes, state.total_bytes))
    ends = []
    for scanned, at_anchor, total in counters:
        if (left := _remaining(span, scanned - at_anchor, total - scanned)) is not None:
            ends.append(at + left)
    return ends


def _remaining(span: float, done: int, left: int) -> float | None:
    """Seconds to scan `left` more units at the rate `done` took over `span` (None: no rate)."""
    if done <= 0 or span <= 0:
        return None
    return max(left, 0) * span / done


def _backoff(state: State) -> float:
    cfg = state.cfg
    return min(cfg.poll_max, max(cfg.poll_min, state.last_wait * 2))


def _on_listing(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if isinstance(reply, RequestFailed):
        return _fail(state, reply.error)
    if not isinstance(reply, InfectedListReply):
        return _unexpected(state, reply)
    files = tuple(dict.fromkeys((html.unescape(p), html.unescape(v)) for p, v in reply.files))
    state = replace(state, infected=files)
    if not files:
        return _done(state)
    return replace(state, phase=Phase.PLANNING), PlanActions(files)


def _on_planning(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if not isinstance(reply, ActionsPlanned):
        return _unexpected(state, reply)
    state = replace(state, planned=reply.files, limit_error=reply.limit_error)
    if reply.limit_error is not None:
        return _done(replace(state, error=ErrorInfo(ErrorKind.POLICY_LIMIT, reply.limit_error)))
    actions = {f.path: f.action for f in reply.files if f.send}
    if not actions:
        return _done(state)
    state = replace(state, phase=Phase.DISINFECTING)
    return _request(state, Disinfect(actions))


def _on_disinfecting(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if isinstance(reply, DisinfectQueued):
        return _wait(
            replace(state, phase=Phase.FOLLOWING, queued_at=now, last_wait=0.0), state.cfg.poll_min
        )
    if isinstance(reply, RequestFailed):
        if reply.ambiguous:
            # Never resent: follow whatever cPanel queued, if anything.
            following = replace(
                state, phase=Phase.FOLLOWING, queued_at=now, disinfect_ambiguous=True
            )
            return _request(following, _poll_disinfection(following))
        return _done(replace(state, error=reply.error))
    return _unexpected(state, reply)


def _on_following(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if isinstance(reply, Tick):
        return _request(state, _poll_disinfection(state))
    if isinstance(reply, RequestFailed):
        return _done(replace(state, error=reply.error))
    if not isinstance(reply, DisinfectionStatusReply):
        return _unexpected(state, reply)
    state = _absorb_records(state, reply.details)
    if any(r.type == "done" for r in state.records):
        return _done(state)
    queued_at = state.queued_at if state.queued_at is not None else now
    cfg = state.cfg
    if reply.status == "none" and now - queued_at >= cfg.none_grace:
        why = "disinfection state unknown after an interrupted request; not resent"
        if not state.disinfect_ambiguous:
            why = f"disinfection task did not start within {cfg.none_grace:g}s"
        return _done(replace(state, error=ErrorInfo(ErrorKind.API, why)))
    if now - queued_at >= cfg.disinfection_timeout:
        message = f"disinfection not done after {cfg.disinfection_timeout:g}s"
        return _done(replace(state, error=ErrorInfo(ErrorKind.TIMEOUT, message)))
    delay = min(cfg.poll_max, max(cfg.poll_min, state.last_wait * 1.5))
    return _wait(state, min(delay, queued_at + cfg.disinfection_timeout - now))


def _poll_disinfection(state: State) -> GetDisinfection:
    return GetDisinfection(state.last_id)


def _absorb_records(state: State, details: tuple[DisinfectionRecord, ...]) -> State:
    known = {r.id for r in state.records}
    fresh = tuple(r for r in details if r.id not in known)
    if not fresh:
        return state
    # The workflow ends on the done record, so it never asks past it (which answers `none`).
    last_id = max(r.id for r in (*state.records, *fresh))
    return replace(state, records=state.records + fresh, last_id=last_id)


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
    planned = {f.path: f for f in state.planned}
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
    if not plan.send or state.limit_error is not None:
        outcome = Outcome(plan.outcome) if plan.outcome else Outcome.NOT_REQUESTED
        message = plan.message if state.limit_error is None else "not sent: " + state.limit_error
        return InfectedFile(plan.path, plan.virus, plan.action, outcome, message)
    if record is None:
        message = state.error.message if state.error else "cPanel reported no step for this file"
        if state.queued_at is not None:
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
    for record in state.records:
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


_HANDLERS = {
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
    data = asdict(state)
    data["verdict"] = None  # rebuilt from the rest
    return data


def from_dict(data: dict[str, Any]) -> State:
    t = data["target"]
    target = Target(t["server"], t["account"], ScanType(t["scan_type"]))
    stats = ScanStats(**data["stats"]) if data.get("stats") else None
    anchor = tuple(data["rate_anchor"]) if data.get("rate_anchor") else None
    error = data.get("error")
    return State(
        target=target,
        cfg=WorkflowConfig(**data["cfg"]),
        phase=Phase(data["phase"]),
        api_calls=data["api_calls"],
        started_at=data["started_at"],
        baseline=data["baseline"],
        start_attempts=data["start_attempts"],
        busy_refusals=int(data.get("busy_refusals", 0)),
        start_sent_at=data.get("start_sent_at"),
        scan_started_at=data["scan_started_at"],
        seen_running=data["seen_running"],
        stats=stats,
        progress_at=data["progress_at"],
        progress_after=data.get("progress_after"),
        poll_sent_at=data.get("poll_sent_at"),
        last_poll_sent_at=data.get("last_poll_sent_at"),
        rate_anchor=(
            (float(anchor[0]), int(anchor[1]), int(anchor[2]) if len(anchor) > 2 else 0)
            if anchor
            else None
        ),
        total_bytes=int(data.get("total_bytes", 0)),
        last_wait=data["last_wait"],
        infected=tuple((p, v) for p, v in data["infected"]),
        planned=tuple(
            PlannedFile(
                f["path"], f["virus"], Action(f["action"]), f["send"], f["outcome"], f["message"]
            )
            for f in data["planned"]
        ),
        limit_error=data["limit_error"],
        queued_at=data["queued_at"],
        disinfect_ambiguous=data["disinfect_ambiguous"],
        last_id=data["last_id"],
        records=tuple(DisinfectionRecord(**r) for r in data["records"]),
        error=ErrorInfo(ErrorKind(error["kind"]), error["message"]) if error else None,
    )
