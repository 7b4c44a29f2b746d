"""Outages of a server's HTTP face: cpsrvd restarts and a 503 proxy, as a real night has them.

cPanel's nightly update (`upcp`) and any service restart take ports 2083/2087 away for seconds
to minutes; a proxy in front may answer 503 meanwhile. clamd and the disinfection tasks are
other processes: scans and tasks go on during an outage (the account state is untouched, on
the server's clock); only the HTTP face is away. The knobs are fields of `Faults`:

- `outage_mode`: `refused` (cpsrvd stopped: the listening socket is closed, every open
  connection is dropped, a new one gets ECONNREFUSED; the same port listens again at the end)
  or `503` (a proxy answers every request with an HTML "503 Service Unavailable" page, with
  `Retry-After: outage_retry_after` when that is set; nothing reaches the server).
- When: `outage_at` seconds after the knobs took effect (the fleet's start for a spec's own
  knobs, the `set_faults` call for later ones); with `outage_on`, the outage starts at that
  function's `outage_on_count`-th request from then on (per server, counted at the proxy, so
  every request of the function counts), and that request is already in the outage: in 503
  mode it gets the page, in refused mode its connection is dropped unanswered (it was in
  flight when cpsrvd went down). A function is the ClamScanner one whichever way in
  (`/execute` or WHM's `uapi_cpanel`), or the WHM function (`listaccts`, `systemloadavg`...).
- How long: `outage_seconds`; or `upcp_seconds` > 0: an upcp run, 2-4 restarts spread over
  that span (`upcp_profile`): the first at the start, each later one at a random point of
  its own slot (span / n), each 5-40 s long (the real night's seconds, divided by the fleet's
  `time_scale` like load profiles are, and never more than 80 % of its slot, so a short span
  gives short restarts), drawn from the fleet's seed and the server's name: the same seed gives
  the same windows. Every other time knob is on the simulator's clock as given.

Windows (`Outage`: start, end, mode, cause, on the simulator's clock) are recorded on the
server's runtime as they begin (`SimulatedFleet.outages(name)`). Replacing the knobs
(`set_faults`) ends a running outage at once and drops the windows not begun.

A refused outage is applied by the fleet (fleet.py `Face`): a watcher closes and reopens the
port within `WATCH_SECONDS` of a window's edges on the clock (a test with a `ManualClock` calls
`SimulatedFleet.apply_outages()` after moving it), a triggering request closes it at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from orchestrator.simulator.spec import Faults

REFUSED, PROXY_503 = "refused", "503"
WATCH_SECONDS = 0.02  # the fleet's watcher looks at the clock this often (refused mode)
UPCP_RESTARTS = (2, 4)
UPCP_RESTART_SECONDS = (5.0, 40.0)
UPCP_SLOT_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class Outage:
    """One window in which the server's HTTP face is away (simulator clock, epoch seconds)."""

    index: int  # per server, from 1, in the order the windows were planned
    start: float
    end: float
    mode: str  # "refused" | "503"
    cause: str  # "at" | "on start_scan" | "upcp 2/3" ...

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end

    def __str__(self) -> str:
        return f"{self.mode} outage #{self.index} ({self.cause}, {self.end - self.start:.2f} s)"


def upcp_profile(seed: int, server: str, span: float, time_scale: float = 1.0) -> list[
    tuple[float, float]
]:  # fmt: skip
    """(offset, seconds) of each restart of one upcp run over `span` seconds (module doc)."""
    rng = random.Random(f"upcp:{seed}:{server}")  # noqa: S311 (a simulation, not a secret)
    n = rng.randint(*UPCP_RESTARTS)
    slot = span / n
    restarts = []
    for i in range(n):
        seconds = min(rng.uniform(*UPCP_RESTART_SECONDS) / time_scale, UPCP_SLOT_SHARE * slot)
        offset = 0.0 if i == 0 else i * slot + rng.uniform(0.0, slot - seconds)
        restarts.append((offset, seconds))
    return restarts


class OutageState:
    """One server's outage knobs and the windows they made. Used under the runtime's lock."""

    def __init__(
        self, faults: Faults, origin: float, *, seed: int = 0, server: str = "",
        time_scale: float = 1.0, first_index: int = 1,
    ) -> None:  # fmt: skip
        self.faults = faults
        self._seed, self._server, self._k = seed, server, time_scale
        self._first_index = first_index
        self._armed_at = origin + faults.outage_at
        self._waiting = faults.outages and bool(faults.outage_on)  # for the trigger
        self._seen = 0
        self.windows: list[Outage] = []
        if faults.outages and not faults.outage_on:
            self.windows = self._plan(self._armed_at, "at")

    @property
    def mode(self) -> str:
        return self.faults.outage_mode

    def _plan(self, start: float, cause: str) -> list[Outage]:
        f = self.faults
        if f.upcp_seconds > 0:
            restarts = upcp_profile(self._seed, self._server, f.upcp_seconds, self._k)
            n, suffix = len(restarts), "" if cause == "at" else f", {cause}"
            return [
                Outage(self._first_index + i, start + offset, start + offset + seconds,
                       f.outage_mode, f"upcp {i + 1}/{n}{suffix}")
                for i, (offset, seconds) in enumerate(restarts)
            ]  # fmt: skip
        end = start + f.outage_seconds
        return [Outage(self._first_index, start, end, f.outage_mode, cause)]

    def check(self, now: float, function: str | None) -> Outage | None:
        """The window a request arriving now falls in; the trigger request starts its own."""
        if self._waiting and function == self.faults.outage_on and now >= self._armed_at:
            self._seen += 1
            if self._seen >= self.faults.outage_on_count:
                self._waiting = False
                self.windows = self._plan(now, f"on {function}")
        return self.active(now)

    def active(self, now: float) -> Outage | None:
        return next((w for w in self.windows if w.covers(now)), None)

    def begun(self, now: float) -> list[Outage]:
        """The windows that have started by `now` (a running one with its planned end)."""
        return [w for w in self.windows if w.start <= now]

    def cut(self, now: float) -> list[Outage]:
        """The windows begun by `now`, a running one ended at `now` (the knobs are replaced)."""
        return [Outage(w.index, w.start, min(w.end, now), w.mode, w.cause) for w in self.begun(now)]
