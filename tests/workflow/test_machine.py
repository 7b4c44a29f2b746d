"""The pure workflow: plain synchronous tests, no I/O, the clock passed in."""

from __future__ import annotations

import json

import pytest

from orchestrator import workflow
from orchestrator.config import PollInterval, Settings, Timeouts
from orchestrator.model import (
    Action,
    DisinfectionRecord,
    DisinfectionStatusReply,
    ErrorInfo,
    ErrorKind,
    Outcome,
    ScanType,
    Status,
    StatusData,
    Target,
)
from orchestrator.workflow import Phase, WorkflowConfig, poll_schedule
from orchestrator.workflow.events import (
    ActionsPlanned,
    Disinfect,
    DisinfectQueued,
    Finish,
    GetDisinfection,
    GetScanStatus,
    InfectedListReply,
    ListInfected,
    PlanActions,
    PlannedFile,
    RequestFailed,
    ScanStarted,
    ScanStatusReply,
    StartScan,
    Tick,
    Verdict,
    Wait,
)

TARGET = Target("web01", "alice", ScanType.HOME)
CFG = WorkflowConfig(
    poll_min=2,
    poll_max=30,
    scan_timeout=3600,
    stall_timeout=600,
    disinfection_timeout=600,
    none_grace=60,
)


def status(
    complete: bool, started: int | None, scanned: int = 0, total: int = 0
) -> ScanStatusReply:
    return ScanStatusReply(StatusData(complete, started, scanned, scanned * 10, total))


def start_scanning(now: float = 0.0, previous: ScanStatusReply | None = None) -> workflow.State:
    state, cmd = workflow.begin(TARGET, CFG, now)
    assert cmd == GetScanStatus()
    state, cmd = workflow.step(state, previous or ScanStatusReply(None), now)
    assert cmd == StartScan(ScanType.HOME)
    state, cmd = workflow.step(state, ScanStarted(), now)
    assert isinstance(cmd, Wait)
    assert state.phase is Phase.SCANNING
    return state


def finish(cmd: object) -> Verdict:
    assert isinstance(cmd, Finish), cmd
    return cmd.verdict


def test_clean_scan_walks_start_poll_list_and_finishes_clean() -> None:
    state = start_scanning()
    state, cmd = workflow.step(state, Tick(), 2)
    assert cmd == GetScanStatus()
    state, cmd = workflow.step(state, status(False, 100, 5, 10), 2)
    assert isinstance(cmd, Wait)
    state, cmd = workflow.step(state, Tick(), 4)
    state, cmd = workflow.step(state, status(True, 100, 10, 10), 4)
    assert cmd == ListInfected()
    state, cmd = workflow.step(state, InfectedListReply(()), 4)
    verdict = finish(cmd)
    assert verdict.status is Status.CLEAN
    assert verdict.scan is not None and verdict.scan.scanned_file_count == 10
    assert state.api_calls == 5  # precheck, start, two polls, list


def test_previous_completed_status_is_not_taken_for_this_scan() -> None:
    """The stale status of an earlier scan (same time_started, complete) is polled past."""
    state = start_scanning(previous=status(True, 100, 50, 50))
    assert state.start.baseline == 100
    state, cmd = workflow.step(state, Tick(), 2)
    state, cmd = workflow.step(state, status(True, 100, 50, 50), 2)  # stale: still the old scan
    assert isinstance(cmd, Wait), "a stale completed status must not end the scan"
    state, cmd = workflow.step(state, Tick(), 4)
    state, cmd = workflow.step(state, status(True, 101, 7, 7), 4)  # ours: new time_started
    assert cmd == ListInfected()


def test_completion_counts_once_a_running_status_was_seen_even_with_same_time_started() -> None:
    state = start_scanning(previous=status(True, 100, 50, 50))
    state, _ = workflow.step(state, Tick(), 2)
    state, cmd = workflow.step(state, status(False, 100, 1, 50), 2)
    assert state.scan.seen_running
    state, _ = workflow.step(state, Tick(), 4)
    state, cmd = workflow.step(state, status(True, 100, 50, 50), 4)
    assert cmd == ListInfected()


