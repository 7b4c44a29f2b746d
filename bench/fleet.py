"""The benchmark's fleet: its sizes, the simulator as its own process, the inventory scaled
for a size and time scale, and the folder a run keeps its files in."""

from __future__ import annotations

import contextlib
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

REQUEST_TIMEOUT_FLOOR = 5.0
SIM_READY_TIMEOUT = 120.0
MIB = 1024.0


@dataclass(frozen=True, slots=True)
class Size:
    """One benchmark size. Times are *simulated* seconds, rates *simulated* requests/s."""

    name: str
    servers: int
    accounts: int
    scan_seconds: float  # the simulator's --scan-seconds at K=1
    time_scale: float  # K
    max_concurrent_scans: int  # per server
    repeat: int
    server_rps: float = 5.0  # the inventory default: a promise to each server's owner
    global_rps: float = 0.0  # 0: servers x server_rps (never tighter than the servers together)
    max_concurrent_servers: int = 0  # 0: every server at once
    poll_min: float = 2.0  # cPanel's own UI polls every 2 s
    poll_max: float = 30.0
    scan_timeout: float = 21600.0
    stall_timeout: float = 1800.0
    disinfection_timeout: float = 3600.0
    request_timeout: float = 30.0
    infected_ratio: float = 0.1
    seed: int = 1
    scan_types: tuple[str, ...] = ("home",)
    #: `simulate --fault SERVER:KNOB=VALUE` arguments (bench/night.py: upcp restarts)
    faults: tuple[str, ...] = ()

    @property
    def targets(self) -> int:
        return self.servers * self.accounts * len(self.scan_types)

    @property
    def fleet_rps(self) -> float:
        return self.global_rps or self.servers * self.server_rps

    @property
    def server_slots(self) -> int:
        return self.max_concurrent_servers or self.servers


SIZES: dict[str, Size] = {
    # A smoke run: seconds. 60-s simulated scans at K=30 last 2 s.
    "quick": Size("quick", servers=3, accounts=4, scan_seconds=60, time_scale=30,
                  max_concurrent_scans=2, repeat=1),
    # 500 targets, 10-minute simulated scans (the mean; up to 2x) at K=10 (60 s real).
    "small": Size("small", servers=20, accounts=25, scan_seconds=600, time_scale=10,
                  max_concurrent_scans=25, repeat=3),
    # 10,000 targets over 200 servers, 10-minute simulated scans at K=10 (60 s real, mean).
    "full": Size("full", servers=200, accounts=50, scan_seconds=600, time_scale=10,
                 max_concurrent_scans=50, repeat=3),
}  # fmt: skip


_EXPORT = re.compile(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_VIOLATIONS = re.compile(r"^violations run=(\S+) rule=(\S+) count=(\d+)$")


class Simulator:
    """`python -m orchestrator simulate` as a child process; stopped on exit, always."""

    def __init__(self, size: Size, inventory: Path, log: Path) -> None:
        self.argv = [
            sys.executable, "-m", "orchestrator", "simulate",
            "--servers", str(size.servers), "--accounts", str(size.accounts),
            "--infected-ratio", str(size.infected_ratio), "--seed", str(size.seed),
            "--scan-seconds", repr(size.scan_seconds / size.time_scale),
            "--write-inventory", str(inventory),
            # the limits the scaled inventory promises: the simulator's referee enforces them
            "--requests-per-second", repr(size.server_rps * size.time_scale),
            "--fleet-requests-per-second", repr(size.fleet_rps * size.time_scale),
            "--max-concurrent-scans", str(size.max_concurrent_scans),
            *(arg for fault in size.faults for arg in ("--fault", fault)),
        ]  # fmt: skip
        self.inventory = inventory
        self.log = log
        self.env: dict[str, str] = {}
        self.urls: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False

    def __enter__(self) -> Simulator:
        self._proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT
        )
        threading.Thread(target=self._drain, daemon=True).start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _drain(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        with self.log.open("wb") as log:
            for raw in self._proc.stdout:
                log.write(raw)
                log.flush()
                with self._cond:
                    self._lines.append(raw.decode(errors="replace").rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _wait_ready(self) -> None:
        """Ready once the inventory is written and the token lines are out (and quiet 0.3 s)."""
        deadline = time.monotonic() + SIM_READY_TIMEOUT
        seen = 0
        last_line = time.monotonic()
        while True:
            with self._cond:
                self._cond.wait(timeout=0.1)
                fresh, seen = self._lines[seen:], len(self._lines)
                eof = self._eof
            for line in fresh:
                last_line = time.monotonic()
                if m := _EXPORT.match(line):
                    value = m.group(2).strip()
                    self.env[m.group(1)] = shlex.split(value)[0] if value else ""
                self.urls += re.findall(r"https?://127\.0\.0\.1:\d+", line)
            if eof:
                raise RuntimeError(f"simulator exited early; see {self.log}")
            quiet = time.monotonic() - last_line > 0.3
            if self.env and self.inventory.exists() and quiet:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"simulator not ready after {SIM_READY_TIMEOUT:g}s; {self.log}")

    def violations(self, run_id: str) -> dict[str, int]:
        """Protocol violations by rule that the simulator printed for one run, once stopped.

        Only the orchestrator's run counts: the baseline client is unpaced on purpose.
        """
        self.stop()
        with self._cond:
            self._cond.wait_for(lambda: self._eof, timeout=30)
            lines = list(self._lines)
        found: dict[str, int] = {}
        for line in lines:
            if (m := _VIOLATIONS.match(line)) and m.group(1) == run_id:
                found[m.group(2)] = found.get(m.group(2), 0) + int(m.group(3))
        return found

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def scaled_inventory(source: Path, dest: Path, size: Size) -> dict[str, Any]:
    """The simulator's inventory with the size's limits, every time /K and every rate *K."""
    k = size.time_scale
    data: dict[str, Any] = yaml.safe_load(source.read_text())
    limit_keys = ("max_concurrent_scans", "requests_per_second")
    defaults = data.setdefault("defaults", {})
    defaults["max_concurrent_scans"] = size.max_concurrent_scans
    defaults["scan_types"] = list(size.scan_types)
    defaults["requests_per_second"] = size.server_rps * k
    for group in (data.get("groups") or {}).values():
        for key in limit_keys:
            group.pop(key, None)
    for server in data.get("servers") or []:
        for key in limit_keys:
            server.pop(key, None)
    data["settings"] = {
        **(data.get("settings") or {}),
        "max_concurrent_servers": size.server_slots,
        "requests_per_second": size.fleet_rps * k,
        "poll_interval": {"min": size.poll_min / k, "max": size.poll_max / k},
        "timeouts": {
            "request": max(size.request_timeout / k, REQUEST_TIMEOUT_FLOOR),
            "scan": size.scan_timeout / k,
            "stall": size.stall_timeout / k,
            "disinfection": size.disinfection_timeout / k,
        },
    }
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return data


def fleet_spec(size: Size) -> Any:
    """The same fleet the simulator process generates (deterministic per seed)."""
    from orchestrator.simulator import generate_fleet

    return generate_fleet(
        servers=size.servers,
        accounts=size.accounts,
        infected_ratio=size.infected_ratio,
        seed=size.seed,
        scan_seconds=size.scan_seconds / size.time_scale,
    )


@contextlib.contextmanager
def work_dir(path: Path | None) -> Iterator[Path]:
    """`path` (created if missing), or a temporary folder removed afterwards."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="clamfleet-bench-") as tmp:
        yield Path(tmp)
