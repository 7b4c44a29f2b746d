"""One simulated server's live state: accounts, faults, cPHulk, sessions, the request log and
the referee's record of rules broken here.

Handlers touch it only while holding `lock`, and never await while holding it, so other
threads (SimulatorThread's callers) may read the log or swap faults at any time.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.simulator import uapi
from orchestrator.simulator.account import ALREADY_RUNNING, ALREADY_RUNNING_DE, AccountState
from orchestrator.simulator.auth import Hulk, Sessions
from orchestrator.simulator.clock import Clock
from orchestrator.simulator.faults import FaultState
from orchestrator.simulator.load import LoadModel
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


class ServerRuntime:
    def __init__(
        self, spec: ServerSpec, fleet: FleetSpec, clock: Clock, window: FleetWindow | None = None
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.load = (
            LoadModel(spec.load, clock.time(), fleet.time_scale) if spec.load is not None else None
        )
        self.accounts = {
            a.user: AccountState(a, fleet.scan_seconds_of(a), self.load) for a in spec.accounts
        }
        self.fault_state = FaultState(spec.faults)
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

    @property
    def faults(self) -> Faults:
        return self.fault_state.faults

    def set_faults(self, faults: Faults) -> None:
        with self.lock:
            self.fault_state = FaultState(faults)

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
        running = float(sum(1 for a in self.accounts.values() if a.scan_running(now)))
        return running, running, running

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
            self.referee.start_scan(req, scan_type, refused, took, facts.disinfecting)
            if took and account.run is not None:
                self.started[(req.run, user, scan_type)] = account.run
        elif function in uapi.HANDLERS:
            self.referee.call(req, function, args, facts, account.relpath)
        return answer

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
