"""Hypothesis state machine over the workflow: random legal and illegal replies."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from orchestrator import workflow
from orchestrator.events import (
    ActionsPlanned,
    Disinfect,
    DisinfectionRecord,
    DisinfectionStatusReply,
    DisinfectQueued,
    Finish,
    InfectedListReply,
    PlannedFile,
    Reply,
    RequestFailed,
    ScanStarted,
    ScanStatusReply,
    StartScan,
    StatusData,
    Tick,
    Verdict,
)
from orchestrator.model import Action, ErrorInfo, ErrorKind, ScanType, Target
from orchestrator.workflow import TERMINAL, Phase, WorkflowConfig

PATH = "/home/bob/public_html/x.php"

statuses = st.builds(
    lambda complete, started, scanned: ScanStatusReply(
        StatusData(complete, started, scanned, scanned, 10)
    ),
    st.booleans(),
    st.sampled_from([None, 100, 101, 102]),
    st.integers(0, 10),
) | st.just(ScanStatusReply(None))
records = st.lists(
    st.builds(
        DisinfectionRecord,
        id=st.integers(1, 6),
        type=st.sampled_from(["step", "issue", "done"]),
        state=st.sampled_from(["quarantined", "error", "success", "no-action"]),
        file=st.sampled_from([None, "public_html/x.php", PATH]),
    ),
    max_size=3,
).map(tuple)
replies: st.SearchStrategy[Reply] = st.one_of(
    statuses,
    st.just(ScanStarted()),
    st.just(Tick()),
    st.just(InfectedListReply(((PATH, "Php.Webshell-1"),))),
    st.just(InfectedListReply(())),
    st.builds(
        lambda action, limit: ActionsPlanned(
            (PlannedFile(PATH, "Php.Webshell-1", action, action.sent),), limit
        ),
        st.sampled_from(list(Action)),
        st.sampled_from([None, "cap"]),
    ),
    st.just(DisinfectQueued("t")),
    st.builds(
        DisinfectionStatusReply, st.sampled_from(["none", "queued", "running", "done"]), records
    ),
    st.builds(
        lambda kind, ambiguous: RequestFailed(ErrorInfo(kind, "x"), ambiguous),
        st.sampled_from(list(ErrorKind)),
        st.booleans(),
    ),
)


class WorkflowMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        cfg = WorkflowConfig(
            poll_min=1, poll_max=5, scan_timeout=500, stall_timeout=100, none_grace=20
        )
        self.state, self.cmd = workflow.begin(Target("s", "bob", ScanType.HOME), cfg, 0.0)
        self.now = 0.0
        self.verdict: Verdict | None = None
        self.starts = 0
        self.disinfects = 0
        self.listed = False

    @rule(reply=replies, dt=st.floats(0, 60))
    def feed(self, reply: Reply, dt: float) -> None:
        was_terminal = self.state.phase in TERMINAL
        self.now += dt
        if self.state.phase is Phase.LISTING and isinstance(reply, InfectedListReply):
            self.listed = True
        self.state, self.cmd = workflow.step(self.state, reply, self.now)
        if was_terminal:
            assert self.state.phase in TERMINAL, "a finished target never comes back to life"
        if isinstance(self.cmd, StartScan):
            self.starts += 1
        if isinstance(self.cmd, Disinfect):
            self.disinfects += 1
            assert self.listed, "never disinfect for a scan that was not listed to completion"
        if isinstance(self.cmd, Finish):
            if self.verdict is None:
                self.verdict = self.cmd.verdict
            assert self.cmd.verdict == self.verdict, "a target finishes once, with one verdict"

    @invariant()
    def never_resends_blindly(self) -> None:
        assert self.starts <= self.state.cfg.max_start_attempts
        assert self.disinfects <= 1

    @invariant()
    def terminal_iff_finish(self) -> None:
        assert (self.state.phase in TERMINAL) == isinstance(self.cmd, Finish)


WorkflowMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
TestWorkflowMachine = WorkflowMachine.TestCase
