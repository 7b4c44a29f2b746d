"""Hypothesis over the workflow: a state machine of random legal and illegal replies, and the
policy's first matching rule carried through the workflow to disinfect_files."""

from __future__ import annotations

import html
import json
from types import SimpleNamespace
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from orchestrator import workflow
from orchestrator.config import Policy, Rule
from orchestrator.engine.driver import plan_actions as _plan
from orchestrator.engine.exempt import Judge
from orchestrator.engine.policy import DestructiveBudget, in_mail
from orchestrator.engine.runner import RunOptions
from orchestrator.model import (
    Action,
    DisinfectionRecord,
    DisinfectionStatusReply,
    ErrorInfo,
    ErrorKind,
    Outcome,
    ScanType,
    StatusData,
    Target,
)
from orchestrator.workflow import ACCEPTS, TERMINAL, Phase, WorkflowConfig
from orchestrator.workflow.events import (
    ActionsPlanned,
    Disinfect,
    DisinfectQueued,
    Finish,
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
    Verdict,
    Wait,
)

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
        lambda kind, ambiguous, final, retry_after: RequestFailed(
            ErrorInfo(kind, "x"), ambiguous, retry_after, final
        ),
        st.sampled_from(list(ErrorKind)),
        st.booleans(),
        st.sampled_from([False, False, False, True]),
        st.sampled_from([None, 0.0, 3.0]),
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
        self.starts = 0  # start_scan sent that may have run (not answered "not started")
        self.read_since_start = True  # a status read since the last start_scan
        self.disinfects = 0
        self.listed = False

    @rule(reply=replies, dt=st.floats(0, 60))
    def feed(self, reply: Reply, dt: float) -> None:
        was_terminal = self.state.phase in TERMINAL
        was = self.state.phase
        self.now += dt
        if self.state.phase is Phase.LISTING and isinstance(reply, InfectedListReply):
            self.listed = True
        if isinstance(reply, ScanStatusReply) and self.state.phase in workflow.ACCEPTS:
            self.read_since_start = self.read_since_start or ScanStatusReply in ACCEPTS[was]
        self.state, self.cmd = workflow.step(self.state, reply, self.now)
        if was_terminal:
            assert self.state.phase in TERMINAL, "a finished target never comes back to life"
        if isinstance(reply, RequestFailed) and reply.final:
            assert self.state.phase in TERMINAL, "a server given up ends the target at once"
        not_started = (
            isinstance(reply, RequestFailed)
            and reply.error.kind is ErrorKind.UNREACHABLE
            and not reply.ambiguous
        )
        if was is Phase.STARTING and not_started and self.state.phase is Phase.PRECHECK:
            self.starts -= 1  # the server said it did not run: no attempt
        if was is Phase.DISINFECTING and not_started and isinstance(self.cmd, Wait):
            self.disinfects -= 1  # the server said it did not run: sent again after the wait
        if isinstance(self.cmd, StartScan):
            assert self.read_since_start, "never a second start_scan without a status read"
            self.read_since_start = False
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


# ---------------------------------------------------------------------------------------------
# Property: through the workflow, disinfect_files gets exactly the first matching rule


TARGET = Target("web01", "alice", ScanType.HOME)

CFG = workflow.WorkflowConfig(poll_min=1, poll_max=5)

# Paths as cPanel reports them: HTML-escaped. The policy sees them unescaped.
PATHS = st.sampled_from(
    [
        "/home/alice/public_html/x.php",
        "/home/alice/public_html/Q&amp;A/shell.php",
        "/home/alice/public_html/tom&#x27;s-blog/x.php",
        "/home/alice/mail/inbox",
        "/home/alice/mail/.Q&amp;A folder/inbox",
        "/home/alice/tmp/a.out",
        "/home/alice/backups/site &amp; db.tar.gz",
    ]
)

VIRUSES = st.sampled_from(["Eicar-Signature", "Php.Webshell-1", "Html.Phishing.Bank-2", "A&amp;B"])

GLOBS = st.sampled_from(
    ["*", "*/mail/*", "*/public_html/*", "*Q&A*", "*&amp;*", "Eicar-*", "Php.*", "*'*", "A&B"]
)

RULES = st.builds(
    Rule,
    action=st.sampled_from(list(Action)),
    virus=st.none() | GLOBS,
    path=st.none() | GLOBS,
    account=st.none() | st.sampled_from(["alice", "bob", "a*"]),
    scan_type=st.none() | st.sampled_from(list(ScanType)),
)

POLICIES = st.builds(
    Policy, default=st.sampled_from(list(Action)), rules=st.lists(RULES, max_size=5).map(tuple)
)

LISTINGS = st.lists(st.tuples(PATHS, VIRUSES), max_size=6, unique_by=lambda f: f[0])


def first_match(policy: Policy, path: str, virus: str) -> Action:
    from fnmatch import fnmatchcase

    for candidate in policy.rules:
        if all(
            (
                candidate.virus is None or fnmatchcase(virus, candidate.virus),
                candidate.path is None or fnmatchcase(path, candidate.path),
                candidate.account is None or fnmatchcase(TARGET.account, candidate.account),
                candidate.server is None or fnmatchcase(TARGET.server, candidate.server),
                candidate.scan_type in (None, TARGET.scan_type),
            )
        ):
            return candidate.action
    return policy.default