def test_start_scan_refused_is_an_error_not_something_to_poll() -> None:
    state, _ = workflow.begin(TARGET, CFG, 0)
    state, _ = workflow.step(state, ScanStatusReply(None), 0)
    error = ErrorInfo(ErrorKind.API, "A virus scan is already in progress!")
    state, cmd = workflow.step(state, RequestFailed(error), 0)
    verdict = finish(cmd)
    assert verdict.status is Status.FAILED
    assert verdict.error == error


def test_ambiguous_start_is_checked_before_any_resend() -> None:
    state, _ = workflow.begin(TARGET, CFG, 0)
    state, _ = workflow.step(state, status(True, 100, 5, 5), 0)
    failure = RequestFailed(ErrorInfo(ErrorKind.UNREACHABLE, "reset"), ambiguous=True)
    state, cmd = workflow.step(state, failure, 0)
    assert cmd == GetScanStatus()
    assert state.phase is Phase.VERIFY_START
    # the scan did start: attach to it, do not start another
    state, cmd = workflow.step(state, status(False, 101, 1, 5), 1)
    assert isinstance(cmd, Wait)
    assert state.phase is Phase.SCANNING


def test_ambiguous_start_that_did_not_take_is_sent_again_once_then_gives_up() -> None:
    """The old status for longer than the stale window: the start did not take."""
    grace = CFG.start_grace
    state, _ = workflow.begin(TARGET, CFG, 0)
    state, _ = workflow.step(state, status(True, 100, 5, 5), 0)
    failure = RequestFailed(ErrorInfo(ErrorKind.UNREACHABLE, "reset"), ambiguous=True)
    state, _ = workflow.step(state, failure, 0)
    now, polls = 0.0, 0
    cmd: object = GetScanStatus()
    while cmd != StartScan(ScanType.HOME):  # the old status, again and again
        assert now < grace + CFG.poll_min, "resent only once the grace has passed"
        if isinstance(cmd, Wait):
            now += cmd.seconds
            state, cmd = workflow.step(state, Tick(), now)
        state, cmd = workflow.step(state, status(True, 100, 5, 5), now)
        polls += 1
    assert now >= grace and polls >= 2
    state, _ = workflow.step(state, failure, now)
    state, cmd = workflow.step(state, status(True, 100, 5, 5), now + grace)
    verdict = finish(cmd)
    assert verdict.status is Status.FAILED
    assert verdict.error is not None and verdict.error.kind is ErrorKind.UNREACHABLE


def test_a_start_that_took_but_shows_late_is_not_sent_again() -> None:
    """cPanel's stale window: the old completed status, then ours. One start_scan only."""
    state, _ = workflow.begin(TARGET, CFG, 0)
    state, _ = workflow.step(state, status(True, 100, 5, 5), 0)
    failure = RequestFailed(ErrorInfo(ErrorKind.UNREACHABLE, "reset"), ambiguous=True)
    state, _ = workflow.step(state, failure, 0)
    state, cmd = workflow.step(state, status(True, 100, 5, 5), 0.1)  # stale
    assert isinstance(cmd, Wait)
    state, cmd = workflow.step(state, Tick(), 0.1 + cmd.seconds)
    assert cmd == GetScanStatus()
    state, cmd = workflow.step(state, status(False, 101, 1, 5), 2.1)  # ours after all
    assert state.phase is Phase.SCANNING and state.start.attempts == 1


def test_a_scan_already_running_is_waited_for_not_collided_with() -> None:
    state, _ = workflow.begin(TARGET, CFG, 0)
    state, cmd = workflow.step(state, status(False, 90, 3, 10), 0)
    assert state.phase is Phase.FOREIGN
    assert isinstance(cmd, Wait)
    state, cmd = workflow.step(state, Tick(), 2)
    state, cmd = workflow.step(state, status(True, 90, 10, 10), 2)
    assert cmd == StartScan(ScanType.HOME)
    assert state.start.baseline == 90


