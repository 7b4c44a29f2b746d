"""The pure workflow when start_scan does not simply take: a scan someone else started, the
reset status a refused start leaves behind, and an HTTP error answer."""

from __future__ import annotations

from orchestrator import workflow
from orchestrator.model import (
    Action,
    DisinfectionStatusReply,
    ErrorInfo,
    ErrorKind,
    Outcome,
    ScanType,
    Status,
    StatusData,
    Target,
)
from orchestrator.workflow import Phase, WorkflowConfig
from orchestrator.workflow.events import (
    Command,
    DisinfectQueued,
    Finish,
    GetDisinfection,
    GetScanStatus,
    RequestFailed,
    ScanBusy,
    ScanStarted,
    ScanStatusReply,
    StartScan,
    Tick,
    Wait,
)
from tests.workflow.test_machine import infected_state, plan_all

TARGET = Target("web01", "alice", ScanType.HOME)
CFG = WorkflowConfig(poll_min=2, poll_max=30, scan_timeout=3600, stall_timeout=600, reset_grace=60)
BUSY = ScanBusy("A virus scan is already in progress! Please wait until it completes.")
RESET = ScanStatusReply(StatusData(False, 500))  # what start_scan writes first: all zero


def status(complete: bool, started: int, scanned: int = 0, total: int = 10) -> ScanStatusReply:
    return ScanStatusReply(StatusData(complete, started, scanned, scanned * 10, total))


def to_start(now: float = 0.0) -> tuple[workflow.State, Command]:
    state, cmd = workflow.begin(TARGET, CFG, now)
    state, cmd = workflow.step(state, status(True, 100), now)
    assert cmd == StartScan(ScanType.HOME)
    return state, cmd


def until_request(
    state: workflow.State, cmd: Command, now: float
) -> tuple[workflow.State, Command, float]:
    """Sit out the waits (`cmd` is the last command) until the workflow asks for a request."""
    while isinstance(cmd, Wait):
        now += cmd.seconds
        state, cmd = workflow.step(state, Tick(), now)
    return state, cmd, now


def reset_until_start() -> tuple[workflow.State, Command, float]:
    """From the first read of a reset status that never moves, until start_scan is tried."""
    state, cmd = workflow.begin(TARGET, CFG, 0)
    state, cmd = workflow.step(state, RESET, 0)
    now = 0.0
    while not isinstance(cmd, StartScan):
        state, cmd, now = until_request(state, cmd, now)
        if cmd == GetScanStatus():
            state, cmd = workflow.step(state, RESET, now)
    return state, cmd, now


def test_a_start_refused_by_someone_elses_scan_follows_it_to_its_end_then_starts_ours() -> None:
    state, _ = to_start()
    state, cmd = workflow.step(state, BUSY, 1)
    assert isinstance(cmd, Wait)
    assert state.phase is Phase.FOREIGN
    now = 1.0
    # the other scan runs, then completes; none of its counters are taken as ours
    for t, reply in (
        (3, status(False, 200, 2)),
        (5, status(False, 200, 6)),
        (7, status(True, 200, 10)),
    ):
        state, cmd, now = until_request(state, cmd, max(now, t))
        assert cmd == GetScanStatus()
        state, cmd = workflow.step(state, reply, now)
    assert cmd == StartScan(ScanType.HOME)
    assert state.start.baseline == 200  # its completed status is stale from now on
    state, cmd = workflow.step(state, ScanStarted(), now)
    assert state.phase is Phase.SCANNING
    assert state.stats is None


def test_a_start_refused_again_and_again_gives_up_with_an_api_error_naming_the_refusal() -> None:
    state, _ = to_start()
    now = 0.0
    for _ in range(CFG.max_busy_refusals - 1):
        state, cmd = workflow.step(state, BUSY, now)
        assert state.phase is Phase.FOREIGN
        state, cmd, now = until_request(state, cmd, now)
        state, cmd = workflow.step(state, status(True, int(now)), now)
        assert cmd == StartScan(ScanType.HOME)
    state, cmd = workflow.step(state, BUSY, now)
    assert isinstance(cmd, Finish)
    error = cmd.verdict.error
    assert cmd.verdict.status is Status.FAILED
    assert error is not None and error.kind is ErrorKind.API
    assert "already in progress" in error.message
    assert f"refused {CFG.max_busy_refusals} times" in error.message


