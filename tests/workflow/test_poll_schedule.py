"""The scan poll schedule (`poll_schedule.next_poll_delay`), through the pure workflow on a fake
clock.

Scans follow the simulator's model (`ScanRun`: a counting pass, then files scanned one at a time
with the counters rewritten after each, time proportional to bytes plus a per-file overhead),
read through the client's parser. Behaviour, not timing: when is a scan's end noticed, and with
how many polls. bench/polls.py measures the same over the benchmark's 10,000 scans.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from orchestrator import workflow
from orchestrator.client.parse import parse_status
from orchestrator.model import ScanType, StatusData, Target
from orchestrator.simulator import SimFile, generate_fleet
from orchestrator.simulator.scan import ScanRun, build_plan
from orchestrator.workflow import poll_schedule
from orchestrator.workflow.events import (
    GetScanStatus,
    ListInfected,
    ScanStarted,
    ScanStatusReply,
    Tick,
    Wait,
)
from tests.support import skewed_account

CFG = workflow.WorkflowConfig(poll_min=2, poll_max=30, stall_timeout=1800)
TARGET = Target("s", "u", ScanType.HOME)


@dataclass(frozen=True, slots=True)
class Noticed:
    late: float  # seconds after the scan's true end
    polls: int  # status polls after start_scan
    waits: tuple[float, ...]


def notice(files: Sequence[SimFile], duration: float, latency: float = 0.0) -> Noticed:
    """Drive one scan to the poll that sees it complete; each status read takes `latency`."""
    run = ScanRun(build_plan(files, "home"), "/home/u", 0.0, duration, time_started=1000)
    state, cmd = workflow.begin(TARGET, CFG, 0.0)
    state, cmd = workflow.step(state, ScanStatusReply(None), 0.0)
    state, cmd = workflow.step(state, ScanStarted(), 0.0)
    now, polls, waits = 0.0, 0, []
    while not isinstance(cmd, ListInfected):
        if isinstance(cmd, Wait):
            waits.append(cmd.seconds)
            now += cmd.seconds
            state, cmd = workflow.step(state, Tick(), now)
            continue
        assert isinstance(cmd, GetScanStatus), cmd
        polls += 1
        now += latency
        reply = ScanStatusReply(parse_status(run.status(now)))
        state, cmd = workflow.step(state, reply, now)
    return Noticed(now - duration, polls, tuple(waits))


def big_file_account() -> list[SimFile]:
    """A backup of 40 % of the bytes in the middle of the walk: the counters freeze on it."""
    before = [SimFile(f"a/f{i:02d}.php", 20_000) for i in range(15)]
    after = [SimFile(f"z/f{i:02d}.php", 20_000) for i in range(15)]
    return [*before, SimFile("m/backup.tar.gz", 400_000), *after]


def long_scans() -> list[tuple[list[SimFile], float]]:
    """Generated accounts (their own file mixes) at durations of 1000..1440 s, and the odd ones."""
    fleet = generate_fleet(servers=4, accounts=25, infected_ratio=0.2, seed=11)
    rng = random.Random("test_poll_schedule")
    scans = [(list(a.files), rng.uniform(1000, 1440)) for s in fleet.servers for a in s.accounts]
    return [*scans, (big_file_account(), 1440.0), (skewed_account(), 1200.0)]


def test_a_long_scans_end_is_noticed_within_a_small_share_of_its_duration() -> None:
    results = [(notice(files, duration), duration) for files, duration in long_scans()]
    late = {i: round(r.late / d, 3) for i, (r, d) in enumerate(results) if r.late > 0.05 * d}
    assert late == {}, f"noticed later than 5 % of the duration: {late}"
    assert all(r.late >= 0 for r, _ in results)
    # cPanel's own UI would poll a 1440-s scan 720 times
    assert max(r.polls for r, _ in results) <= 45
    assert sum(r.polls for r, _ in results) / len(results) <= 20


def test_a_large_file_in_progress_is_neither_hammered_nor_overslept() -> None:
    """While the counters sit still on a large file, the polls come every few percent of the
    elapsed time: not every poll_min, and not so far apart that the end is noticed late."""
    result = notice(big_file_account(), 1440.0)
    assert result.late <= poll_schedule.LATE_SHARE * 1440.0
    assert min(result.waits[5:]) >= CFG.poll_min  # past the first blind polls
    assert sum(1 for w in result.waits if w <= CFG.poll_min) <= 2
    assert result.polls <= 35


@pytest.mark.parametrize("duration", [600.0, 1440.0])
def test_polls_come_no_faster_than_answers(duration: float) -> None:
    """With a 20-s round trip per status read, the waits between polls, once they follow a
    progress rate, are at least that long (but the last, which lands just after the latest
    predicted end), and the end is still noticed within the round trip plus the slack."""
    files = list(generate_fleet(1, 1, seed=3).servers[0].accounts[0].files)
    result = notice(files, duration, latency=20)
    blind = next(i for i, w in enumerate(result.waits) if w > CFG.poll_max)
    rated = result.waits[blind:-1]
    assert rated and min(rated) >= 20
    assert result.late <= 20 + 20 + poll_schedule.LATE_SHARE * duration


def scanning(round_trip: float) -> workflow.State:
    """A scan polled at 20, 50 and 80 s (0, 10, 25 of 1,000 files), each answer after
    `round_trip` seconds."""
    state, _ = workflow.begin(TARGET, CFG, 0.0)
    state, _ = workflow.step(state, ScanStatusReply(None), 0.0)
    state, _ = workflow.step(state, ScanStarted(), 0.0)
    for now, scanned in ((20, 0), (50, 10), (80, 25)):
        state, _ = workflow.step(state, Tick(), now)
        reply = ScanStatusReply(StatusData(False, 1000, scanned, scanned * 100, 100, 10_000))
        state, _ = workflow.step(state, reply, now + round_trip)
    return state


def test_a_scanning_state_round_trips_through_json_and_old_journals_still_load() -> None:
    state = scanning(round_trip=1)
    scan = state.scan
    assert (scan.progress_after, scan.progress_at, scan.poll_sent_at) == (50, 81, 80)
    data = json.loads(json.dumps(workflow.to_dict(state)))
    assert workflow.from_dict(data) == state
    for key in ("progress_after", "poll_sent_at", "last_poll_sent_at"):
        del data["scan"][key]  # a state saved before these existed
    old = workflow.from_dict(data)
    assert old.scan.progress_after is None
    delay = poll_schedule.next_poll_delay(old.scan, 82, poll_min=2, poll_max=30, last_wait=30)
    assert isinstance(delay, float)


def test_a_resumed_scan_does_not_take_the_time_spent_down_for_a_round_trip() -> None:
    state = scanning(round_trip=0)
    saved = workflow.from_dict(json.loads(json.dumps(workflow.to_dict(state))))
    state, cmd = workflow.resume(saved, 3680)  # an hour down
    assert cmd == GetScanStatus()
    reply = ScanStatusReply(StatusData(False, 1000, 30, 3000, 100, 10_000))
    state, cmd = workflow.step(state, reply, 3681)
    assert isinstance(cmd, Wait)
    assert cmd.seconds <= poll_schedule.LATE_SHARE * 3681 + 1


# ---------------------------------------------------------------------------------------------
# A finished scan is noticed near its end, with fast and with default settings


def completion_noticed_at(files: list[SimFile], duration: float, cfg: Any) -> float:
    """Drive the workflow against the simulator's scan model; when is completion seen?"""
    run = ScanRun(build_plan(files, "home"), "/home/u", 0.0, duration, time_started=1000)
    state, cmd = workflow.begin(Target("s", "u", ScanType.HOME), cfg, 0.0)
    state, cmd = workflow.step(state, ScanStatusReply(None), 0.0)
    state, cmd = workflow.step(state, ScanStarted(), 0.0)
    now = 0.0
    while not isinstance(cmd, ListInfected):
        if isinstance(cmd, Wait):
            now += cmd.seconds
            state, cmd = workflow.step(state, Tick(), now)
        else:
            assert isinstance(cmd, GetScanStatus), cmd
            state, cmd = workflow.step(state, ScanStatusReply(parse_status(run.status(now))), now)
    return now


