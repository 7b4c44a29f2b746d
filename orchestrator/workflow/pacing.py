"""Pure pacing policy: how many scans a server may run now, and whether the night is over.

No I/O and no clock reads: every `now` is passed in (monotonic seconds for the controller, an
aware wall-clock datetime for the window), so the whole policy is tested without a server.

    LoadController   one per host: the scan concurrency limit from systemloadavg readings
    Window           the run's cut-off: no new scan starts after it (window.py, re-exported)
    predicted_seconds / Throughput   how long a scan of an account will probably take

The control law (why each part is there):
- Each running scan is one clamd child: ~1 runnable (or disk-waiting) task, i.e. +1 load. The
  controller keeps an estimate of the load that is *not* ours (`base`: the idle reading, later
  the settled reading minus the scans running) and never plans more scans than fit under max:
  `fit = the most n with base + n < max`.
- The first reading of an idle server sets the limit to `fit` at once (no slow ramp).
- Nothing starts before the first reading has answered (or failed): a server already over max
  must not get a scan just because its load was not known yet.
- The 1-minute average lags (a new scan shows only ~63 % after a minute). Two readings with
  the same scans running give where it is heading, `(L2 - L1 a) / (1 - a)` with
  `a = exp(-dt / tau)`, tau = the average's time constant: 60 s, the kernel's, whatever
  `check_interval` is (a shorter interval reads more often, it does not make the average
  faster); that settled value, not the lagging reading, updates `base` and decides increases.
  `settle`, the wait after a change before the next increase, is one tau too.
- Over max: start nothing new (`may_start` is False). Once `settle` has passed since the last
  change, step the limit down (at least by one, to `fit`); while the load is still rising just
  aim at `fit` (scans started before the rise cannot be cancelled, and nothing pretends they
  can: the limit only stops new starts).
- Heading over max (the settled estimate is) while not yet over: drop to `fit` before it is.
- Under `max * (1 - HYSTERESIS)` (reading and estimate) with the limit in use, `settle` after
  the last change, and one more scan still fitting: +1. Between the two: hold, so a constant
  load gives a monotone limit (no oscillation).
- Readings cost API calls, so none is due while no target waits to start (nothing to decide),
  and while the load holds steady the interval stretches (x2 per steady reading, up to
  STRETCH x check_interval); any change, overload or failure brings it back to check_interval.
- A failed reading (None) is not retried before the next check; the limit stays what the last
  good reading made it (1 before any), never the upper cap: a reading fails most often when
  the server is too busy to answer, the worst moment to start more. `take_warning` says so
  once; the next good reading resumes adapting.
- Patience: while the load is over max and none of our scans runs, nothing can start; if that
  lasts `patience` seconds (`exhausted`), the waiting targets are deferred (named by the load)
  instead of waiting for a load that may never fall: the run ends.
"""

from __future__ import annotations

import math
from typing import Protocol

from orchestrator.model import LoadReading, PacingSample, ServerPacing
from orchestrator.workflow.window import Window as Window  # where callers found it before

