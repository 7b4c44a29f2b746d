"""targets.csv, infected.csv and the plain-text summary table printed by `run` and `demo`.

Columns are only ever appended: targets.csv's `verified` (true, false, or empty where no canary
applies) and infected.csv's `accepted` (yes, expired or empty), `accepted_reason`,
`accepted_expires` and `canary` come after the contract's columns (and after `delta`).
`infected_count` counts findings: an accepted file or the canary is listed, not counted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from orchestrator.model import InfectedFile, Status, TargetResult
from orchestrator.report.encode import format_time
from orchestrator.report.model import Report, account_files

TARGET_COLUMNS = [
    "server",
    "account",
    "scan_type",
    "status",
    "infected_count",
    "scanned_file_count",
    "scanned_file_size",
    "duration_s",
    "error_kind",
    "error_message",
    "verified",
]
INFECTED_COLUMNS = [
    "server",
    "account",
    "scan_type",
    "path",
    "virus",
    "action",
    "outcome",
    "message",
]
#: Appended to infected.csv (after `delta` when there is one).
ACCEPTED_COLUMNS = ["accepted", "accepted_reason", "accepted_expires", "canary"]
RESOLVED = "resolved"

Cell = str | int | float | None


def _csv(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([["" if cell is None else cell for cell in row] for row in rows])
    return buffer.getvalue()


def target_row(t: TargetResult) -> list[Cell]:
    scan = t.scan
    return [
        t.server,
        t.account,
        str(t.scan_type),
        str(t.status),
        len(t.findings),
        None if scan is None else scan.scanned_file_count,
        None if scan is None else scan.scanned_file_size,
        t.duration_s,
        None if t.error is None else str(t.error.kind),
        None if t.error is None else t.error.message,
        None if t.verified is None else str(t.verified).lower(),
    ]


def targets_csv(report: Report) -> str:
    return _csv(TARGET_COLUMNS, (target_row(t) for t in report.targets))


#: Appended (in this order) with a history: the delta column then is always there, even on the
#: first night (empty), so a history's infected.csv keeps one set of columns.
HISTORY_COLUMNS = ["first_seen", "nights_seen"]


def with_history(report: Report) -> bool:
    """Whether the report was annotated from a history (its own, or its shards' before a merge
    without one: the files still carry their first night)."""
    if report.history is not None:
        return True
    return any(f.nights_seen is not None for t in report.targets for f in t.infected_files)


def infected_rows(report: Report) -> Iterator[list[Cell]]:
    """One row per infected file, then (after a baseline comparison) one per resolved file."""
    history = with_history(report)
    with_delta = report.compared or history
    for t in report.targets:
        for f in t.infected_files:
            row: list[Cell] = [t.server, t.account, str(t.scan_type), f.path, f.virus]
            row += [str(f.action), str(f.outcome), f.message]
            row += [f.delta] if with_delta else []
            row += acceptance_cells(f)
            if history:
                first = None if f.first_seen is None else format_time(f.first_seen)
                row += [first, f.nights_seen]
            yield row
    for r in report.resolved:
        row = [r.server, r.account, str(r.scan_type), r.path, r.virus, None, None, None, RESOLVED]
        row += [None, None, None, None]  # accepted, its reason and expiry, canary
        yield [*row, None, None] if history else row


def acceptance_cells(f: InfectedFile) -> list[Cell]:
    """accepted (yes / expired / empty), its reason and expiry, and canary (true / empty)."""
    entry = f.accepted or f.expired_acceptance
    state = "yes" if f.accepted else "expired" if f.expired_acceptance else None
    reason = None if entry is None else entry.reason
    expires = None if entry is None else entry.expires.isoformat()
    return [state, reason, expires, "true" if f.canary else None]


def infected_csv(report: Report) -> str:
    """The contract's columns, then (appended, in the order they came) `delta` after a
    comparison, the accepted/canary columns, and with a history `first_seen`, `nights_seen`."""
    history = with_history(report)
    delta = ["delta"] if report.compared or history else []
    header = [*INFECTED_COLUMNS, *delta, *ACCEPTED_COLUMNS, *(HISTORY_COLUMNS if history else [])]
    return _csv(header, infected_rows(report))


# ---------------------------------------------------------------------------------------------
# per-server summary


@dataclass(frozen=True, slots=True)
class ServerSummary:
    server: str
    targets: int
    clean: int
    infected: int
    failed: int
    skipped: int
    infected_files: int
    durations: tuple[float, ...]

    @property
    def median_duration(self) -> float | None:
        ordered = sorted(self.durations)
        if not ordered:
            return None
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def per_server(report: Report) -> list[ServerSummary]:
    """Summaries of the servers with targets, in the report's (inventory) order."""
    groups: dict[str, list[TargetResult]] = {}
    for t in report.targets:
        groups.setdefault(t.server, []).append(t)
    return [_server_summary(name, targets) for name, targets in groups.items()]


def _server_summary(server: str, targets: Sequence[TargetResult]) -> ServerSummary:
    def count(status: Status) -> int:
        return sum(1 for t in targets if t.status is status)

    return ServerSummary(
        server=server,
        targets=len(targets),
        clean=count(Status.CLEAN),
        infected=count(Status.INFECTED),
        failed=count(Status.FAILED),
        skipped=count(Status.SKIPPED),
        infected_files=len(account_files(targets)),  # once per account, as the summary
        durations=tuple(t.duration_s for t in targets if t.duration_s is not None),
    )


SUMMARY_HEADER = ("server", "targets", "clean", "infected", "failed", "skipped", "infected files")


@dataclass(frozen=True, slots=True)
class ServerOutages:
    """A server whose host went away in the run: how often, how long in all, how it ended."""

    server: str
    times: int
    seconds: float
    ending: str  # "back" | "given up" | "down at the end"


def per_server_outages(report: Report) -> list[ServerOutages]:
    """From `run.outages`, in the report's server order."""
    out = []
    for server, stretches in report.run.outages.items():
        if not stretches:
            continue
        last = stretches[-1]
        ending = "given up" if last.gave_up else "back" if last.back_at else "down at the end"
        total = round(sum(d.seconds for d in stretches), 1)
        out.append(ServerOutages(server, len(stretches), total, ending))
    return out


def outage_lines(report: Report) -> list[str]:
    """`outages: web02 down 2 times, 46.3 s in all, back`: one line per server that was down."""
    return [
        f"outage: {x.server} down {x.times} time{'s' if x.times > 1 else ''}, "
        f"{x.seconds:.1f} s in all, {x.ending}"
        for x in per_server_outages(report)
    ]


def summary_table(report: Report) -> str:
    """A plain-text table, one line per server and a total line (then a line per server whose
    host went down in the run, if any)."""
    s = report.summary
    rows = [
        [x.server, x.targets, x.clean, x.infected, x.failed, x.skipped, x.infected_files]
        for x in per_server(report)
    ]
    total = ["total", s.targets, s.clean, s.infected, s.failed, s.skipped, s.infected_files]
    cells = [list(SUMMARY_HEADER), *([str(c) for c in row] for row in [*rows, total])]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(SUMMARY_HEADER))]
    lines = [_line(row, widths) for row in cells]
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1], *outage_lines(report)])


def _line(row: Sequence[Cell], widths: Sequence[int]) -> str:
    first = str(row[0]).ljust(widths[0])
    rest = (str(c).rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))
    return "  ".join([first, *rest]).rstrip()
