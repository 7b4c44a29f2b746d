"""One simulated server's live state: accounts, faults, cPHulk, sessions, the request log and
the referee's record of rules broken here.

Handlers touch it only while holding `lock`, and never await while holding it, so other
threads (SimulatorThread's callers) may read the log or swap faults at any time.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.simulator import uapi
from orchestrator.simulator.account import ALREADY_RUNNING, ALREADY_RUNNING_DE, AccountState
from orchestrator.simulator.auth import Hulk, Sessions
from orchestrator.simulator.clock import Clock
from orchestrator.simulator.faults import FaultState
from orchestrator.simulator.load import LoadModel
from orchestrator.simulator.outage import Outage, OutageState
from orchestrator.simulator.referee import FleetWindow, Request, ServerReferee, Violation
from orchestrator.simulator.scan import ScanRun
from orchestrator.simulator.spec import Faults, FleetSpec, ServerSpec

#: (run id, account, scan type): who started a scan, as the referee tells runs apart
ScanKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw it; status 0 when the connection was dropped."""

    t: float  # time.monotonic() on arrival
    method: str
    path: str
    route: str  # execute | cpsess_execute | session_login | listaccts | uapi_cpanel | ...
    function: str | None
    account: str | None
    status: int
    content_type: str
    run: str = "anonymous"  # the client's run id (User-Agent), as the referee saw it
    #: what answered instead of the server, the call not run: "" (the server ran it), "outage"
    #: (a 503 proxy, or a refused outage's dropped request), "throttle", "5xx", "429", "fail",
    #: "reset", "html"
    faulted: str = ""


class ServerRuntime:
    def __init__(
        self, spec: ServerSpec, fleet: FleetSpec, clock: Clock, window: FleetWindow | None = None
    ) -> None:
        self.spec = spec
        self.fleet_spec = fleet
        self.clock = clock
        self.load = (
            LoadModel(spec.load, clock.time(), fleet.time_scale, spec.faults.busy_load)
            if spec.load is not None
            else None
        )
        self.accounts = {
            a.user: AccountState(a, fleet.scan_seconds_of(a), self.load) for a in spec.accounts
        }
        self.fault_state = FaultState(spec.faults)
        self.outage = self._outage_state(spec.faults, clock.time())
        self._past_outages: list[Outage] = []  # windows of knobs since replaced
        #: the fleet's hook that takes the port away now (a refused outage's trigger request)
        self.refuse_now: Callable[[], Awaitable[None]] | None = None
        self.hulk = Hulk()
        self.sessions = Sessions(f"clamfleet-sim/{fleet.seed}/{spec.name}")
        self.lock = threading.Lock()
        self.log: list[RequestRecord] = []
        self.base_url = ""
        suspended = frozenset(a.user for a in spec.accounts if a.suspended)
        self.referee = ServerReferee(spec.name, window or FleetWindow(), suspended)
        #: the scan each start_scan request that took created (the latest one per key): the
        #: oracle of what a target must report, its own scan's findings and no other's
        self.started: dict[ScanKey, ScanRun] = {}

    def _outage_state(self, faults: Faults, origin: float, first_index: int = 1) -> OutageState:
        return OutageState(
            faults, origin, seed=self.fleet_spec.seed, server=self.spec.name,
            time_scale=self.fleet_spec.time_scale, first_index=first_index,
        )  # fmt: skip

    @property
    def faults(self) -> Faults:
        return self.fault_state.faults

    def set_faults(self, faults: Faults) -> None:
        with self.lock:
            now = self.now()
            self.fault_state = FaultState(faults)
            self._past_outages += self.outage.cut(now)
            self.outage = self._outage_state(faults, now, len(self._past_outages) + 1)
            if self.load is not None:
                self.load.set_extra(now, faults.busy_load)

    def outages(self) -> list[Outage]:
        """Every outage window begun so far (a running one with its planned end)."""
        with self.lock:
            return self._past_outages + self.outage.begun(self.clock.time())

    def outage_wanted(self) -> Outage | None:
        """The refused-mode window the port should be down for now (the fleet's watcher)."""
        with self.lock:
            if not self.faults.outages or self.outage.mode != "refused":
                return None
            return self.outage.active(self.clock.time())

    def now(self) -> float:
        """The clock, with the load model (if any) brought up to it. Call holding `lock`."""
        now = self.clock.time()
        if self.load is not None:
            self.load.advance(now)
        return now

    def loadavg(self, now: float) -> tuple[float, float, float]:
        """The 1, 5, 15 minute load; without a model, the scans running now. Hold `lock`."""
        if self.load is not None:
            return self.load.loadavg(now)
        running = sum(1 for a in self.accounts.values() if a.scan_running(now))
        load = running + self.faults.busy_load
        return load, load, load

    def record(self, entry: RequestRecord) -> None:
        with self.lock:
            self.log.append(entry)

    def requests(self) -> list[RequestRecord]:
        with self.lock:
            return list(self.log)

    def violations(self) -> list[Violation]:
        with self.lock:
            return list(self.referee.violations)

    def call_uapi(
        self, user: str, function: str, args: Mapping[str, Any], now: float, req: Request
    ) -> dict[str, Any]:
        """ClamScanner::`function` as `user`, judged by the referee (under `lock`)."""
        account = self.accounts[user]
        account.advance(now)
        facts = account.facts(now)
        answer = uapi.call(account, function, args, now, self.faults)
        if function == "start_scan":
            refused = answer["errors"] in ([ALREADY_RUNNING], [ALREADY_RUNNING_DE])
            took = answer["status"] == 1
            scan_type = str(args.get("scan_type"))
            running = self._running_of(req.run, now, account.run) if took else 0
            self.referee.start_scan(req, scan_type, refused, took, facts.disinfecting, running)
            if took and account.run is not None:
                self.started[(req.run, user, scan_type)] = account.run
        elif function in uapi.HANDLERS:
            self.referee.call(req, function, args, facts, account.relpath)
        return answer

    def _running_of(self, run: str, now: float, new: ScanRun | None) -> int:
        """Scans this run started here whose child is alive now, `new` (just started) aside."""
        return sum(
            1 for (r, _, _), scan in self.started.items()
            if r == run and scan is not new and scan.running(now)
        )  # fmt: skip

    def scans_started(self) -> dict[ScanKey, list[tuple[str, str]]]:
        """What each scan a request started found: (relpath, virus), all of it once complete
        (a scan that never completes: what it found so far)."""
        with self.lock:
            now = self.now()
            return {key: run.infected(now) for key, run in self.started.items()}

    def start_as_ui(self, user: str, scan_type: str, *, clamd_down: bool = False) -> str | None:
        """start_scan as cPanel's own UI would run it: no request, not refereed, not logged.
        `clamd_down`: it fails as while clamd was down (the status file is left reset).
        Returns cPanel's error, or None when a scan started."""
        with self.lock:
            now = self.now()
            account = self.accounts[user]
            account.advance(now)
            faults = replace(self.faults, clamd_down=True) if clamd_down else self.faults
            return account.begin_scan(now, scan_type, faults)
