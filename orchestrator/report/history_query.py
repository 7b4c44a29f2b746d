"""Reading the history: what the report needs of earlier nights, and `clamfleet history`'s rows.

"Earlier" is relative to a night being annotated: every recorded run but itself that started no
later than it did (a resumed run, recorded under its own id, is never its own past).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from orchestrator.model import InfectedFile, ScanType, Status, Target, TargetResult
from orchestrator.report.model import FileKey
from orchestrator.report.trend import NightPoint, ServerPoint

SCANNED = (str(Status.CLEAN), str(Status.INFECTED))


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _fill(
    db: sqlite3.Connection, table: str, columns: str, rows: Iterable[tuple[str, ...]]
) -> None:
    """A temporary table of this night's keys, to join the history against."""
    db.execute(f"DROP TABLE IF EXISTS temp.{table}")
    db.execute(f"CREATE TEMP TABLE {table} ({columns})")
    marks = ", ".join("?" for _ in columns.split(","))
    db.executemany(f"INSERT INTO temp.{table} VALUES ({marks})", rows)  # noqa: S608 (our names)


def has_earlier(db: sqlite3.Connection, run_id: str, started_at: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM runs WHERE run_id != ? AND started_at <= ? LIMIT 1", (run_id, started_at)
    ).fetchone()
    return row is not None


def last_scans(
    db: sqlite3.Connection, targets: Sequence[Target], run_id: str, started_at: str
) -> list[TargetResult]:
    """Each target's last earlier *scan* (clean or infected: a failed night does not count),
    with the files it reported; targets never scanned before are left out."""
    _fill(
        db,
        "cur_targets",
        "server, account, scan_type",
        ((t.server, t.account, str(t.scan_type)) for t in targets),
    )
    rows = db.execute(
        """
        WITH last AS (
            SELECT target, run, status FROM (
                SELECT tr.target, tr.run, tr.status, ROW_NUMBER() OVER (
                    PARTITION BY tr.target ORDER BY r.started_at DESC, r.seq DESC) AS n
                FROM temp.cur_targets c
                JOIN targets t
                    ON t.server = c.server AND t.account = c.account AND t.scan_type = c.scan_type
                JOIN target_runs tr ON tr.target = t.id
                JOIN runs r ON r.seq = tr.run
                WHERE tr.status IN (?, ?) AND r.run_id != ? AND r.started_at <= ?
            ) WHERE n = 1
        )
        SELECT t.server, t.account, t.scan_type, last.status, f.path, f.virus
        FROM last JOIN targets t ON t.id = last.target
        LEFT JOIN findings f ON f.run = last.run AND f.target = last.target
        ORDER BY t.id, f.path, f.virus
        """,
        (*SCANNED, run_id, started_at),
    ).fetchall()
    files: dict[Target, list[InfectedFile]] = {}
    status: dict[Target, Status] = {}
    for server, account, scan_type, state, path, virus in rows:
        target = Target(server, account, ScanType(scan_type))
        status[target] = Status(state)
        found = files.setdefault(target, [])
        if path is not None:
            found.append(InfectedFile(path, virus))
    return [TargetResult(t, status[t], infected_files=tuple(f)) for t, f in files.items()]


def first_seen(
    db: sqlite3.Connection, keys: Iterable[FileKey], run_id: str, started_at: str
) -> dict[FileKey, tuple[str, int]]:
    """Per file (server, account, path, virus) reported on earlier nights: the start of the
    first such night and how many there were."""
    _fill(db, "cur_files", "server, account, path, virus", keys)
    rows = db.execute(
        """
        SELECT c.server, c.account, c.path, c.virus, MIN(r.started_at), COUNT(DISTINCT r.seq)
        FROM temp.cur_files c
        JOIN targets t ON t.server = c.server AND t.account = c.account
        JOIN findings f ON f.target = t.id AND f.path = c.path AND f.virus = c.virus
        JOIN runs r ON r.seq = f.run
        WHERE r.run_id != ? AND r.started_at <= ?
        GROUP BY c.server, c.account, c.path, c.virus
        """,
        (run_id, started_at),
    ).fetchall()
    return {(s, a, p, v): (first, int(n)) for s, a, p, v, first, n in rows}


def earlier_nights(
    db: sqlite3.Connection, run_id: str, started_at: str, limit: int
) -> list[tuple[int, NightPoint]]:
    """The last `limit` earlier nights (reruns of failed targets are not nights), oldest first."""
    rows = db.execute(
        """
        SELECT seq, run_id, started_at, exit_code, targets, infected_files, new_files, failed,
               wall_s
        FROM runs WHERE run_id != ? AND started_at <= ? AND rerun_of IS NULL
        ORDER BY started_at DESC, seq DESC LIMIT ?
        """,
        (run_id, started_at, limit),
    ).fetchall()
    points = [
        (seq, NightPoint(rid, parse_time(start), code, targets, infected, new, failed, wall))
        for seq, rid, start, code, targets, infected, new, failed, wall in rows
    ]
    return points[::-1]


def server_points(
    db: sqlite3.Connection, runs: Sequence[int], servers: Sequence[str]
) -> dict[str, list[ServerPoint]]:
    """Per server, its scan time and bytes on each of these runs (oldest first)."""
    if not runs or not servers:
        return {}
    run_marks = ", ".join("?" for _ in runs)
    server_marks = ", ".join("?" for _ in servers)
    rows = db.execute(
        f"""
        SELECT s.server, r.started_at, s.scan_s, s.scanned_bytes
        FROM server_runs s JOIN runs r ON r.seq = s.run
        WHERE s.run IN ({run_marks}) AND s.server IN ({server_marks})
        ORDER BY r.started_at, r.seq
        """,  # noqa: S608 (only "?" placeholders are formatted in)
        (*runs, *servers),
    ).fetchall()
    out: dict[str, list[ServerPoint]] = {}
    for server, start, scan_s, size in rows:
        out.setdefault(server, []).append(ServerPoint(parse_time(start), scan_s, size))
    return out


