"""The pure pacing policy: load-aware scan concurrency and the finish-by window."""

from __future__ import annotations

import itertools
import math
import time as clock
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import WindowSetting
from orchestrator.model import LoadReading
from orchestrator.workflow.pacing import (
    HISTORY,
    LoadController,
    Throughput,
    Window,
    predicted_seconds,
)


def reading(one: float) -> LoadReading:
    return LoadReading(one, one, one)


def test_without_a_max_the_fixed_cap_applies_and_no_reading_is_ever_due() -> None:
    ctl = LoadController(None, cap=4, check_interval=30)
    assert ctl.limit() == 4
    assert not ctl.check_due(0.0)
    assert ctl.next_check_at() is None
    assert ctl.may_start(3) and not ctl.may_start(4)


def test_first_reading_of_an_idle_server_sets_the_limit_from_its_headroom() -> None:
    ctl = LoadController(12.8, cap=16, check_interval=30)
    assert ctl.check_due(0.0)
    assert not ctl.may_start(0)  # nothing known yet: nothing starts
    ctl.observe(reading(6.0), 0.0, running=0)
    assert ctl.limit() == 6  # 6 + 6 scans = 12 < 12.8; a 7th would reach 13
    assert not ctl.check_due(29.0) and ctl.check_due(30.0)


def test_overload_stops_new_starts_and_backs_off_until_the_load_falls() -> None:
    ctl = LoadController(4.0, cap=8, check_interval=30)
    ctl.observe(reading(0.5), 0.0, running=0)
    assert ctl.limit() == 3
    ctl.observe(reading(6.0), 30.0, running=3)
    assert ctl.overloaded()
    assert not ctl.may_start(0)  # over max: nothing new starts there, whatever runs
    assert ctl.limit() == 1  # 3 - ceil(2.0)
    ctl.observe(reading(3.0), 60.0, running=3)  # running scans still finish: never cancelled
    assert not ctl.overloaded()
    assert ctl.may_start(0) and not ctl.may_start(1)


def test_increase_waits_for_the_lagging_average_to_settle() -> None:
    ctl = LoadController(8.0, cap=8, check_interval=30)
    ctl.observe(reading(5.0), 0.0, running=0)
    assert ctl.limit() == 2
    ctl.observe(reading(5.0), 30.0, running=2)
    assert ctl.limit() == 2  # 30 s since the last change: the 1-minute average lags
    ctl.observe(reading(5.0), 60.0, running=2)
    assert ctl.limit() == 3
    ctl.observe(reading(5.0), 90.0, running=1)
    ctl.observe(reading(5.0), 150.0, running=1)
    assert ctl.limit() == 3  # not in use: no evidence the server copes with more


def test_no_increase_while_the_lagging_average_still_rises_towards_max() -> None:
    ctl = LoadController(8.0, cap=8, check_interval=30)
    ctl.observe(reading(1.0), 0.0, running=0)
    assert ctl.limit() == 6  # 1 + 6 = 7 < 8
    ctl.observe(reading(4.8), 60.0, running=6)
    ctl.observe(reading(6.2), 120.0, running=6)  # under 0.9 x max, but heading for 7
    assert ctl.limit() == 6  # a 7th scan would take it to 8


def test_limit_drops_before_the_load_gets_over_max_when_it_is_heading_there() -> None:
    ctl = LoadController(4.0, cap=8, check_interval=30)
    ctl.observe(reading(0.5), 0.0, running=0)
    assert ctl.limit() == 3
    ctl.observe(reading(2.0), 30.0, running=3)
    ctl.observe(reading(3.5), 60.0, running=3)  # still under 4, but heading for ~5.8
    assert not ctl.overloaded()
    assert ctl.limit() == 1


def test_limit_grows_one_at_a_time_when_the_background_falls() -> None:
    ctl = LoadController(8.0, cap=8, check_interval=30)
    ctl.observe(reading(4.0), 0.0, running=0)
    assert ctl.limit() == 3
    limits = []
    for i in range(1, 8):
        ctl.observe(reading(4.0), 30.0 * i, running=ctl.limit())  # settled: base now ~1
        limits.append(ctl.limit())
    assert limits == [3, 4, 4, 5, 5, 6, 6]


def test_no_reading_is_due_while_no_target_waits_to_start() -> None:
    ctl = LoadController(4.0, cap=4, check_interval=30)
    assert not ctl.check_due(0.0, waiting=False)
    assert ctl.check_due(0.0, waiting=True)