def test_stall_and_deadline_fail_with_their_kinds() -> None:
    state = start_scanning()
    state, _ = workflow.step(state, Tick(), 2)
    state, _ = workflow.step(state, status(False, 100, 5, 10), 2)
    state, _ = workflow.step(state, Tick(), 700)
    state, cmd = workflow.step(state, status(False, 100, 5, 10), 700)
    verdict = finish(cmd)
    assert verdict.error is not None and verdict.error.kind is ErrorKind.STALLED

    state = start_scanning()
    now = 0.0
    for i in range(1, 200):
        now = i * 25.0
        state, cmd = workflow.step(state, Tick(), now)
        state, cmd = workflow.step(state, status(False, 100, i, 10_000), now)
        if isinstance(cmd, Finish):
            break
    verdict = finish(cmd)
    assert verdict.error is not None and verdict.error.kind is ErrorKind.TIMEOUT
    assert now <= CFG.scan_timeout + CFG.poll_max


def test_polls_land_near_the_predicted_end_instead_of_every_few_seconds() -> None:
    """A 600 s scan with steady progress needs only a handful of polls."""
    state = start_scanning()
    now, polls = 0.0, 0
    cmd: object = Wait(2)
    while not isinstance(cmd, Finish | ListInfected):
        assert isinstance(cmd, Wait)
        now += cmd.seconds
        state, cmd = workflow.step(state, Tick(), now)
        polls += 1
        scanned = min(int(now / 600 * 1000), 1000)
        state, cmd = workflow.step(state, status(scanned >= 1000, 100, scanned, 1000), now)
    assert cmd == ListInfected()
    assert polls <= 8
    assert now < 600 * 1.05


def test_a_prediction_far_beyond_its_measured_span_is_checked_early() -> None:
    """10 files in 10 s says "980 s to go": do not trust it yet, look again soon."""
    state = start_scanning()
    state, _ = workflow.step(state, Tick(), 2)
    state, _ = workflow.step(state, status(False, 100, 10, 1000), 2)
    state, _ = workflow.step(state, Tick(), 12)
    state, cmd = workflow.step(state, status(False, 100, 20, 1000), 12)
    assert isinstance(cmd, Wait)
    assert cmd.seconds == pytest.approx(CFG.poll_max)  # 3 x the 10-s span, at least poll_max
    state, _ = workflow.step(state, Tick(), 42)
    state, cmd = workflow.step(state, status(False, 100, 50, 1000), 42)
    assert isinstance(cmd, Wait)  # 950 files at 40 per 40 s: 950 s, still far: 3 x 40 s
    assert cmd.seconds == pytest.approx(poll_schedule.SPAN_REACH * 40)
    assert cmd.seconds < 950 / 2


def at(files: int, scanned_bytes: int) -> ScanStatusReply:
    return ScanStatusReply(StatusData(False, 100, files, scanned_bytes, 1000, 1_000_000))


@pytest.mark.parametrize(
    ("files", "scanned_bytes", "seconds_left"),
    [
        (100, 900_000, 100 / 9),  # a few huge files first: bytes say near, file counts far
        (900, 100_000, 100 / 9),  # many tiny files first: file counts say near, bytes far
    ],
)
def test_the_nearer_of_the_file_and_byte_predictions_is_used(
    files: int, scanned_bytes: int, seconds_left: float
) -> None:
    """The end lies between the two predictions: the nearer one is not passed (but by the
    slack), and the farther one does not make the wait a blind poll_min either."""
    state = start_scanning()
    state, _ = workflow.step(state, Tick(), 2)
    state, _ = workflow.step(state, at(0, 0), 2)
    state, _ = workflow.step(state, Tick(), 102)
    state, cmd = workflow.step(state, at(files, scanned_bytes), 102)
    assert isinstance(cmd, Wait)
    slack = poll_schedule.LATE_SHARE * 102
    assert poll_schedule.FIRST_RATE_SHARE * seconds_left <= cmd.seconds <= seconds_left + slack
    assert cmd.seconds > CFG.poll_min