@pytest.mark.parametrize(
    ("duration", "cfg"),
    [
        (0.3, workflow.WorkflowConfig(poll_min=0.05, poll_max=0.5, stall_timeout=10)),
        (300.0, workflow.WorkflowConfig(poll_min=2, poll_max=30, stall_timeout=1800)),
    ],
    ids=["fast-settings", "default-settings"],
)
def test_a_finished_scan_is_noticed_within_its_own_duration_plus_one_max_poll(
    duration: float, cfg: Any
) -> None:
    accounts = [skewed_account()] + [
        list(a.files)
        for s in generate_fleet(servers=2, accounts=10, infected_ratio=0.5, seed=5).servers
        for a in s.accounts
    ]
    late = {}
    for i, files in enumerate(accounts):
        seen = completion_noticed_at(files, duration, cfg)
        if seen > 2 * duration + cfg.poll_max:
            late[i] = round(seen / duration, 1)
    assert late == {}, f"accounts noticed late (x scan duration): {late}"


# ---------------------------------------------------------------------------------------------
# Short scans: their first counters predict the end; it is followed (with the poll_min floor)


def short_scans() -> list[tuple[list[SimFile], float]]:
    """Generated accounts (their own file mixes) rescaled to 2.1..2.9 s: past the first poll."""
    fleet = generate_fleet(servers=2, accounts=20, infected_ratio=0.2, seed=13)
    rng = random.Random("short scans")
    return [(list(a.files), rng.uniform(2.1, 2.9)) for s in fleet.servers for a in s.accounts]


