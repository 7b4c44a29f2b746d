"""The start phases: SETTLING (a sibling's disinfection may still run), PRECHECK (the status
before our start), FOREIGN (a scan we did not start holds the account), STARTING (start_scan
sent once) and VERIFY_START (its answer was lost: did it take?)."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.model import DisinfectionStatusReply, ErrorInfo, ErrorKind, StatusData
from orchestrator.workflow.events import (
    Command,
    GetDisinfection,
    GetScanStatus,
    Reply,
    RequestFailed,
    ScanBusy,
    ScanStarted,
    ScanStatusReply,
    StartScan,
    Tick,
)
from orchestrator.workflow.moves import (
    fail,
    poll_backoff,
    request,
    unexpected,
    wait,
    with_baseline,
)
from orchestrator.workflow.scan import is_ours, looks_reset, on_scanning, progress_moved, scanning
from orchestrator.workflow.state import Phase, State


def on_settling(state: State, reply: Reply, now: float) -> tuple[State, Command]:
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
            return request(state, GetDisinfection(None))
        case DisinfectionStatusReply(status=status, details=details):
            if status == "done" or any(r.type == "done" for r in details):
                return _settled(state)
            if status == "none" and now - since >= cfg.none_grace:
                return _settled(state)
        case RequestFailed():
            pass  # lost reads are why the sibling stopped following: keep asking
        case _:
            return unexpected(state, reply)
    if now - since >= cfg.disinfection_timeout:
        message = (
            f"not scanned: a disinfection of this account was still not done after "
            f"{cfg.disinfection_timeout:g}s (it would delete this scan's infected list)"
        )
        return fail(state, ErrorInfo(ErrorKind.API, message))
    delay = min(cfg.poll_max, max(cfg.poll_min, state.last_wait * 1.5))
    return wait(state, min(delay, since + cfg.disinfection_timeout - now))


def _settled(state: State) -> tuple[State, Command]:
    return request(replace(state, phase=Phase.PRECHECK, settle_since=None), GetScanStatus())


def on_precheck(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case Tick():  # back here after a start_scan the server answered with an error
            return request(state, GetScanStatus())
        case RequestFailed(error=error):
            return fail(state, error)
        case ScanStatusReply(data=data) if data is not None and not data.scan_complete:
            # Someone else's scan, or one a crashed run left: wait for it, never collide with it.
            scan = replace(state.scan, progress_at=now, stats=data.stats())
            return wait(replace(state, phase=Phase.FOREIGN, scan=scan), state.cfg.poll_min)
        case ScanStatusReply(data=data):
            return send_start(with_baseline(state, data), now)
    return unexpected(state, reply)


def on_foreign(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case Tick():
            return request(state, GetScanStatus())
        case RequestFailed(error=error):
            return fail(state, error)
        case ScanStatusReply(data=data) if data is None or data.scan_complete:
            return send_start(with_baseline(state, data), now)
        case ScanStatusReply(data=StatusData() as data):
            return _watch_foreign(state, data, now)
    return unexpected(state, reply)


def _watch_foreign(state: State, data: StatusData, now: float) -> tuple[State, Command]:
    moved = progress_moved(state.scan.stats, data)
    progress_at = state.scan.progress_at
    progress_at = now if moved or progress_at is None else progress_at
    idle = now - progress_at
    if idle >= state.cfg.stall_timeout or (looks_reset(data) and idle >= state.cfg.reset_grace):
        # A dead scan (its child died), or no scan at all behind a reset status: cPanel lets a
        # new start_scan through (and refuses it, harmlessly, if a scan is in its counting pass).
        return send_start(with_baseline(state, data), now)
    scan = replace(state.scan, stats=data.stats(), progress_at=progress_at)
    state = replace(state, scan=scan)
    return wait(state, poll_backoff(state))


def send_start(state: State, now: float) -> tuple[State, Command]:
    if state.start.attempts >= state.cfg.max_start_attempts:
        return fail(state, ErrorInfo(ErrorKind.UNREACHABLE, "start_scan never took effect"))
    first = state.start.first_sent_at if state.start.first_sent_at is not None else now
    if now - first >= state.cfg.scan_timeout:  # the target's deadline (see _not_started)
        message = f"start_scan never took effect in {now - first:.0f}s"
        return fail(state, ErrorInfo(ErrorKind.UNREACHABLE, message))
    start = replace(
        state.start, attempts=state.start.attempts + 1, sent_at=now, first_sent_at=first
    )
    state = replace(state, phase=Phase.STARTING, start=start, last_wait=0.0)
    return request(state, StartScan(state.target.scan_type))


def on_starting(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case ScanStarted():
            return scanning(state, now)
        case ScanBusy():
            return _on_busy(state, reply, now)
        case RequestFailed(ambiguous=True):
            # The request may have reached cPanel: read the status before deciding anything.
            return request(replace(state, phase=Phase.VERIFY_START), GetScanStatus())
        case RequestFailed(error=error) if error.kind is ErrorKind.UNREACHABLE:
            return _not_started(state, reply, now)
        case RequestFailed(error=error):
            # status 0: no new scan (and cPanel has reset the status file): nothing to poll.
            return fail(state, _attempted(state, error))
    return unexpected(state, reply)


def _not_started(state: State, reply: RequestFailed, now: float) -> tuple[State, Command]:
    """The server answered without running start_scan (5xx, 429, a proxy's page) or was never
    reached (refused): no attempt of ours. Not resent blindly: after the wait the server asked
    for (or a backoff growing to poll_max), the status is read again (PRECHECK), and only if no
    scan of ours started is start_scan sent again; until `scan_timeout` has passed since the
    target's first start_scan (a scan not started by then could not have finished by then)."""
    cfg, start = state.cfg, state.start
    first = start.first_sent_at if start.first_sent_at is not None else now
    deadline = first + cfg.scan_timeout
    refused = start.not_started + 1
    backoff = min(cfg.poll_max, cfg.poll_min * 2 ** min(refused - 1, 30))
    delay = reply.retry_after if reply.retry_after is not None else backoff
    delay = max(delay, cfg.poll_min)
    if now + delay >= deadline:  # no next try before the deadline: say so now
        message = (
            f"start_scan not accepted in {now - first:.0f}s ({refused} times not started; "
            f"the last: {reply.error.message})"
        )
        return fail(state, ErrorInfo(reply.error.kind, message))
    start = replace(start, attempts=start.attempts - 1, not_started=refused)
    return wait(replace(state, phase=Phase.PRECHECK, start=start), delay)


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
        return fail(state, ErrorInfo(ErrorKind.API, message))
    start = replace(state.start, busy_refusals=refusals, attempts=state.start.attempts - 1)
    scan = replace(state.scan, progress_at=now, stats=None)
    foreign = replace(state, phase=Phase.FOREIGN, start=start, scan=scan, last_wait=0.0)
    return wait(foreign, state.cfg.poll_min)


def on_verify_start(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case Tick():
            return request(state, GetScanStatus())
        case RequestFailed(error=error):
            return fail(state, error)
        case ScanStatusReply(data=data) if is_ours(state, data):
            state = scanning(state, now)[0]
            return on_scanning(state, reply, now)
        case ScanStatusReply():
            # Still the previous scan's status. A start that took may not show yet (the stale
            # window), and sending another would only meet "already in progress": look again
            # for a while.
            sent = state.start.sent_at if state.start.sent_at is not None else now
            if now - sent < state.cfg.start_grace:
                return wait(state, min(state.cfg.poll_min, state.cfg.start_grace))
            return send_start(state, now)
    return unexpected(state, reply)
