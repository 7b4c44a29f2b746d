"""The history's trend as the report carries it (report.json `history`, report.html's charts).

Filled from a history database (`--history`) by report/history.py: the last nights, oldest
first, the report's own night last, and per server of the report the scan time and bytes of
each of those nights, from which report.html draws seconds per GB (a server whose scans grow
slower shows it here before its users notice). Plain values: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

#: Nights the report's trend covers (the chart's width), this one included.
TREND_NIGHTS = 30
GB = 1_000_000_000


@dataclass(frozen=True, slots=True)
class NightPoint:
    """One night of the trend (a run, or a merged sharded night)."""

    run_id: str
    started_at: datetime
    exit_code: int
    targets: int
    infected_files: int
    #: Files new since each target's previous scan; None when that night had no comparison.
    new: int | None
    failed: int
    #: From the run's start to its end; None when it never finished.
    wall_s: float | None


@dataclass(frozen=True, slots=True)
class ServerPoint:
    """One server on one night: its completed scans' summed duration and the bytes they read."""

    started_at: datetime
    scan_s: float
    bytes: int

    @property
    def seconds_per_gb(self) -> float | None:
        return None if self.bytes <= 0 else self.scan_s / (self.bytes / GB)


@dataclass(frozen=True, slots=True)
class Trend:
    nights: tuple[NightPoint, ...]
    servers: Mapping[str, tuple[ServerPoint, ...]] = field(default_factory=dict, hash=False)
