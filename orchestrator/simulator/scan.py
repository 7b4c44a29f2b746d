"""The scan progress model: everything is computed lazily from the clock.

A scan is a precomputed plan (cumulative weights of the files it will visit) plus a start time
and a duration; a status call is a bisect, so thousands of concurrent scans cost nothing while
nobody looks at them. The first 10% of the duration is the counting pass (totals still 0).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.simulator.encoding import current_file, safe_html_encode
from orchestrator.simulator.load import Meter
from orchestrator.simulator.spec import QUARANTINE_DIR, SimFile

#: Per-file overhead in the weight, so tiny files still take time.
FILE_OVERHEAD = 4096
COUNTING_SHARE = 0.1
STALL_AT = 0.4
SCOPES = {"home": "", "mail": "mail/", "public_html": "public_html/", "public_ftp": "public_ftp/"}


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """The files one scan visits, in walk order, with cumulative weights and byte counts."""

    paths: tuple[str, ...]
    cum_weight: tuple[int, ...]
    cum_bytes: tuple[int, ...]
    infected_at: tuple[int, ...]  # indexes into paths, ascending
    viruses: tuple[str, ...]  # parallel to infected_at

    @property
    def total_weight(self) -> int:
        return self.cum_weight[-1] if self.cum_weight else 0

    @property
    def total_bytes(self) -> int:
        return self.cum_bytes[-1] if self.cum_bytes else 0


def build_plan(files: Iterable[SimFile], scan_type: str) -> ScanPlan:
    prefix = SCOPES[scan_type]
    chosen = sorted(
        (f for f in files if f.relpath.startswith(prefix) and not _quarantined(f.relpath)),
        key=lambda f: f.relpath,
    )
    cum_w, cum_b, infected, viruses = [], [], [], []
    weight = size = 0
    for i, f in enumerate(chosen):
        weight += f.size + FILE_OVERHEAD
        size += f.size
        cum_w.append(weight)
        cum_b.append(size)
        if (virus := f.infected_by) is not None:
            infected.append(i)
            viruses.append(virus)
    return ScanPlan(
        tuple(f.relpath for f in chosen), tuple(cum_w), tuple(cum_b), tuple(infected),
        tuple(viruses),
    )  # fmt: skip


def _quarantined(relpath: str) -> bool:
    return relpath == QUARANTINE_DIR or relpath.startswith(QUARANTINE_DIR + "/")


def stall_work(duration: float) -> float:
    """The work (nominal seconds) after which a stalling scan's child dies."""
    return COUNTING_SHARE * duration + STALL_AT * (1 - COUNTING_SHARE) * duration


@dataclass(frozen=True, slots=True)
class ScanRun:
    """One scan. `duration` is its length alone on the server; with a `meter` (load
    modelling on) its progress is the work the meter says it has done, else wall time."""

    plan: ScanPlan
    home: str
    started_at: float
    duration: float
    time_started: int
    stalls: bool = False
    meter: Meter | None = None

    def _elapsed(self, now: float) -> float:
        """Nominal seconds of scanning done by `now`."""
        return self.meter.work_at(now) if self.meter else now - self.started_at

    def _when(self, elapsed: float) -> float:
        """When the scan had done `elapsed` nominal seconds."""
        return self.meter.time_at(elapsed) if self.meter else self.started_at + elapsed

    def _counting(self, now: float) -> bool:
        return self._elapsed(now) < COUNTING_SHARE * self.duration

    def _fraction(self, now: float) -> float:
        scan_len = (1 - COUNTING_SHARE) * self.duration
        counted = COUNTING_SHARE * self.duration
        frac = (self._elapsed(now) - counted) / scan_len if scan_len > 0 else 1.0
        return min(frac, STALL_AT) if self.stalls else min(frac, 1.0)

    def done_count(self, now: float) -> int:
        """Files completely scanned at `now`."""
        if self._counting(now):
            return 0
        frac = self._fraction(now)
        if frac >= 1.0:
            return len(self.plan.paths)
        return bisect_right(self.plan.cum_weight, frac * self.plan.total_weight)

    def complete(self, now: float) -> bool:
        return not self.stalls and self._elapsed(now) >= self.duration

    def running(self, now: float) -> bool:
        """Whether the scanner child is alive (a stalled one dies at STALL_AT)."""
        if self.stalls:
            return self._counting(now) or self._fraction(now) < STALL_AT
        return not self.complete(now)

    def last_write(self, now: float) -> float:
        """When the child last rewrote the status file."""
        if self._counting(now):
            return self.started_at
        if self.complete(now):
            return self._when(self.duration)
        counted = COUNTING_SHARE * self.duration
        k = self.done_count(now)
        if k == 0:
            return self._when(counted)
        scan_len = (1 - COUNTING_SHARE) * self.duration
        share = self.plan.cum_weight[k - 1] / self.plan.total_weight
        return self._when(counted + scan_len * share)

    def infected(self, now: float) -> list[tuple[str, str]]:
        """(relpath, virus) found so far."""
        k = self.done_count(now)
        n = bisect_right(self.plan.infected_at, k - 1)
        return [
            (self.plan.paths[i], v)
            for i, v in zip(self.plan.infected_at[:n], self.plan.viruses[:n], strict=True)
        ]

    def status(self, now: float) -> dict[str, Any]:
        if self._counting(now):
            return reset_status(self.time_started)
        k = self.done_count(now)
        complete = self.complete(now)
        n = len(self.plan.paths)
        current = "" if complete or k >= n else current_file(self.raw(self.plan.paths[k]))
        total_size = (
            self.plan.total_bytes if k > 0 else self.plan.total_bytes // (1024 * 1024)
        )  # MiB after the counting pass, bytes once the first file is scanned (as cPanel does)
        return {
            "current_file": current,
            "infected_files": [self.abs(p) for p, _ in self.infected(now)],
            "scan_complete": 1 if complete else 0,
            "scanned_file_count": k,
            "scanned_file_size": self.plan.cum_bytes[k - 1] if k else 0,
            "time_started": self.time_started,
            "total_file_count": n,
            "total_file_size_MiB": total_size,
        }

    def raw(self, relpath: str) -> str:
        return f"{self.home}/{relpath}"

    def abs(self, relpath: str) -> str:
        """The absolute path as cPanel reports it: HTML-encoded."""
        return safe_html_encode(self.raw(relpath))


def reset_status(time_started: int) -> dict[str, Any]:
    """What start_scan writes before anything else (also when it then fails)."""
    return {
        "current_file": "",
        "infected_files": [],
        "scan_complete": 0,
        "scanned_file_count": 0,
        "scanned_file_size": 0,
        "time_started": time_started,
        "total_file_count": 0,
        "total_file_size_MiB": 0,
    }
