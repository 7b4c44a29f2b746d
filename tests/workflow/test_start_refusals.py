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


def test_a_start_answered_503_again_and_again_is_retried_after_reads_until_its_deadline() -> None:
    state, _ = to_start()
    error = ErrorInfo(ErrorKind.UNREACHABLE, "start_scan: HTTP 503 Service Unavailable")
    now, waits, starts = 1.0, [], 1
    while True:
        state, cmd = workflow.step(state, RequestFailed(error), now)
        if isinstance(cmd, Finish):
            break
        assert isinstance(cmd, Wait) and state.phase is Phase.PRECHECK
        waits.append(cmd.seconds)
        state, cmd, now = until_request(state, cmd, now)
        assert cmd == GetScanStatus(), "never a second start_scan without a status read"
        state, cmd = workflow.step(state, status(True, 100), now)
        assert cmd == StartScan(ScanType.HOME)
        starts += 1
    assert waits[:5] == [2, 4, 8, 16, 30] and max(waits) == CFG.poll_max  # backoff, capped
    assert now + CFG.poll_max >= CFG.scan_timeout  # until the deadline, not twice and done
    final = cmd.verdict.error
    assert final is not None and final.kind is ErrorKind.UNREACHABLE
    assert "HTTP 503" in final.message and f"{starts} times not started" in final.message
    assert state.start.attempts == 1, "a start answered without running is no attempt"


def test_a_refused_start_then_an_accepted_one_scans_with_one_attempt_spent() -> None:
    state, _ = to_start()
    refused = RequestFailed(ErrorInfo(ErrorKind.UNREACHABLE, "start_scan: cannot connect"))
    state, cmd = workflow.step(state, refused, 1)
    state, cmd, now = until_request(state, cmd, 1)
    state, cmd = workflow.step(state, status(True, 100), now)
    assert cmd == StartScan(ScanType.HOME)
    state, cmd = workflow.step(state, ScanStarted(), now)
    assert state.phase is Phase.SCANNING
    assert (state.start.attempts, state.start.not_started, state.start.first_sent_at) == (1, 1, 0)


def test_a_server_given_up_ends_the_target_in_any_phase_without_a_retry() -> None:
    gone = RequestFailed(
        ErrorInfo(ErrorKind.UNREACHABLE, "server down since 02:14:05 UTC, 15m"), final=True
    )
    state, _ = to_start()
    state, cmd = workflow.step(state, gone, 1)  # a start that did not run: no retry now
    assert isinstance(cmd, Finish) and cmd.verdict.status is Status.FAILED
    assert cmd.verdict.error == gone.error


def test_a_status_read_of_a_running_scan_that_fails_is_no_verdict_until_the_stall_timeout() -> None:
    state, _ = to_start()
    state, cmd = workflow.step(state, ScanStarted(), 0)
    state, cmd, now = until_request(state, cmd, 0)
    state, cmd = workflow.step(state, status(False, 200, 1), now)
    lost = RequestFailed(ErrorInfo(ErrorKind.UNREACHABLE, "get_scan_status: HTTP 500"))
    while True:
        state, cmd, now = until_request(state, cmd, now)
        assert cmd == GetScanStatus()
        state, cmd = workflow.step(state, lost, now)
        if isinstance(cmd, Finish):
            break
        assert state.phase is Phase.SCANNING, "polling resumes: the scan is the server's"
    assert now >= CFG.stall_timeout
    error = cmd.verdict.error
    assert error is not None and error.kind is ErrorKind.UNREACHABLE
    assert "HTTP 500" in error.message and "no scan progress seen" in error.message


def test_a_status_read_that_fails_then_answers_complete_lists_the_findings() -> None:
    state, _ = to_start()
    state, cmd = workflow.step(state, ScanStarted(), 0)
    state, cmd, now = until_request(state, cmd, 0)
    lost = RequestFailed(ErrorInfo(ErrorKind.PROTOCOL, "truncated JSON"), ambiguous=True)
    state, cmd = workflow.step(state, lost, now)
    state, cmd, now = until_request(state, cmd, now)
    state, cmd = workflow.step(state, status(True, 200, 10), now)
    assert state.phase is Phase.LISTING


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