def test_a_steady_load_is_read_less_often_and_an_overload_restores_the_interval() -> None:
    ctl = LoadController(4.0, cap=2, check_interval=30)
    ctl.observe(reading(1.0), 0.0, running=0)
    gaps, now, last = [], 0.0, 0.0
    while now < 1000:
        now += 1
        if ctl.check_due(now):
            gaps.append(now - last)
            last = now
            ctl.observe(reading(3.0), now, running=2)
    assert gaps[0] == 30 and max(gaps) == 120  # stretched, never beyond 4 x check_interval
    assert ctl.next_check_at() == last + 120
    ctl.observe(reading(4.5), now + 120, running=2)
    assert not ctl.check_due(now + 149) and ctl.check_due(now + 150)


def test_nothing_starts_on_a_paced_server_before_its_first_reading_answers_or_fails() -> None:
    over = LoadController(3.0, cap=6, check_interval=30)
    assert not over.may_start(0)
    over.observe(reading(3.5), 0.0, running=0)  # a shop server already over max
    assert not over.may_start(0)
    failed = LoadController(3.0, cap=6, check_interval=30)
    failed.observe(None, 0.0, running=0)
    assert failed.may_start(0) and not failed.may_start(1)  # unknown load: one at a time


def test_a_failed_reading_keeps_the_last_good_limit_never_the_cap_and_warns_once() -> None:
    ctl = LoadController(4.0, cap=6, check_interval=30)
    ctl.observe(reading(1.0), 0.0, running=0)
    assert ctl.limit() == 2  # 1 + 2 = 3 < 4
    ctl.observe(None, 30.0, running=2)
    assert ctl.limit() == 2  # not the cap of 6
    assert ctl.may_start(1) and not ctl.may_start(2)
    assert ctl.last_load is None
    assert ctl.take_warning() and not ctl.take_warning()
    ctl.observe(None, 60.0, running=2)
    assert not ctl.take_warning()
    assert ctl.limit() == 2
    ctl.observe(reading(3.9), 90.0, running=2)  # readable again: adapts from there
    assert ctl.limit() == 2  # (3.9: between 0.9 x max and max, hold)
    assert ctl.summary().failed_readings == 2


@given(st.lists(st.none() | st.floats(0, 40, allow_nan=False), max_size=30))
def test_a_failed_reading_never_raises_the_limit(loads: list[float | None]) -> None:
    ctl = LoadController(3.0, cap=6, check_interval=30)
    for i, load in enumerate(loads):
        before = ctl.limit()
        ctl.observe(None if load is None else reading(load), 30.0 * i, running=ctl.limit())
        if load is None:
            assert ctl.limit() == before


def kernel_run(ctl: LoadController, base: float, minutes: int) -> list[float]:
    """The kernel's 1-minute average (5 s ticks, tau 60 s) of `base` plus the scans `ctl`
    lets run (each +1, started at once), read every check_interval; the averages seen."""
    decay = math.exp(-5 / 60)
    avg, running, seen, t = base, 0, [], 0.0
    while t < minutes * 60:
        if ctl.check_due(t):
            ctl.observe(reading(avg), t, running)
        while ctl.may_start(running):
            running += 1
        t += 5
        avg = avg * decay + (base + running) * (1 - decay)
        seen.append(avg)
    return seen


@pytest.mark.parametrize("interval", [5.0, 10.0, 30.0])
@pytest.mark.parametrize("base", [1.0, 1.5, 2.2])
def test_a_short_check_interval_does_not_overshoot_the_max(interval: float, base: float) -> None:
    # the 1-minute average's time constant is 60 s whatever the interval: reading more often
    # must not make the controller believe the load settles sooner than it does (and so take
    # the lag for headroom)
    ctl = LoadController(4.0, cap=8, check_interval=interval)
    seen = kernel_run(ctl, base=base, minutes=15)
    assert max(seen) < 4.0
    assert ctl.limit() == math.ceil(4.0 - base) - 1  # every scan that fits, no more


def test_patience_runs_out_only_while_the_load_keeps_every_start_back() -> None:
    ctl = LoadController(3.0, cap=4, check_interval=30, patience=600)
    ctl.observe(reading(3.6), 0.0, running=0)
    assert ctl.blocked_since == 0.0 and ctl.patience_ends_at() == 600.0
    ctl.observe(reading(3.7), 300.0, running=0)
    assert not ctl.exhausted(599.0) and ctl.exhausted(600.0)
    ctl.observe(reading(2.0), 630.0, running=0)  # it fell: the wait is over, and forgotten
    assert ctl.blocked_since is None and not ctl.exhausted(10_000.0)
    ctl.observe(reading(3.5), 660.0, running=1)  # over max with our own scan running: no wait
    assert ctl.blocked_since is None
    ctl.observe(reading(3.2), 690.0, running=0)
    assert ctl.blocked_since == 690.0
    ctl.observe(None, 720.0, running=0)  # unreadable: one scan may start, nothing holds them
    assert ctl.blocked_since is None


