"""One account's server-side state: its files, its scan status file, its disinfection task."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.simulator.disinfect import DisinfectTask, apply_step, done_record
from orchestrator.simulator.load import LoadModel
from orchestrator.simulator.referee import AccountFacts
from orchestrator.simulator.scan import ScanPlan, ScanRun, build_plan, reset_status, stall_work
from orchestrator.simulator.spec import AccountSpec, Faults, SimFile

MIN_SCOPE_SHARE = 0.05
ALREADY_RUNNING = (
    "A virus scan is already in progress! Please wait until it completes before scanning again."
)
#: The same refusal on a server in German (Faults.scan_busy_text_localized).
ALREADY_RUNNING_DE = (
    "Ein Virenscan läuft bereits! Bitte warten Sie, bis er abgeschlossen ist, bevor Sie erneut"
    " scannen."
)
CLAMD_DOWN = "The system failed to connect to the “ClamAV®” service"


@dataclass(frozen=True, slots=True)
class AccountView:
    """A snapshot of an account for assertions: its files by relpath, and what is going on."""

    user: str
    home: str
    files: dict[str, SimFile]
    scan_running: bool
    disinfection: str  # "none" | "running" | "done"

    def infected(self) -> dict[str, str]:
        """relpath -> virus of every file a scan would still report (quarantine included)."""
        return {p: v for p, f in self.files.items() if (v := f.infected_by)}


class AccountState:
    def __init__(
        self, spec: AccountSpec, scan_seconds: float, load: LoadModel | None = None
    ) -> None:
        self.spec = spec
        self.load = load  # the server's load model: scans then progress by the work they get
        self.home = spec.home
        self.scan_seconds = scan_seconds
        self.files: dict[str, SimFile] = {f.relpath: f for f in spec.files}
        self._version = 0
        self._plans: dict[tuple[int, str], ScanPlan] = {}
        self.run: ScanRun | None = None
        self._reset: tuple[float, int] | None = None
        self._stale: tuple[float, dict[str, Any]] | None = None
        self._cleared: ScanRun | None = None  # the run whose infected list a disinfection removed
        self.task: DisinfectTask | None = None
        self._last_started = 0
        self._tasks = 0
        self.ui_raced = False  # Faults.ui_race_accounts: the UI's scan was started already

    # -- scans ---------------------------------------------------------------------------------

    def plan(self, scan_type: str) -> ScanPlan:
        key = (self._version, scan_type)
        if key not in self._plans:
            self._plans = {k: v for k, v in self._plans.items() if k[0] == self._version}
            self._plans[key] = build_plan(self.files.values(), scan_type)
        return self._plans[key]

    def scan_duration(self, scan_type: str) -> float:
        """Seconds a scan of this type takes now (the benchmark's bound reads it too)."""
        return self._duration(self.plan(scan_type))

    def _duration(self, plan: ScanPlan) -> float:
        home = self.plan("home").total_weight
        share = plan.total_weight / home if home else 0.0
        return max(self.scan_seconds * max(share, MIN_SCOPE_SHARE), 1e-3)

    def _next_time_started(self, now: float, faults: Faults) -> int:
        # Strictly increasing: two scans started within one second would otherwise carry the
        # same time_started, and a client could not tell the new scan from the finished one.
        if faults.time_started_not_renewed and self._last_started:
            return self._last_started
        self._last_started = max(int(now), self._last_started + 1)
        return self._last_started

    def scan_running(self, now: float) -> bool:
        return self.run is not None and self.run.running(now)

    def begin_scan(self, now: float, scan_type: str, faults: Faults) -> str | None:
        """start_scan after validation: reset the status, then refuse or start. Error or None."""
        previous = self.scan_status(now)
        self._reset = (now, self._next_time_started(now, faults))  # step 2 comes first
        self._stale = None
        if self.scan_running(now):
            return ALREADY_RUNNING_DE if faults.scan_busy_text_localized else ALREADY_RUNNING
        if faults.clamd_down or self.spec.user in faults.clamd_down_accounts:
            return CLAMD_DOWN
        plan = self.plan(scan_type)
        duration = self._duration(plan)
        if faults.blind:  # every file is read, none is detected
            plan = replace(plan, infected_at=(), viruses=())
        stalls = self.spec.user in faults.stall_accounts
        meter = None
        if self.load is not None:
            stop = stall_work(duration) if stalls else duration
            meter = self.load.start_scan(self.spec.user, now, stop)
        self.run = ScanRun(
            plan=plan,
            home=self.home,
            started_at=now,
            duration=duration,
            time_started=self._reset[1],
            stalls=stalls,
            meter=meter,
        )
        self._reset = None
        if previous is not None and previous["scan_complete"] == 1 and faults.stale_seconds > 0:
            self._stale = (now + faults.stale_seconds, previous)
        return None

    def scan_status(self, now: float) -> dict[str, Any] | None:
        if self._stale is not None and now < self._stale[0]:
            return self._stale[1]
        return self.status_file(now)

    def status_file(self, now: float) -> dict[str, Any] | None:
        """What the status file holds (the truth a stale `get_scan_status` may lag behind)."""
        run, reset = self.run, self._reset
        if reset is not None and (run is None or reset[0] >= run.last_write(now)):
            return reset_status(reset[1])
        return run.status(now) if run is not None else None

    def infected_list(self, now: float) -> list[tuple[str, str]]:
        if self.run is None or self._cleared is self.run:
            return []
        return self.run.infected(now)

    def facts(self, now: float) -> AccountFacts:
        """What the referee judges a ClamScanner call against (after `advance(now)`)."""
        status = self.status_file(now)
        task = self.task
        return AccountFacts(
            scan_complete=status is not None and status["scan_complete"] == 1,
            listed=frozenset(p for p, _ in self.infected_list(now)),
            disinfecting=task is not None and not task.finished,
        )

    # -- disinfection --------------------------------------------------------------------------

    def relpath(self, key: str) -> str:
        prefix = self.home + "/"
        return key[len(prefix) :] if key.startswith(prefix) else key

    def disinfect(self, now: float, actions: dict[str, str], faults: Faults) -> dict[str, str]:
        self.advance(now)
        wanted = {self.relpath(k): v for k, v in actions.items()}
        seen: dict[str, str] = {}
        for relpath, _ in self.infected_list(now):
            seen.setdefault(relpath, wanted.get(relpath, ""))
        self.task = DisinfectTask(
            list(seen.items()), now + faults.disinfect_start_delay, faults.disinfect_step_seconds
        )  # replacing the task deletes the previous log
        self._tasks += 1
        digest = hashlib.sha256(f"{self.spec.user}/{self._tasks}".encode()).hexdigest()[:14]
        return {
            "task_id": f"00000000/{digest}",
            "log": f"{self.home}/.clamavconnector.disinfection.log",
        }

    def advance(self, now: float) -> None:
        """Apply every disinfection record that is due by `now`."""
        task = self.task
        while task is not None and not task.finished and task.due(len(task.records)) <= now:
            index = len(task.records)
            if index < len(task.items):
                record = apply_step(self.files, *task.items[index])
                self._version += 1
            else:
                record = done_record(task)
                self._cleared = self.run
            task.records.append({"id": index + 1, **record})

    def view(self, now: float) -> AccountView:
        self.advance(now)
        task = self.task
        state = "none" if task is None else "done" if task.finished else task.state(now)
        return AccountView(
            self.spec.user, self.home, dict(self.files), self.scan_running(now), state
        )