def test_a_reset_status_that_never_moves_is_not_polled_until_the_stall_timeout() -> None:
    # an earlier start refused while clamd was down left scan_complete 0 and zero counters
    state, cmd = workflow.begin(TARGET, CFG, 0)
    state, cmd = workflow.step(state, RESET, 0)
    assert state.phase is Phase.FOREIGN
    now = 0.0
    polls = 0
    while not isinstance(cmd, StartScan):
        state, cmd, now = until_request(state, cmd, now)
        if cmd == GetScanStatus():
            polls += 1
            state, cmd = workflow.step(state, RESET, now)
    assert CFG.reset_grace <= now < CFG.stall_timeout
    assert polls >= 2


def test_a_scan_in_its_counting_pass_is_followed_when_the_start_is_refused() -> None:
    state, cmd, now = reset_until_start()
    state, cmd = workflow.step(state, BUSY, now)  # a real scan after all: follow it
    assert state.phase is Phase.FOREIGN
    state, cmd, now = until_request(state, cmd, now)
    state, cmd = workflow.step(state, status(True, 900, 10), now)
    assert cmd == StartScan(ScanType.HOME)


def test_an_http_error_on_start_scan_is_retried_after_retry_after_with_a_status_read() -> None:
    state, _ = to_start()
    failed = RequestFailed(
        ErrorInfo(ErrorKind.UNREACHABLE, "start_scan: HTTP 429 Too Many Requests"),
        retry_after=7.0,
    )
    state, cmd = workflow.step(state, failed, 1)
    assert cmd == Wait(7.0)  # no stale-window verification: the call did not run
    state, cmd = workflow.step(state, Tick(), 8)
    assert cmd == GetScanStatus()
    state, cmd = workflow.step(state, status(True, 100), 8)
    assert cmd == StartScan(ScanType.HOME)
    state, cmd = workflow.step(state, ScanStarted(), 8)
    assert state.phase is Phase.SCANNING


def test_start_scan_failing_with_http_errors_ends_fast_naming_the_status_and_attempts() -> None:
    state, _ = to_start()
    error = ErrorInfo(ErrorKind.UNREACHABLE, "start_scan: HTTP 503 Service Unavailable")
    state, cmd = workflow.step(state, RequestFailed(error), 1)
    assert isinstance(cmd, Wait)
    assert cmd.seconds < CFG.start_grace
    state, cmd, now = until_request(state, cmd, 1)
    state, cmd = workflow.step(state, status(True, 100), now)
    state, cmd = workflow.step(state, RequestFailed(error), now)
    assert isinstance(cmd, Finish)
    final = cmd.verdict.error
    assert final is not None and final.kind is ErrorKind.UNREACHABLE
    assert "HTTP 503" in final.message and "2 attempts" in final.message
    assert state.api_calls == 4  # status, start, status, start: no 20-s verification loop


def test_a_disinfection_past_its_deadline_reports_its_files_unknown_not_error() -> None:
    state, cmd = workflow.step(infected_state(), plan_all(Action.DELETE, Action.QUARANTINE), 3)
    state, cmd = workflow.step(state, DisinfectQueued("t"), 3)
    now = 3.0
    while not isinstance(cmd, Finish):
        state, cmd, now = until_request(state, cmd, now)
        if isinstance(cmd, GetDisinfection):
            state, cmd = workflow.step(state, DisinfectionStatusReply("running"), now)
    verdict = cmd.verdict
    assert verdict.error is not None and verdict.error.kind is ErrorKind.TIMEOUT
    assert verdict.files
    assert {f.outcome for f in verdict.files} == {Outcome.UNKNOWN}


def test_a_lost_start_over_a_reset_status_is_not_taken_for_our_scan() -> None:
    # the account's status was left reset by an earlier refused start (time_started 500)
    state, cmd, now = reset_until_start()
    lost = RequestFailed(ErrorInfo(ErrorKind.UNREACHABLE, "connection reset"), ambiguous=True)
    state, cmd = workflow.step(state, lost, now)
    assert state.phase is Phase.VERIFY_START
    state, cmd = workflow.step(state, RESET, now)  # the same reset: our start never ran
    assert state.phase is Phase.VERIFY_START, "a leftover reset status is not our scan"
    while not isinstance(cmd, StartScan):
        state, cmd, now = until_request(state, cmd, now)
        if cmd == GetScanStatus():
            state, cmd = workflow.step(state, RESET, now)
    assert state.start.attempts == 2  # sent again once the stale window has passed