def test_a_first_rate_is_followed_part_way_and_a_confirmed_one_to_the_end() -> None:
    """100 files per 33 s: 300 left is 100 s. Seen once, sleep part of the way; once the
    counters have moved again just before (the rate is bracketed), almost all of it."""
    state = start_scanning()
    state, _ = workflow.step(state, Tick(), 2)
    state, _ = workflow.step(state, status(False, 100, 100, 1000), 2)
    state, _ = workflow.step(state, Tick(), 202)
    state, cmd = workflow.step(state, status(False, 100, 700, 1000), 202)
    assert isinstance(cmd, Wait)
    assert poll_schedule.FIRST_RATE_SHARE * 100 <= cmd.seconds < 100

    state = start_scanning()
    for now, scanned in ((2, 100), (192, 670), (202, 700)):
        state, _ = workflow.step(state, Tick(), now)
        state, cmd = workflow.step(state, status(False, 100, scanned, 1000), now)
    assert isinstance(cmd, Wait)
    assert 0.9 * 100 <= cmd.seconds <= 100


def test_waits_never_pass_the_stall_deadline() -> None:
    state = start_scanning()
    state, _ = workflow.step(state, Tick(), 2)
    state, cmd = workflow.step(state, status(False, 100, 1, 1_000_000), 2)
    state, _ = workflow.step(state, Tick(), 50)
    state, cmd = workflow.step(state, status(False, 100, 2, 1_000_000), 50)
    assert isinstance(cmd, Wait)
    assert cmd.seconds <= CFG.stall_timeout


def infected_state() -> workflow.State:
    state = start_scanning()
    state, _ = workflow.step(state, Tick(), 2)
    state, _ = workflow.step(state, status(True, 100, 3, 3), 2)
    files = (
        ("/home/alice/public_html/a&amp;b.php", "Php.Webshell-1"),
        ("/home/alice/mail/inbox", "Eicar-Signature"),
    )
    state, cmd = workflow.step(state, InfectedListReply(files), 2)
    assert cmd == PlanActions(
        (
            ("/home/alice/public_html/a&b.php", "Php.Webshell-1"),
            ("/home/alice/mail/inbox", "Eicar-Signature"),
        )
    ), "paths are HTML-unescaped before planning"
    return state


def plan_all(action_web: Action, action_mail: Action) -> ActionsPlanned:
    return ActionsPlanned(
        (
            PlannedFile(
                "/home/alice/public_html/a&b.php", "Php.Webshell-1", action_web, action_web.sent
            ),
            PlannedFile("/home/alice/mail/inbox", "Eicar-Signature", action_mail, action_mail.sent),
        )
    )


def test_report_only_plan_sends_nothing_and_marks_not_requested() -> None:
    state = infected_state()
    planned = ActionsPlanned(
        tuple(
            PlannedFile(p, v, Action.REPORT, False, str(Outcome.NOT_REQUESTED))
            for p, v in state.infected
        )
    )
    state, cmd = workflow.step(state, planned, 3)
    verdict = finish(cmd)
    assert verdict.status is Status.INFECTED
    assert [f.outcome for f in verdict.files] == [Outcome.NOT_REQUESTED] * 2


def test_disinfection_follows_records_through_transient_none_to_done() -> None:
    state = infected_state()
    state, cmd = workflow.step(state, plan_all(Action.QUARANTINE, Action.CLEANSE_MAILBOX), 3)
    assert cmd == Disinfect(
        {
            "/home/alice/public_html/a&b.php": Action.QUARANTINE,
            "/home/alice/mail/inbox": Action.CLEANSE_MAILBOX,
        }
    )
    state, cmd = workflow.step(state, DisinfectQueued("00000000/abc"), 3)
    assert isinstance(cmd, Wait)
    state, cmd = workflow.step(state, Tick(), 5)
    assert cmd == GetDisinfection(None)
    state, cmd = workflow.step(state, DisinfectionStatusReply("none"), 5)  # not started yet
    assert isinstance(cmd, Wait), "a `none` right after queueing is not `done`"
    state, cmd = workflow.step(state, Tick(), 7)
    step1 = DisinfectionRecord(1, "step", "quarantined", "public_html/a&b.php")
    state, cmd = workflow.step(state, DisinfectionStatusReply("running", (step1,)), 7)
    state, cmd = workflow.step(state, Tick(), 9)
    assert cmd == GetDisinfection(1), "the next poll asks only for records after the last seen"
    step2 = DisinfectionRecord(2, "step", "mailbox-cleansed", "/home/alice/mail/inbox")
    done = DisinfectionRecord(3, "done", "success")
    state, cmd = workflow.step(state, DisinfectionStatusReply("done", (step2, done)), 9)
    verdict = finish(cmd)
    assert [f.outcome for f in verdict.files] == [Outcome.QUARANTINED, Outcome.MAILBOX_CLEANSED]
    assert verdict.error is None


