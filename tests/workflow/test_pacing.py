"""The pure pacing policy: load-aware scan concurrency and the finish-by window."""

from __future__ import annotations

import itertools
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
    assert ctl.limit() == 1  # nothing known yet
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


def test_a_failed_reading_falls_back_to_the_fixed_cap_and_warns_once() -> None:
    ctl = LoadController(4.0, cap=6, check_interval=30)
    ctl.observe(reading(3.0), 0.0, running=0)
    ctl.observe(None, 30.0, running=1)
    assert ctl.limit() == 6
    assert ctl.last_load is None
    assert ctl.take_warning() and not ctl.take_warning()
    ctl.observe(None, 60.0, running=1)
    assert not ctl.take_warning()
    ctl.observe(reading(3.9), 90.0, running=2)  # readable again: adapt from what runs
    assert ctl.limit() == 2  # (3.9: between 0.9 x max and max, hold)
    assert ctl.summary().failed_readings == 2


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
    assert window.message() == "window closed at 06:00"


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
