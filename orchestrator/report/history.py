"""The history of every night (`--history FILE`, `settings.history`): record, annotate, prune.

`annotate` gives a report what the history knows, before the report is written:

- the per-target delta, when no `--baseline` was given: each target is compared with its own
  last earlier *scan* (a target that failed last night is compared with the night before, and
  tonight's failed targets resolve nothing), through the same `apply_baseline` as `--baseline`,
  so `summary.delta`, the `delta` column and the `resolved` list mean what they always did;
  the first night of a history has nothing to compare with and gets no delta;
- per infected file `first_seen` (the start of the first night that reported it, keyed like the
  delta: server, account, path, virus) and `nights_seen` (the nights that did, this one too);
- `history`, the trend of the last TREND_NIGHTS nights (reruns of failed targets are no night).

`record` adds the report's night (its run, every target's status, every infected file with its
delta, the resolved files, per-server scan time and bytes); a run id already recorded (a
`--resume`d run, a merge done again) replaces its earlier entry. The schema: history_schema.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.errors import ConfigError
from orchestrator.model import InfectedFile, Status, TargetResult
from orchestrator.report import history_query as q
from orchestrator.report.delta import COMPLETED, apply_baseline
from orchestrator.report.encode import format_optional_time, format_time
from orchestrator.report.history_schema import FIELD, connect
from orchestrator.report.model import Report, account_files, build_report, utc_second
from orchestrator.report.trend import TREND_NIGHTS, NightPoint, ServerPoint, Trend
from orchestrator.report.writers import writable_dir


@contextmanager
def _opened(path: Path, *, create: bool = False) -> Iterator[sqlite3.Connection]:
    with closing(connect(path, create=create)) as db:
        yield db


def history_path(given: Path | None, setting: Path | None, inventory: str) -> Path | None:
    """`--history FILE` (from the working directory), else `settings.history` (a relative path
    starts at the inventory's folder, like `token_file` and `ca_file`)."""
    if given is not None or setting is None:
        return given
    setting = setting.expanduser()
    return setting if setting.is_absolute() else Path(inventory).absolute().parent / setting


def prepare_history(path: Path) -> Path:
    """Check (and create) the history before a run sends its first request: its folder must be
    writable (SQLite writes a -wal file beside it) and the file a history this version reads."""
    writable_dir(path.parent, field=FIELD)
    with _opened(path, create=True):
        pass
    return path


# ---------------------------------------------------------------------------------------------
# annotate


def annotate(report: Report, path: Path) -> Report:
    """`report` with the history's delta (unless it was already compared), first seen dates and
    trend; its exit code is kept as it was (merge may have raised it for missing shards)."""
    run = report.run
    start = format_time(run.started_at)
    with _opened(path) as db:
        if not report.compared and q.has_earlier(db, run.id, start):
            last = q.last_scans(db, [t.target for t in report.targets], run.id, start)
            compared = apply_baseline(report, build_report(run, last))
            summary = replace(compared.summary, exit_code=report.summary.exit_code)
            report = replace(compared, summary=summary)
        seen = q.first_seen(db, account_files(report.targets), run.id, start)
        targets = tuple(_seen(t, seen, start) for t in report.targets)
        trend = _trend(db, replace(report, targets=targets), start)
    return replace(report, targets=targets, history=trend)


def _seen(
    t: TargetResult, seen: dict[tuple[str, str, str, str], tuple[str, int]], tonight: str
) -> TargetResult:
    if not t.infected_files:
        return t

    def mark(f: InfectedFile) -> InfectedFile:
        first, nights = seen.get((t.server, t.account, f.path, f.virus), (tonight, 0))
        return replace(f, first_seen=q.parse_time(min(first, tonight)), nights_seen=nights + 1)

    return replace(t, infected_files=tuple(mark(f) for f in t.infected_files))


def _trend(db: sqlite3.Connection, report: Report, start: str) -> Trend:
    earlier = q.earlier_nights(db, report.run.id, start, TREND_NIGHTS - 1)
    stats = server_stats(report)
    points = q.server_points(db, [seq for seq, _ in earlier], list(stats))
    started = utc_second(report.run.started_at)
    servers = {
        name: (*points.get(name, ()), ServerPoint(started, s.scan_s, s.scanned_bytes))
        for name, s in stats.items()
    }
    return Trend(nights=(*(n for _, n in earlier), this_night(report)), servers=servers)


def this_night(report: Report) -> NightPoint:
    s = report.summary
    return NightPoint(
        run_id=report.run.id,
        started_at=utc_second(report.run.started_at),
        exit_code=s.exit_code,
        targets=s.targets,
        infected_files=s.infected_files,
        new=None if s.delta is None else s.delta.new,
        failed=s.failed,
        wall_s=_wall(report.run.started_at, report.run.finished_at),
    )


def _wall(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 1)


@dataclass(frozen=True, slots=True)
class ServerStats:
    targets: int
    failed: int
    infected_files: int
    wall_s: float | None  # first target's start to last target's end
    scan_s: float  # summed durations of its completed scans
    scanned_bytes: int  # bytes those scans read


def server_stats(report: Report) -> dict[str, ServerStats]:
    """Per server of the report, in report order."""
    groups: dict[str, list[TargetResult]] = {}
    for t in report.targets:
        groups.setdefault(t.server, []).append(t)
    return {name: _stats(targets) for name, targets in groups.items()}


def _stats(targets: Sequence[TargetResult]) -> ServerStats:
    starts = [t.started_at for t in targets if t.started_at is not None]
    ends = [t.finished_at for t in targets if t.finished_at is not None]
    done = [t for t in targets if t.status in COMPLETED and t.duration_s is not None]
    return ServerStats(
        targets=len(targets),
        failed=sum(1 for t in targets if t.status is Status.FAILED),
        infected_files=len(account_files(targets)),
        wall_s=_wall(min(starts), max(ends)) if starts and ends else None,
        scan_s=round(sum(t.duration_s or 0.0 for t in done), 1),
        scanned_bytes=sum(t.scan.scanned_file_size for t in done if t.scan is not None),
    )


# ---------------------------------------------------------------------------------------------
# record and prune


def record(report: Report, path: Path, recorded_at: datetime | None = None) -> None:
    """Add the report's night to the history (replacing an entry of the same run id)."""
    with _opened(path, create=True) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            _record(db, report, recorded_at or datetime.now(UTC))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _record(db: sqlite3.Connection, report: Report, recorded_at: datetime) -> None:
    run, s = report.run, report.summary
    db.execute("DELETE FROM runs WHERE run_id = ?", (run.id,))
    delta = s.delta
    seq = db.execute(
        """INSERT INTO runs (run_id, started_at, finished_at, recorded_at, inventory, fleet_id,
        shard, rerun_of, dry_run, exit_code, targets, clean, infected, failed, skipped,
        infected_files, compared, new_files, resolved_files, wall_s)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            run.id,
            format_time(run.started_at),
            format_optional_time(run.finished_at),
            format_time(recorded_at),
            run.inventory,
            run.fleet_id,
            run.shard,
            run.rerun_of,
            int(run.dry_run),
            s.exit_code,
            s.targets,
            s.clean,
            s.infected,
            s.failed,
            s.skipped,
            s.infected_files,
            int(delta is not None),
            None if delta is None else delta.new,
            None if delta is None else delta.resolved,
            _wall(run.started_at, run.finished_at),
        ),
    ).lastrowid
    ids = _target_ids(db, report)
    db.executemany(
        """INSERT OR REPLACE INTO target_runs (run, target, status, error_kind, started_at,
        finished_at, duration_s, scanned_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            (
                seq,
                ids[(t.server, t.account, str(t.scan_type))],
                str(t.status),
                None if t.error is None else str(t.error.kind),
                format_optional_time(t.started_at),
                format_optional_time(t.finished_at),
                t.duration_s,
                None if t.scan is None else t.scan.scanned_file_size,
            )
            for t in report.targets
        ],
    )
    db.executemany(
        """INSERT OR IGNORE INTO findings (run, target, path, virus, action, outcome, delta)
        VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [
            (
                seq,
                ids[(t.server, t.account, str(t.scan_type))],
                f.path,
                f.virus,
                str(f.action),
                str(f.outcome),
                f.delta,
            )
            for t in report.targets
            for f in t.infected_files
        ],
    )
    db.executemany(
        "INSERT OR IGNORE INTO resolved (run, target, path, virus) VALUES (?, ?, ?, ?)",
        [
            (seq, _target_id(db, r.server, r.account, str(r.scan_type)), r.path, r.virus)
            for r in report.resolved
        ],
    )
    db.executemany(
        """INSERT INTO server_runs (run, server, targets, failed, infected_files, wall_s, scan_s,
        scanned_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            (seq, name, x.targets, x.failed, x.infected_files, x.wall_s, x.scan_s, x.scanned_bytes)
            for name, x in server_stats(report).items()
        ],
    )


def _target_ids(db: sqlite3.Connection, report: Report) -> dict[tuple[str, str, str], int]:
    keys = list(dict.fromkeys((t.server, t.account, str(t.scan_type)) for t in report.targets))
    return {key: _target_id(db, *key) for key in keys}


def _target_id(db: sqlite3.Connection, server: str, account: str, scan_type: str) -> int:
    db.execute(
        "INSERT OR IGNORE INTO targets (server, account, scan_type) VALUES (?, ?, ?)",
        (server, account, scan_type),
    )
    row = db.execute(
        "SELECT id FROM targets WHERE server = ? AND account = ? AND scan_type = ?",
        (server, account, scan_type),
    ).fetchone()
    return int(row[0])


def prune(path: Path, keep: int) -> tuple[int, int]:
    """Keep the newest `keep` nights; return (removed, kept). The space is given back."""
    if keep < 1:
        raise ConfigError("must be at least 1 (the newest nights kept)", field="--keep-nights")
    with _opened(path) as db:
        db.execute("BEGIN IMMEDIATE")
        removed = db.execute(
            """DELETE FROM runs WHERE seq NOT IN (
                SELECT seq FROM runs ORDER BY started_at DESC, seq DESC LIMIT ?)""",
            (keep,),
        ).rowcount
        db.execute(
            """DELETE FROM targets WHERE id NOT IN (SELECT target FROM target_runs)
            AND id NOT IN (SELECT target FROM findings)
            AND id NOT IN (SELECT target FROM resolved)"""
        )
        (kept,) = db.execute("SELECT count(*) FROM runs").fetchone()
        db.execute("COMMIT")
        db.executescript("PRAGMA incremental_vacuum;")  # all of it: execute() runs one step
    return int(removed), int(kept)


def nights(
    path: Path, count: int, servers: Sequence[str] = (), account: str | None = None
) -> list[q.NightRow]:
    """`clamfleet history`: the newest `count` nights (of those servers / that account)."""
    with _opened(path) as db:
        return q.night_rows(db, count, servers, account)
