"""Which replies each phase takes (`workflow.ACCEPTS`): any other reply is a driver bug that ends
the target with an internal error (sticky), and every reply a phase takes is handled by it."""

from __future__ import annotations

import pytest

from orchestrator import workflow
from orchestrator.model import (
    Action,
    DisinfectionStatusReply,
    ErrorInfo,
    ErrorKind,
    ScanType,
    Status,
    StatusData,
    Target,
)
from orchestrator.workflow import ACCEPTS, TERMINAL, Phase, WorkflowConfig
from orchestrator.workflow.events import (
    ActionsPlanned,
    DisinfectQueued,
    Finish,
    InfectedListReply,
    PlannedFile,
    Reply,
    RequestFailed,
    ScanBusy,
    ScanStarted,
    ScanStatusReply,
    Tick,
)

TARGET = Target("web01", "alice", ScanType.HOME)
CFG = WorkflowConfig(poll_min=2, poll_max=30)
PATH = "/home/alice/public_html/x.php"

ONE_OF_EACH: dict[type, Reply] = {
    ScanStatusReply: ScanStatusReply(StatusData(False, 101, 1, 10, 5)),
    ScanStarted: ScanStarted(),
    ScanBusy: ScanBusy("A virus scan is already in progress!"),
    InfectedListReply: InfectedListReply(((PATH, "Php.Webshell-1"),)),
    ActionsPlanned: ActionsPlanned((PlannedFile(PATH, "Php.Webshell-1", Action.DELETE, True),)),
    DisinfectQueued: DisinfectQueued("t"),
    DisinfectionStatusReply: DisinfectionStatusReply("running"),
    RequestFailed: RequestFailed(ErrorInfo(ErrorKind.UNREACHABLE, "reset"), ambiguous=True),
    Tick: Tick(),
}
LIVE = [p for p in Phase if p not in TERMINAL]


def in_phase(phase: Phase) -> workflow.State:
    """A state of `phase` as the workflow leaves it there (after listing: one infected file)."""
    listed = phase in (Phase.PLANNING, Phase.DISINFECTING, Phase.FOLLOWING)
    return workflow.State(
        target=TARGET,
        cfg=CFG,
        phase=phase,
        infected=((PATH, "Php.Webshell-1"),) if listed else (),
        disinfection=workflow.Disinfection(queued_at=0.0 if phase is Phase.FOLLOWING else None),
    )


def test_every_live_phase_says_which_replies_it_takes() -> None:
    assert set(ACCEPTS) == set(LIVE)
    assert all(set(types) <= set(ONE_OF_EACH) for types in ACCEPTS.values())


@pytest.mark.parametrize(
    ("phase", "kind"),
    [(p, t) for p in LIVE for t in ONE_OF_EACH if not issubclass(t, ACCEPTS[p])],
    ids=str,
)
def test_a_reply_the_phase_does_not_take_fails_the_target_for_good(
    phase: Phase, kind: type
) -> None:
    state, cmd = workflow.step(in_phase(phase), ONE_OF_EACH[kind], 1.0)
    assert state.phase is Phase.FAILED
    assert isinstance(cmd, Finish)
    # files already listed are never hidden by the failure: such a target reports them
    assert cmd.verdict.status is (Status.INFECTED if state.infected else Status.FAILED)
    assert cmd.verdict.error == ErrorInfo(
        ErrorKind.INTERNAL, f"unexpected {kind.__name__} {workflow.doing(phase)}"
    )
    for reply in ONE_OF_EACH.values():  # sticky: nothing brings it back
        again, cmd_again = workflow.step(state, reply, 2.0)
        assert again == state and cmd_again == cmd


@pytest.mark.parametrize(("phase", "kind"), [(p, t) for p in LIVE for t in ACCEPTS[p]], ids=str)
def test_a_reply_the_phase_takes_is_handled_not_refused(phase: Phase, kind: type) -> None:
    state, _ = workflow.step(in_phase(phase), ONE_OF_EACH[kind], 1.0)
    assert state.error is None or state.error.kind is not ErrorKind.INTERNAL, state.error
