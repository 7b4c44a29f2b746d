"""Pure pacing policy: how many scans a server may run now, and whether the night is over.

No I/O and no clock reads: every `now` is passed in (monotonic seconds for the controller, an
aware wall-clock datetime for the window), so the whole policy is tested without a server.

    LoadController   one per server: the scan concurrency limit from systemloadavg readings
    Window           the run's cut-off: no new scan starts after it
    predicted_seconds / Throughput   how long a scan of an account will probably take

The control law (why each part is there):
- A server is read at most every `check_interval` seconds (`check_due`); each reading goes to
  `observe`. Before the first reading the limit is 1 (nothing is known yet).
- Over `max`: start nothing new (`may_start` is False) and step the limit down by the excess
  (each running scan is one clamd child, i.e. ~1 unit of load), at least to 3/4. Running scans
  cannot be cancelled, so the limit only stops new starts; nothing pretends otherwise.
- Under `max * (1 - HYSTERESIS)` while the limit is in use: +1. The 1-minute average lags (a
  new scan shows only ~63 % after a minute), so there is no further increase until `settle`
  seconds (2 x check_interval, i.e. one minute by default) have passed since the last change.
- Between the two: hold. So a constant load gives a monotone limit (no oscillation).
- A failed reading (None) falls back to the fixed cap, as if no `max` were set, and
  `take_warning` says so once; the next good reading resumes adapting from what is running.
- The first reading (taken with nothing running) sets the limit from the headroom
  `max * (1 - HYSTERESIS) - load` at once, so a big idle server does not ramp up one by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from orchestrator.config import WindowSetting
from orchestrator.model import PacingSample, ServerPacing

HYSTERESIS = 0.1  # increase only below max * (1 - HYSTERESIS)
BACKOFF = 0.75  # an overload cuts the limit to at most this share of what was in use
HISTORY = 240  # samples kept per server (older ones are thinned out, never the whole run lost)


@dataclass(frozen=True, slots=True)
class LoadReading:
    """WHM `systemloadavg`: the 1, 5 and 15 minute load averages."""

    one: float
    five: float
    fifteen: float


class PacingObserver(Protocol):
    """The observer hook for live progress: a server's last load (None: no reading) and limit."""

    def server_pacing(self, server: str, load: float | None, limit: int) -> None: ...


