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
what it accepts. A `final` RequestFailed (the server is given up for the run) ends the target in
any phase, before its handler: FAILED, or DONE with the error once disinfection was sent (the
findings stand, their outcomes unknown), as a failed request there always has.

PRECHECK reads the status before starting: its `time_started` is the baseline that tells our
scan's status from the stale one of an earlier scan, and a scan already running (FOREIGN: started
by someone else, or left by a crashed run) is waited for instead of colliding with it.
VERIFY_START follows a start_scan whose answer was lost: it reads the status for up to
`start_grace` (the previous scan's status may linger) before sending start_scan once more.

The records are in `state.py`; the phases' handlers in `start.py`, `scan.py` and `remedy.py`;
the verdict in `moves.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from orchestrator.model import DisinfectionStatusReply, Target
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
    Reply,
    RequestFailed,
    ScanBusy,
    ScanStarted,
    ScanStatusReply,
    Tick,
)
from orchestrator.workflow.moves import done, fail, request, unexpected, verdict_of
from orchestrator.workflow.remedy import (
    disinfect_actions,
    on_disinfecting,
    on_following,
    on_planning,
    poll_disinfection,
    start_following,
)
from orchestrator.workflow.scan import on_listing, on_scanning, poll_status
from orchestrator.workflow.start import (
    on_foreign,
    on_precheck,
    on_settling,
    on_starting,
    on_verify_start,
)
from orchestrator.workflow.state import TERMINAL, Phase, State, WorkflowConfig

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
    Phase.DISINFECTING: (DisinfectQueued, RequestFailed, Tick),
    Phase.FOLLOWING: (DisinfectionStatusReply, RequestFailed, Tick),
}

#: Each handler gets only the replies ACCEPTS lists for its phase. The `unexpected` after each
#: handler's `match` is reached only if the table and a handler disagree: a FAILED verdict then
#: too, never a crash (tests/workflow/test_replies.py keeps them in step).
_HANDLERS: dict[Phase, Callable[[State, Reply, float], tuple[State, Command]]] = {
    Phase.SETTLING: on_settling,
    Phase.PRECHECK: on_precheck,
    Phase.FOREIGN: on_foreign,
    Phase.STARTING: on_starting,
    Phase.VERIFY_START: on_verify_start,
    Phase.SCANNING: on_scanning,
    Phase.LISTING: on_listing,
    Phase.PLANNING: on_planning,
    Phase.DISINFECTING: on_disinfecting,
    Phase.FOLLOWING: on_following,
}


# ---------------------------------------------------------------------------------------------
# Entry points


def begin(
    target: Target, cfg: WorkflowConfig, now: float, *, settle: bool = False
) -> tuple[State, Command]:
    """A target's first command. `settle`: a sibling target of the account stopped following
    a disinfection that may still run: wait for it before anything else (see `on_settling`)."""
    state = State(target=target, cfg=cfg, started_at=now)
    if settle:
        settling = replace(state, phase=Phase.SETTLING, settle_since=now)
        return request(settling, GetDisinfection(None))
    return request(state, GetScanStatus())


def step(state: State, reply: Reply, now: float) -> tuple[State, Command]:
    if state.phase in TERMINAL:
        return state, Finish(verdict_of(state))
    if not isinstance(reply, ACCEPTS[state.phase]):
        return unexpected(state, reply)
    if isinstance(reply, RequestFailed) and reply.final:
        if state.phase in (Phase.DISINFECTING, Phase.FOLLOWING):
            return done(replace(state, error=reply.error))
        return fail(state, reply.error)
    return _HANDLERS[state.phase](state, reply, now)


def resume(state: State, now: float) -> tuple[State, Command]:
    """Continue from a journaled state; never resends a request whose fate is unknown, and
    sends a disinfect_files the journal shows never left (`Disinfection.sending` unset)."""
    match state.phase:
        case Phase.DONE | Phase.FAILED:
            return state, Finish(verdict_of(state))
        case Phase.SETTLING:
            return request(state, GetDisinfection(None))
        case Phase.STARTING | Phase.VERIFY_START:
            return request(replace(state, phase=Phase.VERIFY_START), GetScanStatus())
        case Phase.PRECHECK | Phase.FOREIGN:
            return request(state, GetScanStatus())
        case Phase.SCANNING:
            # sent now: the round trip that bounds the next wait is not the time spent down
            return poll_status(state, now)
        case Phase.LISTING:
            return request(state, ListInfected())
        case Phase.PLANNING:
            return state, PlanActions(state.infected)
        case Phase.DISINFECTING:
            task = state.disinfection
            if not task.sending:
                # Journaled before the POST left (a session login at most): never sent. Sent
                # now, once; its api_calls count was taken when the command was first made.
                return state, Disinfect(disinfect_actions(task.planned))
            # It was going out: it may have been queued. Followed, never resent.
            queued_at = task.queued_at or now
            following = start_following(
                state, queued_at=queued_at, ambiguous=True, interrupted=True
            )
            return request(following, poll_disinfection(following))
        case Phase.FOLLOWING:
            return request(state, poll_disinfection(state))
