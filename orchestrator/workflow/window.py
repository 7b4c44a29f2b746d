"""The finish-by window, pure: when the night is over, as a real instant, DST included.

`settings.window` / `--finish-by` give a wall-clock time (or a duration from the start); the
run needs the instant it names. Every `now` and `start` is passed in (aware datetimes).

    Window           the run's cut-off: no new scan starts after it; its messages
    next_wall_time   the first instant after a start whose clock in a zone reads HH:MM
    in_zone          an instant as a zone's clock shows it, with a fixed offset

Wall clocks are not instants: on the autumn night 02:30 happens twice in Europe/Berlin, on the
spring night not at all. The window ends at the next *real* occurrence: the first of the two
that is after the start; in a gap, the end of the gap (02:30 -> 03:00, the first moment the
clock shows a later time: earlier, never a day later).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from orchestrator.config import WindowSetting
from orchestrator.config.durations import format_duration

FAR = timedelta(hours=16)  # a window ending further than this from the start: likely a mistake


class Window:
    """The run's cut-off: an aware datetime (in its own timezone), or None for no window."""

    def __init__(
        self, end: datetime | None, *, timezone: str = "UTC", source: str = "settings"
    ) -> None:
        if end is not None and end.tzinfo is None:
            raise ValueError("the window end must be an aware datetime")
        self.end = end
        self.timezone = timezone  # as configured: "local" or an IANA name
        self.source = source  # "settings" or "--finish-by"

    @classmethod
    def resolve(cls, setting: WindowSetting, start: datetime) -> Window:
        """The window's end for a run that started at `start` (aware).

        `after` (`--finish-by +5h30m`): that long after the start. `end` HH:MM: the first real
        moment after the start when the clock of its timezone shows HH:MM. On the autumn night
        that time happens twice: the first one after the start (01:45 -> 02:30 is 45 minutes,
        not a day). On the spring night it does not happen at all: the end of the gap, the
        first moment the clock shows a later time (02:30 when 02:00 jumps to 03:00 -> 03:00).
        """
        source, zone = setting.source, setting.timezone
        if setting.after is not None:  # (to the second, as the report carries it)
            end = in_zone(start + timedelta(seconds=setting.after), zone).replace(microsecond=0)
            return cls(end, timezone=zone, source=source)
        if setting.end is None:
            return cls(None, timezone=zone, source=source)
        return cls(next_wall_time(setting.end, zone, start), timezone=zone, source=source)

    def closed(self, now_wall: datetime) -> bool:
        return self.end is not None and now_wall >= self.end

    def fits(self, now_wall: datetime, predicted_seconds: float | None) -> bool:
        """Whether a scan started now ends before the window does (unknown length: if open)."""
        if self.end is None:
            return True
        if self.closed(now_wall):
            return False
        if predicted_seconds is None:
            return True
        return now_wall + timedelta(seconds=predicted_seconds) <= self.end

    def far(self, start: datetime) -> bool:
        """Whether the end is more than 16 h after `start`: likely a typo, or a time that had
        already passed today (so it means tomorrow)."""
        return self.end is not None and self.end - start > FAR

    def clock(self) -> str:
        """The end as its timezone's clock shows it, HH:MM."""
        return "" if self.end is None else self.end.strftime("%H:%M")

    def message(self) -> str:
        if self.end is None:
            return "no window"
        return f"window closed at {self.clock()}"

    def would_not_finish(self, predicted_seconds: float) -> str:
        """Why a scan was not started while the window was still open."""
        return (
            f"would not finish before {self.clock()} "
            f"(predicted {format_duration(predicted_seconds)} at this server's speed)"
        )


# -- wall clocks: a zone's time <-> real instants, DST gaps and folds included ---------------

ToInstant = Callable[[datetime, int], datetime]  # (naive wall time, fold) -> aware UTC
ToWall = Callable[[datetime], datetime]  # aware instant -> naive wall time


def next_wall_time(clock: time, zone: str, start: datetime) -> datetime:
    """The first instant after `start` whose wall clock in `zone` reads `clock` (or, in a DST
    gap, the end of the gap); aware, in `zone`."""
    to_instant, to_wall = _clocks(zone)
    today = to_wall(start).date()
    found: list[datetime] = []
    for days in range(-1, 3):
        wall = datetime.combine(today + timedelta(days=days), clock)
        found += [t for t in _occurrences(wall, to_instant, to_wall) if t > start]
    return in_zone(min(found), zone)


def _occurrences(wall: datetime, to_instant: ToInstant, to_wall: ToWall) -> list[datetime]:
    """The real instants that wall time names: one, two (a fold), or none (a gap: then the
    first instant after the gap)."""
    real = sorted({t for t in (to_instant(wall, 0), to_instant(wall, 1)) if to_wall(t) == wall})
    if real:
        return real
    low, high = sorted((to_instant(wall, 0), to_instant(wall, 1)))
    lo, hi = math.floor(low.timestamp()), math.ceil(high.timestamp())
    while hi - lo > 1:  # the first whole second whose wall time is not before `wall`
        mid = (lo + hi) // 2
        if to_wall(datetime.fromtimestamp(mid, UTC)) < wall:
            lo = mid
        else:
            hi = mid
    return [datetime.fromtimestamp(hi, UTC)]


def _clocks(zone: str) -> tuple[ToInstant, ToWall]:
    if zone == "local":  # the system's rules (naive datetimes are local time, PEP 495 folds)

        def local_instant(wall: datetime, fold: int) -> datetime:
            return datetime.fromtimestamp(wall.replace(fold=fold).timestamp(), UTC)

        def local_wall(instant: datetime) -> datetime:
            return datetime.fromtimestamp(instant.timestamp()).replace(fold=0)

        return local_instant, local_wall
    tz = ZoneInfo(zone)

    def zone_instant(wall: datetime, fold: int) -> datetime:
        return wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)

    def zone_wall(instant: datetime) -> datetime:
        return instant.astimezone(tz).replace(tzinfo=None, fold=0)

    return zone_instant, zone_wall


def in_zone(instant: datetime, zone: str) -> datetime:
    """`instant` as the clock of `zone` ("local": this machine's) shows it: aware, with the
    fixed offset in force then (a ZoneInfo time in the autumn fold never compares equal to
    the same instant in another zone, PEP 495: a fixed offset does)."""
    if zone == "local":
        return instant.astimezone()
    there = instant.astimezone(ZoneInfo(zone))
    offset = there.utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return there.replace(tzinfo=dt_timezone(offset, there.tzname() or zone))
