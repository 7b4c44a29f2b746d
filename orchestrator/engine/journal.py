"""Durable per-target progress in SQLite (standard library), for `--resume` after a crash.

Every workflow transition is written (and committed) before the request it leads to, so after
a kill -9 the journal says, for each target, either its final result or the last state whose
request may or may not have gone out; `workflow.resume` knows how to go on from there without
resending a non-idempotent call blindly. disinfect_files gets one more write, right before its
POST leaves (after the session login a WHM token needs): a state without it was never sent
(the resumed run sends it, once), one with it may have been (followed, never resent).

WAL with synchronous=NORMAL: a committed transaction survives the process dying at any moment
(only an OS crash may lose the last few). One run per journal: an exclusive `flock` on
`<journal>.lock`, which the kernel releases when the process dies, however it dies.

`--resume` goes on with an interrupted run, and nothing else: a missing journal, one whose run
finished, one of another run (inventory, shard, policy...) or one written by a clamfleet with
another journal format is refused (exit 3), never silently replaced by a fresh run, which with
a new `--policy` would act on files nobody reviewed. The format is SQLite's `user_version`.

Every write that must not be half-done is one transaction: a new run's tables, format and
meta (its identity, id and start) go in together, so a disk that fills up midway leaves either
no run (`--resume`: "holds no run") or the whole of it, never an identity missing a key that
would then read as another run's. A write that fails says why in the system's words
("cannot write the journal: No space left on device"): ConfigError while opening (nothing
was scanned yet), JournalError during the run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from orchestrator import workflow
from orchestrator.errors import ConfigError, JournalError
from orchestrator.model import ScanType, Target, TargetResult
from orchestrator.report.decode import target_from_dict
from orchestrator.report.encode import target_to_dict

#: The journal's format: its tables and the JSON in them (`workflow.to_dict` for states, the
#: report's own per-target object for results). Bump it whenever either changes shape; a resume
#: across formats is refused, never half-read. 2: states as nested records (StartAttempts,
#: ScanProgress, Disinfection), results as report.json's target objects. 3: a disinfection
#: records whether its POST went out (`Disinfection.sending`, `.interrupted`): a format-2
#: DISINFECTING state cannot say, and read as format 3 it would be sent again.
FORMAT = 3
#: Journals written before the format was recorded (user_version 0) are format 1.
_UNRECORDED_FORMAT = 1
_DROP = "DROP TABLE IF EXISTS meta; DROP TABLE IF EXISTS servers; DROP TABLE IF EXISTS targets;"
#: Phases a target is in before any answer of its server was taken (or after one failed it).
_UNANSWERED_PHASES = frozenset(
    {workflow.Phase.SETTLING, workflow.Phase.PRECHECK, workflow.Phase.FAILED}
)
_ANSWERED = "answered "  # meta key prefix: a host (host:port) that answered in the run
_CLEAR = "DELETE FROM meta; DELETE FROM servers; DELETE FROM targets;"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS servers (server TEXT PRIMARY KEY, targets TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS targets (
    server TEXT NOT NULL, account TEXT NOT NULL, scan_type TEXT NOT NULL,
    state TEXT, result TEXT,
    PRIMARY KEY (server, account, scan_type)
);
"""


#: SQLite's primary result codes (the low byte of an extended code) that concern us.
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT = 3, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 13, 14, 26
#: How much a probe writes to find out what SQLite's "disk I/O error" was (a few pages).
_PROBE_BYTES = 64 * 1024


def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def not_a_journal(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused the file's content (not a database, or a damaged one)."""
    return _code(exc) in (_SQLITE_NOTADB, _SQLITE_CORRUPT)


def write_failure(path: Path, exc: sqlite3.Error) -> str:
    """Why the journal at `path` could not be written, as the system would say it.

    SQLite says "database or disk is full" for ENOSPC, and only "disk I/O error" or "attempt
    to write a readonly database" when the write to its WAL or the file itself failed: a probe
    write beside the journal then finds the system's own reason (ENOSPC, EROFS, EACCES).
    """
    code = _code(exc)
    if code == _SQLITE_FULL:
        return f"{path}: cannot write the journal: {os.strerror(errno.ENOSPC)}"
    if code in (_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CANTOPEN, _SQLITE_PERM):
        if (reason := _probe(path.parent)) is not None:
            return f"{path}: cannot write the journal: {reason}"
        if code == _SQLITE_READONLY:
            return f"{path}: cannot write the journal: the file is read-only"
    return f"{path}: cannot write the journal: {exc}"


def _probe(directory: Path) -> str | None:
    """The OS's reason a small file cannot be written in `directory` (None: it can be)."""
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".clamfleet-journal-probe-")
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    try:
        os.write(fd, b"\0" * _PROBE_BYTES)
        os.fsync(fd)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)
    return None


