"""Server load model: scans share the server, and the kernel's load averages follow them.

Only for servers with a `LoadSpec`; without one, scans keep their fixed durations.

- Each running scan (one clamd child, runnable or in disk wait) adds 1 to the load; a
  `background` (the customers' sites; constant, or a profile over time) adds the rest.
- A scan alone progresses at rate 1 (it takes its nominal duration). The server serves
  `capacity = min(disk_scans, max(cores - background, MIN_CPU))` scans at full speed; with
  more running each gets `capacity / n`: oversubscription slows every scan, it adds no speed.
- The load averages are the kernel's: every 5 s `avg = avg * e + n_now * (1 - e)` with
  `e = exp(-5 / 60)` (300, 900 for the 5 and 15 minute ones), from `background` at start.
- `Faults.busy_load` (the `extra` here) adds a constant background on top, all night: a busy
  shop server (3.5 on 4 cores) keeps its load averages at or above it whatever the scans do,
  from the start (the averages begin at the background's steady state). Changed by
  `set_faults`, the averages move to it with the kernel's smoothing.
- `time_scale` K compresses time as the benchmark does: a simulated second lasts 1/K real
  seconds, so ticks, time constants and the profile's times are all divided by K.

Progress is event driven and lazy like the rest of the simulator: between two events (a scan
starting or ending, a profile step) nothing changes, so `advance` jumps from event to event and
applies any number of 5-second ticks in closed form.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

TICK = 5.0  # the kernel samples the run queue every 5 s
TAUS = (60.0, 300.0, 900.0)  # the 1, 5 and 15 minute averages
MIN_CPU = 0.5  # even a saturated server gives scans some CPU
DONE = 1e-9


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """A server's capacity and its load besides our scans."""

    cores: int = 4
    disk_scans: float | None = None  # scans the disk serves at full speed; None: no disk limit
    background: float = 0.0
    #: (simulated seconds after the fleet started, background from then on), ascending
    profile: tuple[tuple[float, float], ...] = ()

    def capacity(self, background: float) -> float:
        cpu = max(self.cores - background, MIN_CPU)
        return cpu if self.disk_scans is None else min(cpu, self.disk_scans)


class Meter:
    """The work (nominal seconds) one scan has done, as a piecewise-linear function of time."""

    def __init__(self, start: float, stop_work: float) -> None:
        self.stop_work = stop_work  # the scan ends (or its child dies) at this much work
        self._times = [start]
        self._works = [0.0]
        self._rate = 0.0

    @property
    def active(self) -> bool:
        return self._works[-1] < self.stop_work - DONE

    def finish_time(self) -> float:
        if not self.active:
            return math.inf
        if self._rate <= 0:
            return math.inf
        return self._times[-1] + (self.stop_work - self._works[-1]) / self._rate

    def reach(self, t: float) -> None:
        """Run at the current rate up to `t` (the model only calls this between events)."""
        if not self.active:
            return
        if t <= self._times[-1]:
            if self.finish_time() <= t:  # what float rounding left over
                self._works[-1] = self.stop_work
            return
        work = self._works[-1] + self._rate * (t - self._times[-1])
        if work >= self.stop_work - DONE:
            work = self.stop_work
        self._times.append(t)
        self._works.append(work)

    def set_rate(self, rate: float) -> None:
        self._rate = rate if self.active else 0.0

    def work_at(self, t: float) -> float:
        if t >= self._times[-1]:
            return min(self.stop_work, self._works[-1] + self._rate * (t - self._times[-1]))
        i = bisect_right(self._times, t) - 1
        if i < 0:
            return 0.0
        t0, w0, t1, w1 = self._times[i], self._works[i], self._times[i + 1], self._works[i + 1]
        return w0 + (w1 - w0) * (t - t0) / (t1 - t0) if t1 > t0 else w1

    def time_at(self, work: float) -> float:
        """When the scan had done `work` (extrapolated at the current rate when in the future)."""
        if work <= 0:
            return self._times[0]
        i = bisect_right(self._works, work) - 1
        if i >= len(self._works) - 1:
            rate = self._rate
            extra = (work - self._works[-1]) / rate if rate > 0 else 0.0
            return self._times[-1] + extra
        t0, w0, t1, w1 = self._times[i], self._works[i], self._times[i + 1], self._works[i + 1]
        return t0 + (t1 - t0) * (work - w0) / (w1 - w0) if w1 > w0 else t0


class LoadModel:
    """One server's scans and load averages, advanced lazily to the clock."""

    def __init__(
        self, spec: LoadSpec, start: float, time_scale: float = 1.0, extra: float = 0.0
    ) -> None:
        self.spec = spec
        self.extra = extra  # Faults.busy_load
        self.start = start
        self.k = time_scale
        self.t = start
        self.tick = TICK / time_scale
        self._next_tick = start + self.tick
        self._decay = tuple(math.exp(-TICK / tau) for tau in TAUS)
        self.averages = [spec.background + extra] * len(TAUS)  # an idle server's steady state
        self._meters: dict[str, Meter] = {}
        self._steps = [(start + t / time_scale, bg) for t, bg in sorted(spec.profile)]

    # -- what the simulator asks -----------------------------------------------------------

    def start_scan(self, key: str, now: float, stop_work: float) -> Meter:
        """A scan starts now (replacing `key`'s previous one, whose child is gone)."""
        self.advance(now)
        meter = Meter(now, stop_work)
        self._meters[key] = meter
        self._set_rates()
        return meter

    def running(self, now: float) -> int:
        self.advance(now)
        return sum(1 for m in self._meters.values() if m.active)

    def loadavg(self, now: float) -> tuple[float, float, float]:
        self.advance(now)
        one, five, fifteen = self.averages
        return one, five, fifteen

    def background(self, t: float) -> float:
        i = bisect_right([s[0] for s in self._steps], t) - 1
        return (self._steps[i][1] if i >= 0 else self.spec.background) + self.extra

    def set_extra(self, now: float, extra: float) -> None:
        """A new `busy_load` from `now` on (the averages follow it as the kernel's would)."""
        self.advance(now)
        self.extra = extra
        self._set_rates()

    # -- the event loop --------------------------------------------------------------------

    def advance(self, now: float) -> None:
        while self.t < now:
            active = [m for m in self._meters.values() if m.active]
            event = min(now, self._next_step(self.t), *(m.finish_time() for m in active))
            self._ticks_until(event, len(active) + self.background(self.t))
            self.t = event
            for meter in active:
                meter.reach(event)
            self._set_rates()
        self._meters = {k: m for k, m in self._meters.items() if m.active}

    def _ticks_until(self, t: float, queue: float) -> None:
        """Apply every 5-second sample up to `t`; the run queue is constant meanwhile."""
        if self._next_tick > t:
            return
        n = math.floor((t - self._next_tick) / self.tick) + 1
        self.averages = [
            queue + (avg - queue) * decay**n
            for avg, decay in zip(self.averages, self._decay, strict=True)
        ]
        self._next_tick += n * self.tick

    def _next_step(self, t: float) -> float:
        return next((at for at, _ in self._steps if at > t), math.inf)

    def _set_rates(self) -> None:
        active = [m for m in self._meters.values() if m.active]
        if not active:
            return
        capacity = self.spec.capacity(self.background(self.t))
        # rate per real second, in nominal (simulated-duration) seconds of work per second
        rate = min(1.0, capacity / len(active))
        for meter in active:
            meter.set_rate(rate)
