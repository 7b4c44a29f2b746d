"""The remedy phases: PLANNING (the policy's plan for the infected files), DISINFECTING
(disinfect_files sent once; again only when the server said it did not run it) and FOLLOWING
(check_disinfection_status until done).

Whether disinfect_files went out is known for sure: the driver marks the state `sending`
(`disinfect_sending`, journaled) right before the POST leaves, after any session login, and
its answer clears the mark. So after a kill -9 a DISINFECTING state without the mark was never
sent (a resumed run sends it, once), and one with it may have been (followed, never resent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from orchestrator.model import (
    Action,
    DisinfectionRecord,
    DisinfectionStatusReply,
    ErrorInfo,
    ErrorKind,
)
from orchestrator.workflow.events import (
    ActionsPlanned,
    Command,
    Disinfect,
    DisinfectQueued,
    GetDisinfection,
    PlannedFile,
    Reply,
    RequestFailed,
    Tick,
)
from orchestrator.workflow.moves import done, request, unexpected, wait
from orchestrator.workflow.state import Disinfection, Phase, State


def on_planning(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case ActionsPlanned(files=planned, limit_error=limit_error):
            plan = replace(state.disinfection, planned=planned, limit_error=limit_error)
            state = replace(state, disinfection=plan)
            if limit_error is not None:
                return done(replace(state, error=ErrorInfo(ErrorKind.POLICY_LIMIT, limit_error)))
            actions = disinfect_actions(planned)
            if not actions:
                return done(state)
            plan = replace(state.disinfection, first_sent_at=now)
            disinfecting = replace(state, phase=Phase.DISINFECTING, disinfection=plan)
            return request(disinfecting, Disinfect(actions))
    return unexpected(state, reply)


def disinfect_actions(planned: tuple[PlannedFile, ...]) -> Mapping[str, Action]:
    """The actions disinfect_files carries: the planned files marked to be sent."""
    return {f.path: f.action for f in planned if f.send}


def disinfect_sending(state: State) -> State:
    """The disinfect_files POST is leaving now: from here on it may have reached cPanel."""
    return replace(state, disinfection=replace(state.disinfection, sending=True))


def may_have_sent(state: State) -> bool:
    """Whether this target's disinfect_files may have reached cPanel: it was going out, or it
    was queued (or maybe queued). False when it never left, or was refused for sure."""
    task = state.disinfection
    return task.sending or task.queued_at is not None


def on_disinfecting(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case DisinfectQueued():
            following = start_following(state, queued_at=now, ambiguous=False)
            return wait(replace(following, last_wait=0.0), state.cfg.poll_min)
        case Tick():  # the wait after a disinfect_files the server did not run is over
            return request(state, Disinfect(disinfect_actions(state.disinfection.planned)))
        case RequestFailed(ambiguous=True):
            # Never resent: follow whatever cPanel queued, if anything.
            following = start_following(state, queued_at=now, ambiguous=True)
            return request(following, poll_disinfection(following))
        case RequestFailed(error=error) if error.kind is ErrorKind.UNREACHABLE:
            return _not_run(state, reply, now)
        case RequestFailed(error=error):
            # Never sent, or answered without running: nothing was queued.
            task = replace(state.disinfection, sending=False)
            return done(replace(state, disinfection=task, error=error))
    return unexpected(state, reply)


def _not_run(state: State, reply: RequestFailed, now: float) -> tuple[State, Command]:
    """disinfect_files answered without running (5xx, 429, a proxy's page: a status line says
    the call did not run, errors.py) or never sent (refused): nothing was queued, so sending it
    again cannot act twice. After the wait the server asked for (or a growing backoff), until
    `disinfection_timeout` has passed since the first one. (A lost answer is never resent.)"""
    cfg, task = state.cfg, state.disinfection
    first = task.first_sent_at if task.first_sent_at is not None else now
    refused = task.not_run + 1
    backoff = min(cfg.poll_max, cfg.poll_min * 2 ** min(refused - 1, 30))
    delay = max(reply.retry_after if reply.retry_after is not None else backoff, cfg.poll_min)
    if now + delay >= first + cfg.disinfection_timeout:
        message = (
            f"disinfect_files not accepted in {now - first:.0f}s ({refused} times not run; "
            f"the last: {reply.error.message})"
        )
        return done(replace(state, error=ErrorInfo(reply.error.kind, message)))
    # known not to have run: a kill -9 during the wait resends it, never follows a ghost
    task = replace(task, not_run=refused, first_sent_at=first, sending=False)
    return wait(replace(state, disinfection=task), delay)


def start_following(
    state: State, *, queued_at: float, ambiguous: bool, interrupted: bool = False
) -> State:
    """FOLLOWING a disinfection queued at `queued_at` (`ambiguous`: maybe queued;
    `interrupted`: maybe queued by a run that was stopped before the answer came)."""
    task = replace(
        state.disinfection,
        sending=False,
        queued_at=queued_at,
        ambiguous=ambiguous,
        interrupted=interrupted,
    )
    return replace(state, phase=Phase.FOLLOWING, disinfection=task)


def on_following(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    match reply:
        case Tick():
            return request(state, poll_disinfection(state))
        case RequestFailed(error=error):
            return done(replace(state, error=error))
        case DisinfectionStatusReply(status=status, details=details):
            return _follow(_absorb_records(state, details), status, now)
    return unexpected(state, reply)


def _follow(state: State, status: str, now: float) -> tuple[State, Command]:
    task = state.disinfection
    if any(r.type == "done" for r in task.records):
        return done(state)
    queued_at = task.queued_at if task.queued_at is not None else now
    cfg = state.cfg
    if status == "none" and now - queued_at >= cfg.none_grace:
        return done(replace(state, error=_never_seen(task, cfg.none_grace)))
    if now - queued_at >= cfg.disinfection_timeout:
        message = f"disinfection not done after {cfg.disinfection_timeout:g}s"
        return done(replace(state, error=ErrorInfo(ErrorKind.TIMEOUT, message)))
    delay = min(cfg.poll_max, max(cfg.poll_min, state.last_wait * 1.5))
    return wait(state, min(delay, queued_at + cfg.disinfection_timeout - now))


def _never_seen(task: Disinfection, grace: float) -> ErrorInfo:
    """Why a disinfection cPanel still shows no trace of after `grace` seconds ended."""
    if task.interrupted:
        return ErrorInfo(
            ErrorKind.INTERRUPTED,
            "disinfect_files was going out when the run was interrupted; cPanel shows no such "
            f"task after {grace:g}s: not resent (rescan to know)",
        )
    if task.ambiguous:
        why = "disinfection state unknown after an interrupted request; not resent"
        return ErrorInfo(ErrorKind.API, why)
    return ErrorInfo(ErrorKind.API, f"disinfection task did not start within {grace:g}s")


def poll_disinfection(state: State) -> GetDisinfection:
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


def leaves_disinfection_pending(state: State) -> bool:
    """Whether a finished target may have left a disinfection running at the server: queued
    (or maybe queued) and never seen done, or a settle that ended before the sibling's did."""
    if state.settle_since is not None:  # still settling when it ended
        return True
    task = state.disinfection
    return task.queued_at is not None and not any(r.type == "done" for r in task.records)