def test_none_that_lasts_past_the_grace_ends_with_an_error_and_no_resend() -> None:
    state = infected_state()
    state, _ = workflow.step(state, plan_all(Action.DELETE, Action.IGNORE), 3)
    state, _ = workflow.step(state, DisinfectQueued("t"), 3)
    now = 3.0
    cmd: object = None
    while not isinstance(cmd, Finish):
        now += 10
        state, cmd = workflow.step(state, Tick(), now)
        assert not isinstance(cmd, Disinfect)
        if isinstance(cmd, GetDisinfection):
            state, cmd = workflow.step(state, DisinfectionStatusReply("none"), now)
    verdict = cmd.verdict
    assert verdict.error is not None and verdict.error.kind is ErrorKind.API
    # queued but never seen: cPanel may still do it, so the outcome is not guessed
    assert all(f.outcome is Outcome.UNKNOWN for f in verdict.files)


def test_policy_limit_sends_nothing() -> None:
    state = infected_state()
    planned = plan_all(Action.DELETE, Action.DELETE)
    state, cmd = workflow.step(
        state, ActionsPlanned(planned.files, limit_error="over 1 per account"), 3
    )
    verdict = finish(cmd)
    assert verdict.error is not None and verdict.error.kind is ErrorKind.POLICY_LIMIT
    assert {f.outcome for f in verdict.files} == {Outcome.NOT_REQUESTED}
    assert [f.action for f in verdict.files] == [Action.DELETE, Action.DELETE]


def test_unexpected_reply_fails_and_failure_is_sticky() -> None:
    state, _ = workflow.begin(TARGET, CFG, 0)
    state, cmd = workflow.step(state, DisinfectQueued("x"), 0)
    verdict = finish(cmd)
    assert verdict.error is not None and verdict.error.kind is ErrorKind.INTERNAL
    again, cmd2 = workflow.step(state, ScanStatusReply(None), 1)
    assert again.phase is Phase.FAILED
    assert finish(cmd2) == verdict


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        (Phase.STARTING, GetScanStatus()),  # start_scan's fate unknown: look, do not resend
        (Phase.SCANNING, GetScanStatus()),  # re-attach by polling
        (Phase.LISTING, ListInfected()),
        (Phase.DISINFECTING, GetDisinfection(None)),  # disinfect_files' fate unknown: follow
    ],
)
def test_resume_never_resends_a_request_of_unknown_fate(phase: Phase, expected: object) -> None:
    state = workflow.State(
        target=TARGET,
        cfg=CFG,
        phase=phase,
        start=workflow.StartAttempts(baseline=100),
        disinfection=workflow.Disinfection(sending=True),  # the POST was going out
    )
    restored = workflow.from_dict(json.loads(json.dumps(workflow.to_dict(state))))
    resumed, cmd = workflow.resume(restored, 10)
    assert cmd == expected
    if phase is Phase.STARTING:
        assert resumed.phase is Phase.VERIFY_START


def disinfecting() -> tuple[workflow.State, Disinfect]:
    """The state the journal holds before disinfect_files leaves, and its command."""
    state, cmd = workflow.step(infected_state(), plan_all(Action.QUARANTINE, Action.IGNORE), 3)
    assert state.phase is Phase.DISINFECTING and isinstance(cmd, Disinfect)
    return state, cmd


def journaled(state: workflow.State) -> workflow.State:
    return workflow.from_dict(json.loads(json.dumps(workflow.to_dict(state))))