def _format_of(db: sqlite3.Connection) -> int:
    """The journal format of `db`. Format 1 did not record itself (user_version 0); an empty
    database (no journal tables yet) holds nothing to misread and counts as this format."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version:
        return version
    tables = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
    return _UNRECORDED_FORMAT if tables.fetchone() else FORMAT


class Journal:
    """The journal of one run. `open()` it, hand it to the runner, `close()` it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self, identity: dict[str, str], *, resume: bool) -> dict[str, str]:
        """Lock and open; return the run's meta (its id and start time on a resume).

        `identity` (inventory digest, shard, policy, dry-run...) must match to resume: going on
        with another inventory's journal would mix two runs in one report. Without `resume`
        the journal is emptied (and rebuilt in this version's format) for a new run.
        """
        if resume and not self.path.exists():
            raise ConfigError(
                f"{self.path}: no journal to resume (the file does not exist); "
                "run without --resume to start a new run",
                field="--resume",
            )
        self._lock()
        try:
            return self._open(identity, resume=resume)
        except ConfigError:
            self.close()  # a refused journal is left as it was, and unlocked
            raise

    def _open(self, identity: dict[str, str], *, resume: bool) -> dict[str, str]:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open journal: {exc}", field="--journal") from None
        self._db = db
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = _format_of(db)
            if resume:
                return self._resumable(identity, version)
            # One transaction: the old run is gone and the new format recorded, or nothing
            # changed. Another format's tables are dropped (its run is discarded anyway).
            drop = _DROP if version != FORMAT else ""
            script = f"{drop}{_SCHEMA}{_CLEAR}PRAGMA user_version = {FORMAT};"
            with self._transaction():
                # statement by statement: executescript() would COMMIT the transaction first
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
        except (sqlite3.Error, JournalError) as exc:
            if isinstance(exc, sqlite3.Error) and not_a_journal(exc):
                message = f"{self.path}: not a clamfleet journal ({exc})"
            else:
                message = str(exc) if isinstance(exc, JournalError) else self._failed(exc)
            raise ConfigError(message, field="--journal") from None
        return {}

    def _resumable(self, identity: dict[str, str], version: int) -> dict[str, str]:
        """The meta of the interrupted run this journal holds; ConfigError when there is none."""
        db = self._conn
        if version != FORMAT:
            raise ConfigError(
                f"{self.path}: written by a clamfleet with journal format {version}, this one "
                f"reads format {FORMAT}; finish that run with the version that started it, or "
                "run without --resume",
                field="--resume",
            )
        db.executescript(_SCHEMA)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if "run_id" not in meta:  # empty, or a start that never completed: nothing ran
            raise ConfigError(
                f"{self.path}: holds no run to resume; run without --resume to start a new run",
                field="--resume",
            )
        if meta.get("finished") == "1":
            run = meta.get("run_id", "?")
            raise ConfigError(
                f"{self.path}: its run {run} (started {meta.get('started_at', '?')}) already "
                "finished: nothing to resume; run without --resume to start a new run",
                field="--resume",
            )
        mismatch = [k for k, v in identity.items() if meta.get(k) != v]
        if mismatch:
            raise ConfigError(
                f"{self.path}: journal belongs to another run ({', '.join(mismatch)} differ); "
                "remove it or run without --resume",
                field="--journal",
            )
        if (bad := self._unreadable()) is not None:
            raise ConfigError(
                f"{self.path}: the entry for {bad} cannot be read by this clamfleet version; "
                "run without --resume",
                field="--resume",
            )
        return meta

    def _unreadable(self) -> str | None:
        """The first saved state or result this version cannot decode (`server/account/type`).

        Checked before the run starts: a row that failed to decode mid-run would end the run
        with an internal error, after other targets had already been resumed.
        """
        rows = self._conn.execute("SELECT server, account, scan_type, state, result FROM targets")
        for server, account, scan_type, state, result in rows:
            try:
                if state:
                    workflow.from_dict(json.loads(state))
                if result:
                    _result_from_json(result)
            except (ConfigError, KeyError, TypeError, ValueError, AttributeError):
                return f"{server}/{account}/{scan_type}"
        return None

    def start(self, meta: dict[str, str]) -> None:
        """Record a new run: its identity, id and start, all in one write. Before the first
        request: a failure is a ConfigError (exit 3, nothing was scanned)."""
        try:
            self._put_meta({**meta, "finished": "0"})
        except JournalError as exc:
            raise ConfigError(str(exc), field="--journal") from None

    def finish(self) -> None:
        """The run ended by itself (not interrupted): a later --resume starts afresh."""
        self._put_meta({"finished": "1"})

    def _failed(self, exc: sqlite3.Error) -> str:
        return write_failure(self.path, exc)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN ... COMMIT, rolled back on any failure; a failed write is a JournalError."""
        db = self._conn
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if not_a_journal(exc):
                raise
            raise JournalError(self._failed(exc)) from None

    def _write(self, sql: str, params: tuple[str, ...]) -> None:
        """One statement (atomic by itself); a failed write is a JournalError."""
        try:
            self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise JournalError(self._failed(exc)) from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _lock(self) -> None:
        lock_path = Path(f"{self.path}.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"{lock_path}: cannot write the journal's lock file: {exc.strerror}",
                field="--journal",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                f"{self.path} is in use by another clamfleet run", field="--journal"
            ) from None
        self._lock_fd = fd

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("journal is not open")
        return self._db

    def _put_meta(self, values: dict[str, str]) -> None:
        # One transaction: autocommit would write key by key, and a disk filling up between
        # two keys left an identity without `dry_run`, which --resume read as another run's.
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

    # -- the runner's side (runner.Journal protocol) -------------------------------------------

    def server_targets(self, server: str) -> tuple[Target, ...] | None:
        row = self._conn.execute(
            "SELECT targets FROM servers WHERE server = ?", (server,)
        ).fetchone()
        if row is None:
            return None
        return tuple(Target(s, a, ScanType(t)) for s, a, t in json.loads(row[0]))

    def save_server_targets(self, server: str, targets: tuple[Target, ...]) -> None:
        encoded = json.dumps([[t.server, t.account, str(t.scan_type)] for t in targets])
        self._write(
            "INSERT INTO servers (server, targets) VALUES (?, ?) "
            "ON CONFLICT(server) DO UPDATE SET targets = excluded.targets",
            (server, encoded),
        )

    def answered_before(self, targets: tuple[Target, ...], host: str) -> bool:
        """Whether the interrupted run had answers from this server: its host's first answer
        noted (any entry's, even a check of a stale status only), a target past its first
        status read, or one finished with a scan."""
        row = self._conn.execute(
            "SELECT value FROM meta WHERE key = ?", (f"{_ANSWERED}{host}",)
        ).fetchone()
        if row is not None:
            return True
        for target in targets:
            state = self.state(target)
            if state is not None and state.phase not in _UNANSWERED_PHASES:
                return True
            done = self.result(target)
            if done is not None and done.scan is not None:
                return True
        return False

    def save_host_answered(self, host: str) -> None:
        """The host answered in this run (once per host): on --resume it is waited for when
        away, as one that comes back, not given up as one that never answered."""
        self._put_meta({f"{_ANSWERED}{host}": "1"})

    def state(self, target: Target) -> workflow.State | None:
        row = self._row(target, "state")
        return workflow.from_dict(json.loads(row)) if row else None

    def result(self, target: Target) -> TargetResult | None:
        row = self._row(target, "result")
        return _result_from_json(row) if row else None

    def save_state(self, state: workflow.State) -> None:
        self._upsert(state.target, "state", json.dumps(workflow.to_dict(state)))

    def save_result(self, result: TargetResult) -> None:
        self._upsert(result.target, "result", json.dumps(target_to_dict(result)))

    def _row(self, target: Target, column: str) -> str | None:
        row = self._conn.execute(
            f"SELECT {column} FROM targets WHERE server = ? AND account = ? AND scan_type = ?",  # noqa: S608 (column is one of two literals)
            (target.server, target.account, str(target.scan_type)),
        ).fetchone()
        return row[0] if row else None

    def _upsert(self, target: Target, column: str, value: str) -> None:
        self._write(
            f"INSERT INTO targets (server, account, scan_type, {column}) VALUES (?, ?, ?, ?) "  # noqa: S608
            f"ON CONFLICT(server, account, scan_type) DO UPDATE SET {column} = excluded.{column}",
            (target.server, target.account, str(target.scan_type), value),
        )


def _result_from_json(text: str) -> TargetResult:
    """A saved result, read back as `clamfleet merge` reads a report's target (and as exactly:
    to the second, durations to 0.1 s, which is all any report shows)."""
    return target_from_dict(json.loads(text), "journal")
