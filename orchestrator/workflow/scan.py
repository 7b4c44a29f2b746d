"""The scan phases: SCANNING (our scan's status polled until complete, deadlines checked) and
LISTING (its infected files read). Also what tells our scan's status from an earlier one's."""

from __future__ import annotations

import html
from dataclasses import replace

from orchestrator.model import ErrorInfo, ErrorKind, ScanStats, StatusData
from orchestrator.workflow.events import (
    Command,
    GetScanStatus,
    InfectedListReply,
    ListInfected,
    PlanActions,
    Reply,
    RequestFailed,
    ScanStatusReply,
    Tick,
)
from orchestrator.workflow.moves import done, fail, request, unexpected, wait
from orchestrator.workflow.poll_schedule import ScanProgress, next_poll_delay
from orchestrator.workflow.state import Phase, State


def scanning(state: State, now: float) -> tuple[State, Command]:
    # A fresh record: nothing a foreign scan (or an earlier status) showed is ours.
    state = replace(
        state,
        phase=Phase.SCANNING,
        scan=ScanProgress(started_at=now, progress_at=now),
        last_wait=0.0,
    )
    return wait(state, state.cfg.poll_min)


def on_scanning(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case Tick():
            return poll_status(state, now)
        case RequestFailed(error=error) if error.kind in (
            ErrorKind.UNREACHABLE,
            ErrorKind.PROTOCOL,
        ):
            return _unread(state, error, now)
        case RequestFailed(error=error):
            return fail(state, error)
        case ScanStatusReply(data=data):
            ours = is_ours(state, data)
            if data is not None and ours:
                state = track_progress(state, data, now)
                if data.scan_complete:
                    return request(replace(state, phase=Phase.LISTING), ListInfected())
            return _check_deadlines_then_wait(state, now, stale=not ours)
    return unexpected(state, reply)


def _unread(state: State, error: ErrorInfo, now: float) -> tuple[State, Command]:
    """A status read of our running scan failed (its retries spent): no verdict, the scan is
    the server's. Read again later, while the scan's deadlines allow: a scan whose status went
    unread for `stall_timeout` fails with the read's error (kind unreachable or protocol)."""
    cfg = state.cfg
    started = state.scan.started_at if state.scan.started_at is not None else now
    progress_at = state.scan.progress_at if state.scan.progress_at is not None else started
    if now - started >= cfg.scan_timeout or now - progress_at >= cfg.stall_timeout:
        message = f"{error.message} (no scan progress seen for {now - progress_at:.0f}s)"
        return fail(state, ErrorInfo(error.kind, message))
    delay = min(cfg.poll_max, max(cfg.poll_min, state.last_wait * 2))
    delay = min(delay, started + cfg.scan_timeout - now, progress_at + cfg.stall_timeout - now)
    return wait(state, max(delay, 0.0))


def poll_status(state: State, now: float) -> tuple[State, Command]:
    """Read our scan's status; when it was sent bounds the round trip (poll_schedule)."""
    return request(replace(state, scan=replace(state.scan, poll_sent_at=now)), GetScanStatus())


def is_ours(state: State, data: StatusData | None) -> bool:
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
        return not (same and looks_reset(data))
    return data.time_started is not None and not same


def looks_reset(data: StatusData) -> bool:
    """What start_scan writes first: not complete, nothing counted (or a counting pass)."""
    return not data.scan_complete and data.scanned_file_count == 0 and data.total_file_count == 0


def track_progress(state: State, data: StatusData, now: float) -> State:
    scan = state.scan
    moved = progress_moved(scan.stats, data)
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


def progress_moved(old: ScanStats | None, data: StatusData) -> bool:
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
        return fail(
            state, ErrorInfo(ErrorKind.TIMEOUT, f"scan not complete after {cfg.scan_timeout:g}s")
        )
    progress_at = state.scan.progress_at if state.scan.progress_at is not None else started
    if now - progress_at >= cfg.stall_timeout:
        message = f"no scan progress for {cfg.stall_timeout:g}s"
        return fail(state, ErrorInfo(ErrorKind.STALLED, message))
    if stale:
        delay = cfg.poll_min
    else:
        delay = next_poll_delay(
            state.scan, now, poll_min=cfg.poll_min, poll_max=cfg.poll_max, last_wait=state.last_wait
        )
    # Never sleep past a deadline: the poll after it is what notices it.
    delay = min(delay, started + cfg.scan_timeout - now, progress_at + cfg.stall_timeout - now)
    return wait(state, max(delay, 0.0))


def on_listing(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case RequestFailed(error=error):
            return fail(state, error)
        case InfectedListReply(files=listed):
            files = tuple(dict.fromkeys((html.unescape(p), html.unescape(v)) for p, v in listed))
            state = replace(state, infected=files)
            if not files:
                return done(state)
            return replace(state, phase=Phase.PLANNING), PlanActions(files)
    return unexpected(state, reply)
