"""The per-server scheduler on its own: one target per account in flight, lanes kept busy.

Runs in virtual time (Trio's MockClock with autojump): each fake target waits a few times and
then finishes, and the scheduler's decisions are recorded with exact timestamps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from orchestrator.engine.lanes import AccountQueue, Lanes
from orchestrator.model import ScanType, Target

TYPES = tuple(ScanType)


def targets(plan: dict[str, int]) -> list[Target]:
    """`{account: number of scan types}` as targets, in that order."""
    return [Target("s", a, TYPES[i]) for a, n in plan.items() for i in range(n)]


# -- AccountQueue ---------------------------------------------------------------------------------


def test_a_busy_accounts_next_type_waits_and_another_account_goes_instead() -> None:
    queue = AccountQueue(targets({"big": 2, "small": 1}))
    first = queue.take()
    assert first == Target("s", "big", ScanType.HOME)
    # big's mail scan may not start while its home scan runs: small's goes instead
    assert queue.take() == Target("s", "small", ScanType.HOME)
    assert queue.take() is None
    assert queue  # big's second type is still pending
    queue.release(first)
    assert queue.take() == Target("s", "big", ScanType.MAIL)
    assert not queue


def test_a_released_account_goes_before_accounts_not_started_yet() -> None:
    queue = AccountQueue(targets({"a": 2, "b": 1, "c": 1}))
    a_home = queue.take()
    assert a_home is not None
    queue.release(a_home)
    # back to back: a's next type before b and c, which keep their order
    assert [queue.take(), queue.take(), queue.take()] == [
        Target("s", "a", ScanType.MAIL),
        Target("s", "b", ScanType.HOME),
        Target("s", "c", ScanType.HOME),
    ]


# -- Lanes in virtual time -----------------------------------------------------------------------


@dataclass(eq=False)
class Job:
    target: Target
    waits: list[float]


@dataclass
class Trace:
    events: list[tuple[float, str, Target]] = field(default_factory=list)
    peak: int = 0

    def in_flight(self) -> dict[Target, tuple[float, float]]:
        spans: dict[Target, list[float]] = {}
        for t, _kind, target in self.events:
            spans.setdefault(target, []).append(t)
        return {k: (v[0], v[-1]) for k, v in spans.items()}


def run_lanes(
    plan: dict[str, int], durations: dict[Target, list[float]], cap: int, workers: int = 2
) -> Trace:
    trace = Trace()

    async def main() -> None:
        live: set[Target] = set()
        lanes: Lanes[Job]

        def begin(target: Target) -> tuple[Job, float | None]:
            live.add(target)
            trace.peak = max(trace.peak, len(live))
            trace.events.append((anyio.current_time(), "start", target))
            return Job(target, list(durations[target])), None

        async def advance(job: Job) -> float | None:
            await anyio.sleep(0.001)  # a request's round trip
            if job.waits:
                return job.waits.pop(0)
            live.discard(job.target)
            trace.events.append((anyio.current_time(), "finish", job.target))
            return None

        lanes = Lanes(
            AccountQueue(targets(plan)),
            admit=lambda running: running < cap,
            clock=anyio.current_time,
            begin=begin,
            advance=advance,
            interrupted=lambda job: None,
        )
        await lanes.run(workers=workers)

    anyio.run(main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    return trace


def test_an_accounts_scan_types_never_overlap_and_other_accounts_fill_the_lanes() -> None:
    plan = {"big": 2, "small": 1}
    durations = {t: [10.0] for t in targets(plan)}
    trace = run_lanes(plan, durations, cap=2)
    spans = trace.in_flight()
    big_home = spans[Target("s", "big", ScanType.HOME)]
    big_mail = spans[Target("s", "big", ScanType.MAIL)]
    small = spans[Target("s", "small", ScanType.HOME)]
    assert big_mail[0] >= big_home[1]  # after the sibling finished entirely
    assert small[0] < big_home[1]  # the second lane did not idle behind the busy account
    assert trace.peak == 2


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    plan=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d", "e"]), st.integers(1, 4), min_size=1, max_size=5
    ),
    cap=st.integers(1, 4),
    workers=st.integers(1, 3),
    data=st.data(),
)
def test_lanes_keep_one_target_per_account_and_the_cap_whatever_the_durations(
    plan: dict[str, int], cap: int, workers: int, data: st.DataObject
) -> None:
    durations = {
        t: data.draw(st.lists(st.floats(0.0, 20.0), max_size=4), label=str(t))
        for t in targets(plan)
    }
    trace = run_lanes(plan, durations, cap=cap, workers=workers)
    spans = trace.in_flight()
    assert set(spans) == set(targets(plan))  # every target ran, once
    assert sum(1 for _, kind, _ in trace.events if kind == "finish") == len(spans)
    assert trace.peak <= cap
    by_account: dict[str, list[tuple[float, float]]] = {}
    for target, span in spans.items():
        by_account.setdefault(target.account, []).append(span)
    for account, account_spans in by_account.items():
        ordered = sorted(account_spans)
        for (_, end), (start, _) in itertools.pairwise(ordered):
            assert start >= end, f"two targets of {account} overlapped"
    # an account's types ran in their order
    for account, n in plan.items():
        starts = [spans[Target("s", account, TYPES[i])][0] for i in range(n)]
        assert starts == sorted(starts)


def test_lanes_interrupted_on_cancel_reports_every_target_in_flight() -> None:
    plan = {"a": 1, "b": 1, "c": 1}
    interrupted: list[Target] = []

    async def main() -> None:
        lanes = Lanes(
            AccountQueue(targets(plan)),
            admit=lambda running: running < 2,
            clock=anyio.current_time,
            begin=lambda t: (Job(t, []), 100.0),
            advance=lambda job: _never(),
            interrupted=lambda job: interrupted.append(job.target),
        )
        with anyio.move_on_after(5):
            await lanes.run(workers=1)

    anyio.run(main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    assert sorted(interrupted) == sorted(targets(plan)[:2])


async def _never() -> float | None:
    await anyio.sleep_forever()
    return None


@pytest.mark.parametrize("cap", [1, 3])
def test_lanes_finish_when_every_target_is_done(cap: int) -> None:
    plan = {"a": 3, "b": 2}
    trace = run_lanes(plan, {t: [1.0, 2.0] for t in targets(plan)}, cap=cap)
    assert len(trace.in_flight()) == 5