def test_a_disinfection_the_journal_shows_never_sent_is_sent_on_resume_once() -> None:
    state, cmd = disinfecting()
    assert not workflow.may_have_sent(state)
    resumed, again = workflow.resume(journaled(state), 50)
    assert again == cmd, "never sent (killed before the POST left): sent now"
    assert resumed.api_calls == state.api_calls, "one call, counted once"
    following, wait = workflow.step(resumed, DisinfectQueued("t"), 51)
    assert following.phase is Phase.FOLLOWING and isinstance(wait, Wait)
    assert not following.disinfection.ambiguous and not following.disinfection.interrupted


def test_a_disinfection_that_was_going_out_is_followed_on_resume_and_ends_interrupted() -> None:
    state, _ = disinfecting()
    state = workflow.disinfect_sending(state)
    assert workflow.may_have_sent(state)
    resumed, cmd = workflow.resume(journaled(state), 50)
    assert cmd == GetDisinfection(None), "maybe sent: followed, never resent"
    now = 50.0
    while not isinstance(cmd, Finish):
        if isinstance(cmd, Wait):
            now += cmd.seconds
            resumed, cmd = workflow.step(resumed, Tick(), now)
        else:
            assert not isinstance(cmd, Disinfect)
            resumed, cmd = workflow.step(resumed, DisinfectionStatusReply("none", ()), now)
    verdict = cmd.verdict
    assert verdict.error is not None and verdict.error.kind is ErrorKind.INTERRUPTED
    sent = [f for f in verdict.files if f.action is Action.QUARANTINE]
    assert [f.outcome for f in sent] == [Outcome.UNKNOWN]


def test_a_disinfection_refused_for_sure_was_not_sent() -> None:
    state, _ = disinfecting()
    state = workflow.disinfect_sending(state)
    refused = RequestFailed(ErrorInfo(ErrorKind.UNREACHABLE, "HTTP 503"), ambiguous=False)
    state, cmd = workflow.step(state, refused, 4)
    assert isinstance(cmd, Wait)  # then sent again: it did not run
    assert not workflow.may_have_sent(state)


def test_state_round_trips_through_json() -> None:
    state = infected_state()
    state, _ = workflow.step(state, plan_all(Action.QUARANTINE, Action.IGNORE), 3)
    state, _ = workflow.step(state, DisinfectQueued("t"), 3)
    state, _ = workflow.step(state, Tick(), 4)
    record = DisinfectionRecord(1, "step", "quarantined", "public_html/a&b.php")
    state, _ = workflow.step(state, DisinfectionStatusReply("running", (record,)), 4)
    restored = workflow.from_dict(json.loads(json.dumps(workflow.to_dict(state))))
    assert restored == state


@pytest.mark.parametrize(
    ("poll", "disinfection", "graces"),
    [
        # (none_grace, start_grace, reset_grace)
        (PollInterval(2, 30), 3600, (120, 20, 150)),  # the defaults: 4 slow polls, 10 fast
        (PollInterval(10, 60), 3600, (300, 100, 300)),  # 30 fast polls are the longer wait
        (PollInterval(0.05, 0.5), 1.0, (1.0, 2.0, 2.5)),  # capped at the deadline; 2-s floor
    ],
)
def test_the_graces_follow_the_poll_interval_and_never_outlast_the_disinfection_deadline(
    poll: PollInterval, disinfection: float, graces: tuple[float, float, float]
) -> None:
    timeouts = Timeouts(scan=900, stall=300, disinfection=disinfection)
    cfg = WorkflowConfig.from_settings(Settings(poll_interval=poll, timeouts=timeouts))
    assert (cfg.poll_min, cfg.poll_max) == (poll.min, poll.max)
    assert (cfg.scan_timeout, cfg.stall_timeout, cfg.disinfection_timeout) == (
        900,
        300,
        disinfection,
    )
    assert (cfg.none_grace, cfg.start_grace, cfg.reset_grace) == pytest.approx(graces)
    assert (cfg.max_start_attempts, cfg.max_busy_refusals) == (2, 3)