def test_without_patience_the_load_is_waited_for_however_long() -> None:
    ctl = LoadController(3.0, cap=4, check_interval=30)
    ctl.observe(reading(3.6), 0.0, running=0)
    assert ctl.blocked_since == 0.0 and not ctl.exhausted(1e9)


def test_report_summary_holds_peak_time_over_max_and_the_history() -> None:
    ctl = LoadController(4.0, cap=4, check_interval=10, origin=100.0)
    ctl.observe(reading(1.0), 100.0, running=0)
    ctl.observe(reading(5.0), 110.0, running=2)
    ctl.observe(reading(4.5), 120.0, running=1)
    ctl.observe(reading(2.0), 130.0, running=1)
    summary = ctl.summary()
    assert summary.peak_load == 5.0
    assert summary.seconds_over == 20.0
    assert summary.readings == 4
    assert [(s.t, s.running, s.load) for s in summary.history] == [
        (0.0, 0, 1.0),
        (10.0, 2, 5.0),
        (20.0, 1, 4.5),
        (30.0, 1, 2.0),
    ]


def test_history_stays_bounded_and_still_spans_the_whole_run() -> None:
    ctl = LoadController(4.0, cap=4, check_interval=1)
    for i in range(10 * HISTORY):
        ctl.observe(reading(1.0), float(i), running=1)
    history = ctl.history
    assert len(history) <= HISTORY
    assert history[0].t == 0.0
    assert history[-1].t > 9 * HISTORY  # the late part of the run is there too


observations = st.lists(
    st.tuples(
        st.none() | st.floats(0, 40, allow_nan=False),
        st.floats(0.1, 120, allow_nan=False),
        st.integers(0, 20),
    ),
    max_size=60,
)


@given(
    st.floats(0.5, 20, allow_nan=False),
    st.integers(1, 16),
    st.floats(1, 60, allow_nan=False),
    observations,
)
def test_limit_stays_within_one_and_cap_and_never_rises_while_over_max(
    max_load: float, cap: int, interval: float, obs: list[tuple[float | None, float, int]]
) -> None:
    ctl = LoadController(max_load, cap, interval)
    now = 0.0
    for load, gap, running in obs:
        now += gap
        before = ctl.limit()
        ctl.observe(None if load is None else reading(load), now, running)
        assert 1 <= ctl.limit() <= cap
        if load is not None and load > max_load:
            assert ctl.limit() <= before
        if load is not None and load > max_load:
            assert not ctl.may_start(0)


@given(
    st.floats(0.5, 20, allow_nan=False),
    st.integers(1, 16),
    st.floats(0, 40, allow_nan=False),
    st.integers(2, 80),
)
def test_a_constant_load_never_makes_the_limit_oscillate(
    max_load: float, cap: int, load: float, steps: int
) -> None:
    ctl = LoadController(max_load, cap, 30)
    limits = []
    for i in range(steps):
        ctl.observe(reading(load), 30.0 * i, running=ctl.limit())
        limits.append(ctl.limit())
    rises = any(b > a for a, b in itertools.pairwise(limits))
    falls = any(b < a for a, b in itertools.pairwise(limits))
    assert not (rises and falls)


# -- window ------------------------------------------------------------------------------------

START = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)


def test_window_end_is_the_next_such_time_after_the_start() -> None:
    window = Window.resolve(WindowSetting(time(6, 0), "UTC"), START)
    assert window.end == datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
    later = Window.resolve(WindowSetting(time(23, 45), "UTC"), START)
    assert later.end == datetime(2026, 12, 4, 23, 45, tzinfo=UTC)


def test_window_end_is_resolved_in_its_own_timezone() -> None:
    window = Window.resolve(WindowSetting(time(6, 0), "Europe/Berlin"), START)
    assert window.end is not None
    assert window.end.astimezone(UTC) == datetime(2026, 12, 5, 5, 0, tzinfo=UTC)
    assert window.end.utcoffset() == timedelta(hours=1)  # aware in its own zone (CET)
    assert window.message() == "window closed at 06:00"
    assert (window.timezone, window.source) == ("Europe/Berlin", "settings")