class LoadController:
    """The scan concurrency of one server. `max_load` None: always `cap` (fixed pacing)."""

    def __init__(
        self,
        max_load: float | None,
        cap: int,
        check_interval: float,
        *,
        origin: float | None = None,
        history: int = HISTORY,
    ) -> None:
        self.max_load = max_load
        self.cap = max(1, cap)
        self.check_interval = check_interval
        self.settle = 2 * check_interval  # ~ the 1-minute average's time constant by default
        self._origin = origin  # history times are relative to this (default: first reading)
        self._limit = 1
        self._fallback = False
        self._warn = False
        self._checked: float | None = None
        self._changed = -math.inf
        self._last: LoadReading | None = None
        self._last_at: float | None = None
        self._peak: float | None = None
        self._over = 0.0
        self._readings = 0
        self._failures = 0
        self._history: list[PacingSample] = []
        self._keep = max(2, history)
        self._stride = 1  # record every stride-th observation (doubles each time history fills)
        self._seen = 0

    # -- what the scheduler asks -----------------------------------------------------------

    @property
    def adaptive(self) -> bool:
        return self.max_load is not None

    def limit(self) -> int:
        """Scans that may run at once now: 1..cap (cap without a max, or after a failed read)."""
        if self.max_load is None or self._fallback:
            return self.cap
        return self._limit

    def overloaded(self) -> bool:
        """Whether the last good reading was above max (start nothing new until it falls)."""
        last = self._last
        return (
            self.max_load is not None
            and not self._fallback
            and last is not None
            and last.one > self.max_load
        )

    def may_start(self, running: int) -> bool:
        """Whether one more scan may start with `running` scans running."""
        return running < self.limit() and not self.overloaded()

    def check_due(self, now: float) -> bool:
        """A systemloadavg reading is due (never for a server without `max`)."""
        if self.max_load is None:
            return False
        return self._checked is None or now - self._checked >= self.check_interval

    def take_warning(self) -> bool:
        """True once after the first failed reading: the caller logs the fallback once."""
        warn, self._warn = self._warn, False
        return warn

    # -- feeding it ------------------------------------------------------------------------

    def observe(self, reading: LoadReading | None, now: float, running: int) -> None:
        """A reading (None: it failed) taken at `now` with `running` scans running."""
        if self.max_load is None:
            return
        self._checked = now
        if self._origin is None:
            self._origin = now
        if reading is None:
            self._failures += 1
            self._warn = self._warn or self._failures == 1
            self._fallback = True
            self._record(now, running, None)
            return
        if self._fallback:  # resume adapting from what runs now
            self._fallback = False
            self._limit = min(self.cap, max(1, running))
        self._account(reading, now)
        previous, self._last, self._last_at = self._last, reading, now
        self._adapt(reading.one, previous, now, running)
        self._record(now, running, reading.one)

    def _account(self, reading: LoadReading, now: float) -> None:
        assert self.max_load is not None
        if self._last_at is not None and reading.one > self.max_load:
            # the 1-minute average above max describes the time since the previous reading
            self._over += now - self._last_at
        self._peak = reading.one if self._peak is None else max(self._peak, reading.one)
        self._readings += 1

    def _adapt(self, load: float, previous: LoadReading | None, now: float, running: int) -> None:
        assert self.max_load is not None
        ceiling, low = self.max_load, self.max_load * (1 - HYSTERESIS)
        if previous is None and running == 0:
            # the first look at an idle server: its headroom, at once
            self._limit = _clamp(math.floor(low - load), self.cap)
            self._changed = now
            return
        settled = now - self._changed >= self.settle
        if load > ceiling:
            rising = previous is not None and load > previous.one
            if settled or rising:
                base = min(self._limit, max(running, 1))
                cut = min(base - math.ceil(load - ceiling), math.floor(base * BACKOFF))
                new = _clamp(cut, self.cap)
                if new < self._limit:
                    self._limit, self._changed = new, now
        elif load < low and running >= self._limit and settled and self._limit < self.cap:
            self._limit, self._changed = self._limit + 1, now

    def _record(self, now: float, running: int, load: float | None) -> None:
        self._seen += 1
        if (self._seen - 1) % self._stride:
            return
        t = now - (self._origin if self._origin is not None else now)
        self._history.append(PacingSample(round(t, 3), running, self.limit(), load))
        if len(self._history) >= self._keep:
            self._history = self._history[::2]
            self._stride *= 2

    # -- what the report and the progress display show -------------------------------------

    @property
    def last_load(self) -> float | None:
        return self._last.one if self._last is not None and not self._fallback else None

    @property
    def peak_load(self) -> float | None:
        return self._peak

    @property
    def seconds_over(self) -> float:
        return self._over

    @property
    def history(self) -> tuple[PacingSample, ...]:
        return tuple(self._history)

    def summary(self) -> ServerPacing:
        return ServerPacing(
            max_load=self.max_load,
            cap=self.cap,
            peak_load=self._peak,
            seconds_over=round(self._over, 1),
            readings=self._readings,
            failed_readings=self._failures,
            history=self.history,
        )


def _clamp(value: int, cap: int) -> int:
    return max(1, min(cap, value))


class Window:
    """The run's cut-off: an aware datetime, or None for no window."""

    def __init__(self, end: datetime | None) -> None:
        if end is not None and end.tzinfo is None:
            raise ValueError("the window end must be an aware datetime")
        self.end = end

    @classmethod
    def resolve(cls, setting: WindowSetting, start: datetime) -> Window:
        """`end` HH:MM in its timezone: the first such moment after the run's `start`."""
        if setting.end is None:
            return cls(None)
        if setting.timezone == "local":
            local = start.astimezone().replace(tzinfo=None)
            end = local.replace(hour=setting.end.hour, minute=setting.end.minute, second=0)
            end = end.replace(microsecond=0)
            if end <= local:
                end += timedelta(days=1)
            return cls(end.astimezone())  # naive -> the system zone's rules on that date
        zone = ZoneInfo(setting.timezone)
        here = start.astimezone(zone)
        wall = here.replace(hour=setting.end.hour, minute=setting.end.minute, second=0)
        wall = wall.replace(microsecond=0)
        if wall <= here:
            wall = (wall.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)
        return cls(wall)

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

    def message(self) -> str:
        if self.end is None:
            return "no window"
        return f"window closed at {self.end.strftime('%H:%M')}"


def predicted_seconds(disk_used_mib: float | None, bytes_per_second: float | None) -> float | None:
    """Seconds a scan of `disk_used_mib` takes at `bytes_per_second`; None when unknown."""
    if disk_used_mib is None or bytes_per_second is None or bytes_per_second <= 0:
        return None
    return disk_used_mib * 1024 * 1024 / bytes_per_second


class Throughput:
    """Bytes per second one scan of a server achieves, from that server's finished scans."""

    def __init__(self) -> None:
        self._bytes = 0
        self._seconds = 0.0

    def observe(self, scanned_bytes: int, seconds: float) -> None:
        if scanned_bytes > 0 and seconds > 0:
            self._bytes += scanned_bytes
            self._seconds += seconds

    @property
    def bytes_per_second(self) -> float | None:
        return self._bytes / self._seconds if self._seconds > 0 else None