def test_a_short_scan_is_noticed_one_floor_after_the_first_poll_not_at_a_doubled_one() -> None:
    results = [(notice(files, duration), duration) for files, duration in short_scans()]
    assert all(r.polls == 2 for r, _ in results), "no more polls than the blind backoff took"
    assert all(r.waits[1] == CFG.poll_min for r, _ in results), [r.waits for r, _ in results]
    late = sorted(r.late for r, _ in results)
    assert late[0] >= 0 and late[-1] < CFG.poll_min, late


def progress_at_first_poll(scanned: int, total: int = 100) -> poll_schedule.ScanProgress:
    """start_scan answered at 0, the first status read (at 2 s) shows `scanned` of `total`."""
    stats = StatusData(False, 1000, scanned, scanned * 1000, total, 1).stats()
    return poll_schedule.ScanProgress(
        started_at=0.0,
        seen_running=True,
        stats=stats,
        progress_at=2.0,
        progress_after=0.0,
        poll_sent_at=2.0,
        last_poll_sent_at=2.0,
        rate_anchor=(2.0, scanned, scanned * 1000),
    )


def delay(scan: poll_schedule.ScanProgress) -> float:
    return poll_schedule.next_poll_delay(scan, 2.0, poll_min=2, poll_max=30, last_wait=2)


def test_a_predicted_end_within_the_backoff_is_followed_no_sooner_than_poll_min() -> None:
    assert delay(progress_at_first_poll(90)) == 2.0, "ends at ~2.2 s: the floor, not 4 s"
    near = delay(progress_at_first_poll(45))  # ends at ~4.4 s (the counting pass included)
    assert 2.0 < near < 4.0


def test_a_predicted_end_beyond_the_backoff_keeps_the_backoff() -> None:
    assert delay(progress_at_first_poll(10)) == 4.0, "ends at ~20 s: nothing to follow yet"
    assert delay(progress_at_first_poll(0)) == 4.0, "nothing scanned: no prediction"