# Europe/Berlin 2026: clocks jump 02:00 -> 03:00 at 01:00 UTC on March 29, and fall back
# 03:00 -> 02:00 at 01:00 UTC on October 25 (02:00-03:00 happens twice).
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("start_utc", "end_utc"),
    [
        # 02:45 CEST, the first pass: the next 02:30 is the second pass (CET), 45 min away
        (datetime(2026, 10, 25, 0, 45, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
        # 01:45 CEST: the first 02:30 (CEST), 45 min away
        (datetime(2026, 10, 24, 23, 45, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        # 02:40 CET, the second pass: 02:30 happened twice already, tomorrow's
        (datetime(2026, 10, 25, 1, 40, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)),
    ],
)
def test_an_end_in_the_autumn_fold_is_its_next_real_occurrence(
    start_utc: datetime, end_utc: datetime
) -> None:
    window = Window.resolve(WindowSetting(time(2, 30), "Europe/Berlin"), start_utc)
    assert window.end == end_utc
    assert window.end is not None and window.end.astimezone(BERLIN).strftime("%H:%M") == "02:30"


def test_an_end_in_the_spring_gap_is_the_end_of_the_gap() -> None:
    start = datetime(2026, 3, 29, 0, 45, tzinfo=UTC)  # 01:45 CET; 02:30 never happens tonight
    window = Window.resolve(WindowSetting(time(2, 30), "Europe/Berlin"), start)
    assert window.end == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, 15 min away
    assert window.message() == "window closed at 03:00"


@pytest.fixture
def berlin_local(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This machine's local time is Europe/Berlin for the test."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    clock.tzset()
    yield
    monkeypatch.undo()
    clock.tzset()


@pytest.mark.usefixtures("berlin_local")
def test_a_local_window_resolves_folds_and_gaps_like_a_named_zone() -> None:
    fold = Window.resolve(
        WindowSetting(time(2, 30), "local"), datetime(2026, 10, 25, 0, 45, tzinfo=UTC)
    )
    assert fold.end == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    gap = Window.resolve(
        WindowSetting(time(2, 30), "local"), datetime(2026, 3, 29, 0, 45, tzinfo=UTC)
    )
    assert gap.end == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert gap.clock() == "03:00"


def test_a_duration_window_ends_that_long_after_the_start() -> None:
    setting = WindowSetting(timezone="Europe/Berlin", after=5.5 * 3600, source="--finish-by")
    window = Window.resolve(setting, START)
    assert window.end == START + timedelta(hours=5, minutes=30)
    assert window.clock() == "06:00"  # 23:30 UTC = 00:30 CET, + 5h30m
    assert window.source == "--finish-by"


def test_an_end_more_than_16_hours_after_the_start_is_far() -> None:
    # 23:30 UTC start, 23:00 end: a time that had just passed means tomorrow, 23.5 h away
    assert Window.resolve(WindowSetting(time(23, 0), "UTC"), START).far(START)
    assert not Window.resolve(WindowSetting(time(6, 0), "UTC"), START).far(START)
    assert not Window(None).far(START)


def test_a_predicted_deferral_says_it_would_not_finish_before_the_end() -> None:
    window = Window(datetime(2026, 12, 5, 6, 0, tzinfo=UTC))
    message = window.would_not_finish(7800)
    assert message.startswith("would not finish before 06:00")
    assert "2h10m" in message


def test_window_across_a_daylight_saving_change_keeps_the_wall_clock_time() -> None:
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # Berlin switches to CEST that night
    window = Window.resolve(WindowSetting(time(6, 0), "Europe/Berlin"), start)
    assert window.end is not None
    assert window.end.astimezone(ZoneInfo("Europe/Berlin")).hour == 6
    assert window.end.astimezone(UTC) == datetime(2026, 3, 29, 4, 0, tzinfo=UTC)


def test_local_window_resolves_to_an_aware_time_after_the_start() -> None:
    window = Window.resolve(WindowSetting(time(6, 0), "local"), START)
    assert window.end is not None and window.end.tzinfo is not None
    assert START < window.end <= START + timedelta(days=1)


def test_closed_and_fits() -> None:
    window = Window(datetime(2026, 12, 5, 6, 0, tzinfo=UTC))
    before = datetime(2026, 12, 5, 5, 0, tzinfo=UTC)
    assert not window.closed(before)
    assert window.closed(datetime(2026, 12, 5, 6, 0, tzinfo=UTC))
    assert window.fits(before, 3000) and not window.fits(before, 3601)
    assert window.fits(before, None)  # unknown length: start it while the window is open
    assert not window.fits(datetime(2026, 12, 5, 7, 0, tzinfo=UTC), None)
    assert Window(None).fits(before, 1e9) and not Window(None).closed(before)


def test_window_needs_an_aware_end() -> None:
    with pytest.raises(ValueError, match="aware"):
        Window(datetime(2026, 12, 5, 6, 0))


def test_predicted_seconds_from_disk_use_and_throughput() -> None:
    assert predicted_seconds(100.0, 1024 * 1024) == 100.0
    assert predicted_seconds(None, 1.0) is None
    assert predicted_seconds(1.0, None) is None
    assert predicted_seconds(1.0, 0.0) is None
    rate = Throughput()
    assert rate.bytes_per_second is None
    rate.observe(2000, 2.0)
    rate.observe(0, 5.0)  # an empty scan says nothing about speed
    rate.observe(4000, 2.0)
    assert rate.bytes_per_second == 1500.0