HYSTERESIS = 0.1  # increase only below max * (1 - HYSTERESIS)
BACKOFF = 0.75  # an overload cuts the limit to at most this share of what was in use
STRETCH = 4  # a steady load is read at most this many check_intervals apart
HISTORY = 240  # samples kept per server (older ones are thinned out, never the whole run lost)
EPSILON = 1e-6  # load units: below what a reading can tell apart
TIME_CONSTANT = 60.0  # seconds: the kernel's 1-minute load average (exp(-5/60) per 5 s tick)


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
        time_constant: float = TIME_CONSTANT,
        patience: float | None = None,
        origin: float | None = None,
        history: int = HISTORY,
    ) -> None:
        self.max_load = max_load
        self.cap = max(1, cap)
        self.check_interval = check_interval
        self.settle = time_constant  # the 1-minute average's time constant (tau)
        self.patience = patience  # None: wait for the load however long it takes
        self._blocked_since: float | None = None  # over max with nothing of ours running
        self._origin = origin  # history times are relative to this (default: first reading)
        self._limit = 1
        self._fallback = False
        self._warn = False
        self._checked: float | None = None
        self._interval = check_interval  # the current gap between readings (stretches)
        self._base = 0.0  # estimated load besides our scans
        self._running_before = -1
        self._last_at_before: float | None = None
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
        """Scans that may run at once now: 1..cap (cap without a max; after a failed reading
        what the last good one allowed)."""
        if self.max_load is None:
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
        """Whether one more scan may start with `running` scans running (with a max: never
        before the first reading has answered or failed)."""
        if self.max_load is not None and self._checked is None:
            return False
        return running < self.limit() and not self.overloaded()

    def exhausted(self, now: float) -> bool:
        """The load has kept every start back (over max, nothing of ours running) for
        `patience` seconds: the targets still waiting are to be deferred."""
        ends = self.patience_ends_at()
        return ends is not None and now >= ends

    def patience_ends_at(self) -> float | None:
        """When the current wait for the load runs out of patience (None: no such wait)."""
        if self.patience is None or self._blocked_since is None:
            return None
        return self._blocked_since + self.patience

    @property
    def blocked_since(self) -> float | None:
        """Since when the load has kept every start back (None: it does not)."""
        return self._blocked_since

    def check_due(self, now: float, *, waiting: bool = True) -> bool:
        """A systemloadavg reading is due (never without `max`, nor with no target `waiting`)."""
        if self.max_load is None or not waiting:
            return False
        return self._checked is None or now - self._checked >= self._interval

    def next_check_at(self) -> float | None:
        """When the next reading falls due (for a scheduler's sleep); None: never / at once."""
        if self.max_load is None or self._checked is None:
            return None
        return self._checked + self._interval

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
            self._fallback = True  # the limit stays the last good one (1 before any)
            self._blocked_since = None  # not kept back by the load: the limit lets one start
            self._interval = self.check_interval
            self._record(now, running, None)
            return
        self._fallback = False
        self._account(reading, now)
        previous, self._last, self._last_at = self._last, reading, now
        before = self._limit
        self._adapt(reading.one, previous, now, running)
        if self.overloaded() and running == 0:
            if self._blocked_since is None:
                self._blocked_since = now
        else:
            self._blocked_since = None
        steady = self._limit == before and not self.overloaded() and previous is not None
        if steady and not self._increase_pending(reading.one, running):
            self._interval = min(2 * self._interval, STRETCH * self.check_interval)
        else:
            self._interval = self.check_interval
        self._record(now, running, reading.one)

    def _increase_pending(self, load: float, running: int) -> bool:
        """Under the increase threshold with the limit in use: only the settle time holds it."""
        assert self.max_load is not None
        low = self.max_load * (1 - HYSTERESIS)
        return load < low and running >= self._limit and self._fit() > self._limit

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
        settled = now - self._changed >= self.settle
        expected = self._estimate_base(load, previous, now, running)
        if previous is None and running == 0:
            # the first look at an idle server: as many scans as its headroom holds, at once
            self._limit, self._changed = self._fit(), now
            return
        if load > ceiling:
            self._base = max(self._base, load - running)  # the load is not all ours
            rising = previous is not None and load > previous.one
            if settled:
                new = min(min(self._limit, max(running, 1)) - 1, self._fit())
            elif rising:
                new = self._fit()  # scans started before the rise: aim, do not keep cutting
            else:
                return
            if _clamp(new, self.cap) < self._limit:
                self._limit, self._changed = _clamp(new, self.cap), now
        elif expected > ceiling and self._fit() < self._limit:
            # not over yet, but heading there: stop adding before it is
            self._limit, self._changed = self._fit(), now
        elif (
            max(load, expected) < low
            and running >= self._limit
            and settled
            and self._fit() > self._limit  # one more scan (~ +1 load) still stays under max
        ):
            self._limit, self._changed = self._limit + 1, now

    def _estimate_base(
        self, load: float, previous: LoadReading | None, now: float, running: int
    ) -> float:
        """Update the load that is not our scans; return where the average is heading.

        The 1-minute average moves towards its target as exp(-t / tau) (tau: `settle`, the
        kernel's 60 s), so two readings with the same scans running give the target the
        lag hides: (L2 - L1 * a) / (1 - a), a = exp(-dt / tau). Idle, the reading is the base.
        """
        expected = load
        if running == 0:
            self._base = load
        elif previous is not None and running == self._running_before and self._last_at_before:
            dt = now - self._last_at_before
            decay = math.exp(-dt / self.settle) if self.settle > 0 else 0.0
            if decay < 1:
                expected = max((load - previous.one * decay) / (1 - decay), 0.0)
                self._base = max(expected - running, 0.0)
        self._running_before, self._last_at_before = running, now
        return expected

    def _fit(self) -> int:
        """The most scans with base + scans strictly under max (each scan ~ 1 runnable task)."""
        assert self.max_load is not None
        # (less a hair: an estimate a rounding error under a whole number must not buy a scan)
        return _clamp(math.ceil(self.max_load - self._base - EPSILON) - 1, self.cap)

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
