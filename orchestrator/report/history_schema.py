"""The history database's schema: its tables, its version, and how a file is opened.

A history is one SQLite file (`run --history FILE`, `merge --history FILE`, `settings.history`):
one row in `runs` per recorded night (a run, or a merged sharded night), and below it every
target's status and every infected file it reported.

    runs         seq (insertion order), run_id (unique), started_at, finished_at, recorded_at,
                 inventory, fleet_id, shard, rerun_of, dry_run, exit_code, targets, clean,
                 infected, failed, skipped, infected_files, compared, new_files,
                 resolved_files, wall_s
    targets      id, server, account, scan_type                    (one row per target ever seen)
    target_runs  run -> runs.seq, target -> targets.id, status, error_kind, started_at,
                 finished_at, duration_s, scanned_bytes
    findings     run, target, path, virus, action, outcome, delta (new | recurring | null)
    resolved     run, target, path, virus                          (files gone since last scan)
    server_runs  run, server, targets, failed, infected_files, wall_s, scan_s, scanned_bytes

Times are UTC text (`2026-11-28T02:00:00Z`), which sorts as time does. Nights are ordered by
(started_at, seq). Deleting a run deletes its rows below (foreign keys, ON DELETE CASCADE).

The schema's version is SQLite's `user_version` (SCHEMA_VERSION), and `application_id` marks
the file as a clamfleet history, so another SQLite file (the journal, say) is refused rather
than written into. An older version is migrated in place, one step per version (MIGRATIONS),
each step in one transaction; a newer version (written by a newer clamfleet) is refused with an
error that says so: this clamfleet would misread it.

Opened in WAL mode with `locking_mode=EXCLUSIVE`: one connection at a time holds the file
(others wait up to BUSY_SECONDS, then fail with an error naming the file), so one writer at a
time is guaranteed, and no shared-memory index is used, so the file may live on a volume that
different machines mount one after another (a Kubernetes PVC, a CI cache). clamfleet holds it
only for the moments it reads or records, never while it scans.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from orchestrator.errors import ConfigError

SCHEMA_VERSION = 1
#: "clfh": SQLite's application_id of a clamfleet history.
APPLICATION_ID = 0x636C6668
BUSY_SECONDS = 60.0

DDL = """
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    recorded_at TEXT NOT NULL,
    inventory TEXT NOT NULL,
    fleet_id TEXT NOT NULL,
    shard TEXT NOT NULL,
    rerun_of TEXT,
    dry_run INTEGER NOT NULL,
    exit_code INTEGER NOT NULL,
    targets INTEGER NOT NULL,
    clean INTEGER NOT NULL,
    infected INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    infected_files INTEGER NOT NULL,
    compared INTEGER NOT NULL,
    new_files INTEGER,
    resolved_files INTEGER,
    wall_s REAL
);
CREATE INDEX runs_order ON runs (started_at, seq);
CREATE TABLE targets (
    id INTEGER PRIMARY KEY,
    server TEXT NOT NULL,
    account TEXT NOT NULL,
    scan_type TEXT NOT NULL,
    UNIQUE (server, account, scan_type)
);
CREATE TABLE target_runs (
    run INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    target INTEGER NOT NULL REFERENCES targets (id),
    status TEXT NOT NULL,
    error_kind TEXT,
    started_at TEXT,
    finished_at TEXT,
    duration_s REAL,
    scanned_bytes INTEGER,
    PRIMARY KEY (target, run)
) WITHOUT ROWID;
CREATE INDEX target_runs_run ON target_runs (run);
CREATE TABLE findings (
    run INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    target INTEGER NOT NULL REFERENCES targets (id),
    path TEXT NOT NULL,
    virus TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    delta TEXT,
    PRIMARY KEY (run, target, path, virus)
) WITHOUT ROWID;
CREATE INDEX findings_file ON findings (target, path, virus);
CREATE TABLE resolved (
    run INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    target INTEGER NOT NULL REFERENCES targets (id),
    path TEXT NOT NULL,
    virus TEXT NOT NULL,
    PRIMARY KEY (run, target, path, virus)
) WITHOUT ROWID;
CREATE TABLE server_runs (
    run INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    server TEXT NOT NULL,
    targets INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    infected_files INTEGER NOT NULL,
    wall_s REAL,
    scan_s REAL NOT NULL,
    scanned_bytes INTEGER NOT NULL,
    PRIMARY KEY (run, server)
) WITHOUT ROWID;
"""

#: version N -> the SQL that turns a version-N history into version N+1 (none yet: version 1
#: is the first). A step runs in one transaction with the new user_version, so a history is
#: never left half-migrated.
MIGRATIONS: dict[int, str] = {}

FIELD = "--history"


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """Open (with `create`, make) the history at `path`, migrated to SCHEMA_VERSION.

    Every refusal is a ConfigError naming the file: not a history, a newer version, in use
    past BUSY_SECONDS, unreadable.
    """
    if not create and not path.exists():
        raise ConfigError(f"{path}: no history there (the file does not exist)", field=FIELD)
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: not a file", field=FIELD)
    try:
        db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: cannot open the history ({exc})", field=FIELD) from None
    try:
        _prepare(db, path)
    except sqlite3.OperationalError as exc:
        db.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise ConfigError(
                f"{path}: the history is in use by another clamfleet (waited {BUSY_SECONDS:g} s)",
                field=FIELD,
            ) from None
        raise ConfigError(f"{path}: cannot use the history ({exc})", field=FIELD) from None
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ConfigError(f"{path}: not a clamfleet history ({exc})", field=FIELD) from None
    except BaseException:
        db.close()
        raise
    return db


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    # Before the first access: no shared-memory WAL index, and one connection at a time.
    db.execute("PRAGMA locking_mode = EXCLUSIVE")
    db.execute("PRAGMA foreign_keys = ON")
    app = int(db.execute("PRAGMA application_id").fetchone()[0])
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app != APPLICATION_ID and tables:
        raise ConfigError(
            f"{path}: not a clamfleet history (another SQLite database); give --history a"
            " file of its own",
            field=FIELD,
        )
    if app == APPLICATION_ID and version > SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: written by a newer clamfleet (history schema {version}; this clamfleet"
            f" reads up to {SCHEMA_VERSION}): upgrade clamfleet to use it",
            field=FIELD,
        )
    if not tables:
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # pruning gives the space back
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise ConfigError(f"{path}: SQLite refused WAL mode ({mode})", field=FIELD)
    db.execute("PRAGMA synchronous = NORMAL")
    if not tables:
        _apply(db, DDL, SCHEMA_VERSION, application_id=True)
        return
    for step in range(version, SCHEMA_VERSION):
        _apply(db, MIGRATIONS[step], step + 1)


def _apply(
    db: sqlite3.Connection, script: str, version: int, *, application_id: bool = False
) -> None:
    """Run `script` and set the version, in one transaction."""
    marks = f"PRAGMA application_id = {APPLICATION_ID};" if application_id else ""
    db.executescript(f"BEGIN IMMEDIATE;{script};{marks}PRAGMA user_version = {version};COMMIT;")
