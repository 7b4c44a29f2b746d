"""The pure workflow when a sibling target may have left a disinfection running: its end
deletes the account's infected list, so no scan starts before it is known to be over."""

from __future__ import annotations

from orchestrator import workflow
from orchestrator.model import (
    Action,
    DisinfectionRecord,
    DisinfectionStatusReply,
    ErrorInfo,
    ErrorKind,
    ScanType,
    Status,
    Target,
)
from orchestrator.workflow import Phase, WorkflowConfig
from orchestrator.workflow.events import (
    DisinfectQueued,
    Finish,
    GetDisinfection,
    GetScanStatus,
    RequestFailed,
    Tick,
    Wait,
)
from tests.workflow.test_machine import infected_state, plan_all

MAIL = Target("web01", "alice", ScanType.MAIL)
CFG = WorkflowConfig(poll_min=2, poll_max=30, none_grace=60, disinfection_timeout=600)
LOST = RequestFailed(ErrorInfo(ErrorKind.UNREACHABLE, "connection reset"), ambiguous=True)
DONE = DisinfectionStatusReply(
    "done",
    (
        DisinfectionRecord(1, "step", "quarantined", "x.php"),
        DisinfectionRecord(2, "done", "success"),
    ),
)


def test_a_settling_target_reads_the_disinfection_before_any_scan_status() -> None:
    state, cmd = workflow.begin(MAIL, CFG, 0, settle=True)
    assert state.phase is Phase.SETTLING
    assert cmd == GetDisinfection(None)
    state, cmd = workflow.step(state, DisinfectionStatusReply("running"), 0)
    assert isinstance(cmd, Wait)
    state, cmd = workflow.step(state, Tick(), 5)
    assert cmd == GetDisinfection(None)
    state, cmd = workflow.step(state, LOST, 5)  # a lost read: keep asking, never assume
    assert isinstance(cmd, Wait)
    state, cmd = workflow.step(state, Tick(), 10)
    state, cmd = workflow.step(state, DONE, 10)
    assert cmd == GetScanStatus()  # now the scan may go
    assert state.phase is Phase.PRECHECK
    assert not workflow.leaves_disinfection_pending(state)


def test_none_for_the_whole_grace_lets_the_scan_go() -> None:
    state, cmd = workflow.begin(MAIL, CFG, 0, settle=True)
    now = 0.0
    while cmd != GetScanStatus():
        state, cmd = workflow.step(state, DisinfectionStatusReply("none"), now)
        if isinstance(cmd, Wait):
            now += cmd.seconds
            state, cmd = workflow.step(state, Tick(), now)
    assert now >= CFG.none_grace


def test_a_disinfection_that_never_ends_fails_the_target_unscanned_not_clean() -> None:
    state, cmd = workflow.begin(MAIL, CFG, 0, settle=True)
    now = 0.0
    while not isinstance(cmd, Finish):
        state, cmd = workflow.step(state, DisinfectionStatusReply("running"), now)
        if isinstance(cmd, Wait):
            now += cmd.seconds
            state, cmd = workflow.step(state, Tick(), now)
    verdict = cmd.verdict
    assert verdict.status is Status.FAILED
    assert verdict.error is not None and verdict.error.kind is ErrorKind.API
    assert "not scanned" in verdict.error.message
    assert workflow.leaves_disinfection_pending(state)  # the next sibling must settle too


def test_a_disinfection_followed_to_done_leaves_nothing_pending_and_a_lost_one_does() -> None:
    state, _ = workflow.step(infected_state(), plan_all(Action.QUARANTINE, Action.IGNORE), 3)
    state, _ = workflow.step(state, DisinfectQueued("t"), 3)
    assert workflow.leaves_disinfection_pending(state)
    done, cmd = workflow.step(state, Tick(), 5)
    done, cmd = workflow.step(done, DONE, 5)
    assert isinstance(cmd, Finish)
    assert not workflow.leaves_disinfection_pending(done)
    lost, cmd = workflow.step(state, Tick(), 5)
    lost, cmd = workflow.step(lost, LOST, 5)  # stopped following: cPanel may still run it
    assert isinstance(cmd, Finish)
    assert workflow.leaves_disinfection_pending(lost)