def drive(policy: Policy, listing: list[tuple[str, str]], dry_run: bool) -> tuple[Any, Any]:
    """Start, complete, list `listing`; plan as the runner does; return (command, state)."""
    state, _ = workflow.begin(TARGET, CFG, 0)
    state, _ = workflow.step(state, ScanStatusReply(None), 0)
    state, _ = workflow.step(state, ScanStarted(), 0)
    state, _ = workflow.step(state, Tick(), 1)
    state, cmd = workflow.step(state, ScanStatusReply(StatusData(True, 100, 5, 50, 5)), 1)
    assert cmd == ListInfected()
    state, cmd = workflow.step(state, InfectedListReply(tuple(listing)), 1)
    if not listing:
        return cmd, state
    assert isinstance(cmd, PlanActions)
    run = SimpleNamespace(
        options=RunOptions(policy=policy, dry_run=dry_run),
        budget=DestructiveBudget(policy.limits),
        judge=Judge(),  # no canary, nothing accepted: every file goes to the policy
        sent={},
    )
    planned: ActionsPlanned = _plan(cast(Any, run), TARGET, cmd.files)
    return workflow.step(state, planned, 1)[::-1]


@given(policy=POLICIES, listing=LISTINGS)
def test_disinfect_files_gets_exactly_the_first_matching_rules_actions(
    policy: Policy, listing: list[tuple[str, str]]
) -> None:
    cmd, state = drive(policy, listing, dry_run=False)
    expected: dict[str, Action] = {}
    for raw_path, raw_virus in listing:
        path, virus = html.unescape(raw_path), html.unescape(raw_virus)
        action = first_match(policy, path, virus)
        if action is Action.REPORT:
            continue
        if action is Action.CLEANSE_MAILBOX and not in_mail(TARGET.account, path):
            continue  # refused before sending: a per-file error outcome
        expected[path] = action
    if expected:
        assert isinstance(cmd, Disinfect), cmd
        assert dict(cmd.actions) == expected
    else:
        assert isinstance(cmd, Finish), "nothing to send: no disinfect_files request"
    for f in workflow.infected_files(state):
        assert f.action is first_match(policy, f.path, f.virus)
        if f.path not in expected:
            assert f.outcome in (Outcome.NOT_REQUESTED, Outcome.ERROR)


@given(policy=POLICIES, listing=LISTINGS)
def test_a_dry_run_never_reaches_disinfect_files_whatever_the_policy(
    policy: Policy, listing: list[tuple[str, str]]
) -> None:
    cmd, _ = drive(policy, listing, dry_run=True)
    assert isinstance(cmd, Finish)
    for f in cmd.verdict.files:
        assert f.outcome is Outcome.NOT_REQUESTED
        assert f.action is first_match(policy, f.path, f.virus)


# ---------------------------------------------------------------------------------------------
# Property: any state the workflow reaches survives the journal's JSON round trip unchanged

REPLY_TYPES = st.sampled_from(
    [
        ScanStatusReply,
        ScanStarted,
        ScanBusy,
        InfectedListReply,
        ActionsPlanned,
        DisinfectQueued,
        DisinfectionStatusReply,
        RequestFailed,
        Tick,
    ]
)
FAILURES = st.builds(
    RequestFailed,
    st.builds(ErrorInfo, st.sampled_from(list(ErrorKind)), st.text(max_size=5)),
    st.booleans(),
    st.none() | st.floats(0, 100),
)
BY_TYPE: dict[type, st.SearchStrategy[Reply]] = {
    ScanStatusReply: st.builds(
        lambda complete, started, scanned, total, size: ScanStatusReply(
            StatusData(complete, started, scanned, scanned * 7, total, size)
        ),
        st.booleans(),
        st.none() | st.integers(99, 102),
        st.integers(0, 50),
        st.integers(0, 50),
        st.integers(0, 5000),
    )
    | st.just(ScanStatusReply(None)),
    ScanStarted: st.just(ScanStarted()),
    ScanBusy: st.just(ScanBusy("A virus scan is already in progress!")),
    InfectedListReply: st.lists(
        st.tuples(PATHS, VIRUSES), max_size=3, unique_by=lambda f: f[0]
    ).map(lambda files: InfectedListReply(tuple(files))),
    ActionsPlanned: st.builds(
        lambda action, limit, outcome: ActionsPlanned(
            (PlannedFile(PATH, "Php.Webshell-1", action, action.sent, outcome, "m"),), limit
        ),
        st.sampled_from(list(Action)),
        st.sampled_from([None, "cap"]),
        st.none() | st.sampled_from([str(o) for o in Outcome]),
    ),
    DisinfectQueued: st.just(DisinfectQueued("t")),
    DisinfectionStatusReply: st.builds(
        DisinfectionStatusReply, st.sampled_from(["none", "queued", "running", "done"]), records
    ),
    RequestFailed: FAILURES,
    Tick: st.just(Tick()),
}


@settings(max_examples=200, deadline=None)
@given(data=st.data(), steps=st.integers(1, 60))
def test_any_state_reached_by_legal_replies_survives_the_journals_json_round_trip(
    data: st.DataObject, steps: int
) -> None:
    cfg = WorkflowConfig(poll_min=1, poll_max=5, scan_timeout=500, stall_timeout=100)
    state, _ = workflow.begin(Target("s", "bob", ScanType.HOME), cfg, 0.0)
    now = 0.0
    for _ in range(steps):
        saved = json.loads(json.dumps(workflow.to_dict(state)))
        assert workflow.from_dict(saved) == state
        if state.phase in TERMINAL:
            break
        # failures end most sequences early: drawn one time in ~five, the later phases are reached
        accepted = [t for t in BY_TYPE if issubclass(t, ACCEPTS[state.phase])]
        weighted = [t for t in accepted for _ in range(1 if t is RequestFailed else 4)]
        reply = data.draw(st.sampled_from(weighted).flatmap(lambda t: BY_TYPE[t]))
        now += data.draw(st.floats(0, 60))
        phase = state.phase
        state, _ = workflow.step(state, reply, now)
        unexpected = f"unexpected {type(reply).__name__}"
        assert state.error is None or state.error.message != f"{unexpected} {workflow.doing(phase)}"