# ---------------------------------------------------------------------------------------------
# `clamfleet history`


@dataclass(frozen=True, slots=True)
class FileRow:
    server: str
    scan_type: str
    path: str
    virus: str
    delta: str | None
    first_seen: str


@dataclass(frozen=True, slots=True)
class NightRow:
    """One night as `clamfleet history` lists it (counts limited to the filter's targets)."""

    run_id: str
    started_at: str
    finished_at: str | None
    shard: str
    rerun_of: str | None
    exit_code: int
    targets: int
    infected_files: int
    new: int | None
    resolved: int | None
    failed: int
    wall_s: float | None
    files: tuple[FileRow, ...] | None = None


def _where(servers: Sequence[str], account: str | None) -> tuple[str, list[str]]:
    """The filter on `targets t` as SQL and its parameters."""
    clauses, params = ["1"], []
    if servers:
        clauses.append("(" + " OR ".join("t.server GLOB ?" for _ in servers) + ")")
        params += list(servers)
    if account is not None:
        clauses.append("t.account = ?")
        params.append(account)
    return " AND ".join(clauses), params


def night_rows(
    db: sqlite3.Connection, nights: int, servers: Sequence[str] = (), account: str | None = None
) -> list[NightRow]:
    """The newest `nights` nights that scanned a target of the filter, newest first."""
    where, params = _where(servers, account)
    filtered = bool(servers) or account is not None
    runs = db.execute(
        f"""
        SELECT seq, run_id, started_at, finished_at, shard, rerun_of, exit_code, compared, wall_s
        FROM runs r WHERE EXISTS (
            SELECT 1 FROM target_runs tr JOIN targets t ON t.id = tr.target
            WHERE tr.run = r.seq AND {where})
        ORDER BY started_at DESC, seq DESC LIMIT ?
        """,  # noqa: S608 (the filter is built of fixed SQL and "?" placeholders)
        (*params, nights),
    ).fetchall()
    rows = []
    for seq, run_id, start, end, shard, rerun_of, code, compared, wall in runs:
        counts = _counts(db, seq, where, params)
        if filtered:
            wall = _servers_wall(db, seq, where, params)
        files = _files(db, seq, start, where, params) if account is not None else None
        rows.append(
            NightRow(
                run_id=run_id,
                started_at=start,
                finished_at=end,
                shard=shard,
                rerun_of=rerun_of,
                exit_code=code,
                targets=counts[0],
                infected_files=counts[1],
                new=counts[2] if compared else None,
                resolved=counts[3] if compared else None,
                failed=counts[4],
                wall_s=wall,
                files=files,
            )
        )
    return rows


def _counts(
    db: sqlite3.Connection, run: int, where: str, params: list[str]
) -> tuple[int, int, int, int, int]:
    """targets, infected files (once per account), new files, resolved files, failed targets."""
    targets, failed = db.execute(
        f"""SELECT count(*), coalesce(sum(tr.status = 'failed'), 0)
        FROM target_runs tr JOIN targets t ON t.id = tr.target WHERE tr.run = ? AND {where}""",  # noqa: S608
        (run, *params),
    ).fetchone()
    infected, new = db.execute(
        f"""SELECT count(*), coalesce(sum(new), 0) FROM (
            SELECT t.server, t.account, f.path, f.virus, max(f.delta = 'new') AS new
            FROM findings f JOIN targets t ON t.id = f.target WHERE f.run = ? AND {where}
            GROUP BY t.server, t.account, f.path, f.virus)""",  # noqa: S608
        (run, *params),
    ).fetchone()
    (resolved,) = db.execute(
        f"""SELECT count(*) FROM resolved x JOIN targets t ON t.id = x.target
        WHERE x.run = ? AND {where}""",  # noqa: S608
        (run, *params),
    ).fetchone()
    return int(targets), int(infected), int(new), int(resolved), int(failed)


def _servers_wall(db: sqlite3.Connection, run: int, where: str, params: list[str]) -> float | None:
    """The longest wall time among the servers the filter's targets are on."""
    (wall,) = db.execute(
        f"""SELECT max(s.wall_s) FROM server_runs s WHERE s.run = ? AND s.server IN (
            SELECT t.server FROM target_runs tr JOIN targets t ON t.id = tr.target
            WHERE tr.run = ? AND {where})""",  # noqa: S608
        (run, run, *params),
    ).fetchone()
    return None if wall is None else float(wall)


def _files(
    db: sqlite3.Connection, run: int, started_at: str, where: str, params: list[str]
) -> tuple[FileRow, ...]:
    rows = db.execute(
        f"""
        SELECT t.server, t.scan_type, f.path, f.virus, f.delta, (
            SELECT min(r2.started_at) FROM findings f2
            JOIN targets t2 ON t2.id = f2.target JOIN runs r2 ON r2.seq = f2.run
            WHERE t2.server = t.server AND t2.account = t.account AND f2.path = f.path
              AND f2.virus = f.virus AND r2.started_at <= ?)
        FROM findings f JOIN targets t ON t.id = f.target
        WHERE f.run = ? AND {where}
        ORDER BY t.server, f.path, t.scan_type
        """,  # noqa: S608
        (started_at, run, *params),
    ).fetchall()
    return tuple(FileRow(*row) for row in rows)
