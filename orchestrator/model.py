"""Values shared by every layer: enums, targets, per-target results, run metadata.

Everything here is a frozen, slotted dataclass or a StrEnum, so it serialises as it is and can be
passed between tasks without copying. No I/O, no logging.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

#: Exit codes (README "Exit codes"): infected files win over failures; 3 is bad input, nothing
#: scanned; 70 (EX_SOFTWARE) an internal error, never 0-3, so that no crash reads as a verdict.
EXIT_CLEAN, EXIT_INFECTED, EXIT_INCOMPLETE, EXIT_INVALID = 0, 1, 2, 3
EXIT_INTERNAL = 70


class ScanType(StrEnum):
    HOME = "home"
    MAIL = "mail"
    PUBLIC_HTML = "public_html"
    PUBLIC_FTP = "public_ftp"


class Action(StrEnum):
    """What the policy asks for one infected file. `report` means: send nothing."""

    REPORT = "report"
    IGNORE = "ignore"
    QUARANTINE = "quarantine"
    DELETE = "delete"
    CLEANSE_MAILBOX = "cleanse_mailbox"

    @property
    def destructive(self) -> bool:
        return self in (Action.QUARANTINE, Action.DELETE, Action.CLEANSE_MAILBOX)

    @property
    def sent(self) -> bool:
        """Whether this action goes to `disinfect_files` at all."""
        return self is not Action.REPORT


class Outcome(StrEnum):
    """What happened to one infected file; cPanel's step states plus `not-requested`."""

    NOT_REQUESTED = "not-requested"
    QUARANTINED = "quarantined"
    DELETED = "deleted"
    NO_ACTION = "no-action"
    MAILBOX_CLEANSED = "mailbox-cleansed"
    ERROR = "error"
    #: sent, but cPanel never reported the file before the run stopped following it (the
    #: disinfection deadline, a lost answer, an interrupted run): it may or may not be done
    UNKNOWN = "unknown"


class Status(StrEnum):
    CLEAN = "clean"
    INFECTED = "infected"
    FAILED = "failed"
    SKIPPED = "skipped"


class ErrorKind(StrEnum):
    AUTH = "auth"
    UNREACHABLE = "unreachable"
    TLS = "tls"
    API = "api"
    PROTOCOL = "protocol"
    TIMEOUT = "timeout"
    STALLED = "stalled"
    POLICY_LIMIT = "policy_limit"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    INTERNAL = "internal"
    DEFERRED = "deferred"  # the window closed before it started: status skipped, incomplete


class Secret:
    """A token or password. Its repr and str never show the value; `reveal()` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """The unit of work: one scan type of one account on one server."""

    server: str
    account: str
    scan_type: ScanType

    def __str__(self) -> str:
        return f"{self.server}/{self.account}/{self.scan_type}"


@dataclass(frozen=True, slots=True)
class ScanStats:
    """Counters of the scan this run started, as `get_scan_status` last reported them."""

    time_started: int | None
    scanned_file_count: int
    scanned_file_size: int
    total_file_count: int


@dataclass(frozen=True, slots=True)
class Acceptance:
    """An entry of the accepted-findings file, as a report shows it on a file it matched."""

    reason: str
    expires: date


@dataclass(frozen=True, slots=True)
class InfectedFile:
    """One infected file: path as cPanel reports it, HTML-unescaped.

    Not every infected file is a finding: an accepted one (`accepted` set, in force) and the
    server's canary (`canary`) are reported, never acted on, and count for no verdict.
    """

    path: str
    virus: str
    action: Action = Action.REPORT
    outcome: Outcome = Outcome.NOT_REQUESTED
    message: str | None = None
    #: With `--baseline`: "new" or "recurring" (resolved files are listed by the report layer).
    delta: str | None = None
    #: With a history (`--history`): the start of the first night that reported this file, and
    #: the number of nights that did, this one included.
    first_seen: datetime | None = None
    nights_seen: int | None = None
    #: The accepted-findings entry in force that matched it: not a finding, no action sent.
    accepted: Acceptance | None = None
    #: An entry that matched it but has expired: the file is a finding again.
    expired_acceptance: Acceptance | None = None
    #: The planted test file of the server's canary: proof of detection, not an infection.
    canary: bool = False

    @property
    def finding(self) -> bool:
        """Whether it counts as an infection (verdict, exit code, summary.infected_files)."""
        return self.accepted is None and not self.canary


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    kind: ErrorKind
    message: str


@dataclass(frozen=True, slots=True)
class TargetResult:
    """The terminal record of one target: what the report shows for it."""

    target: Target
    status: Status
    scan: ScanStats | None = None
    infected_files: tuple[InfectedFile, ...] = ()
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    api_calls: int = 0
    error: ErrorInfo | None = None
    #: For a clean target of a server with a canary: whether this night's canary was detected
    #: (False: the clean verdict is unproven). None otherwise (no canary, or not clean).
    verified: bool | None = None

    @property
    def findings(self) -> tuple[InfectedFile, ...]:
        """The infected files that count as infections (not accepted, not the canary)."""
        return tuple(f for f in self.infected_files if f.finding)

    @property
    def server(self) -> str:
        return self.target.server

    @property
    def account(self) -> str:
        return self.target.account

    @property
    def scan_type(self) -> ScanType:
        return self.target.scan_type


@dataclass(frozen=True, slots=True)
class CanaryInfo:
    """A server's canary as the report records it (`run.canaries[server]`): the test file, and
    `by`, the inventory entry whose scan of `account` must find it (the server itself, or the
    entry of its host that logs in as `account`)."""

    account: str
    path: str  # relative to the account's home
    virus: str  # a glob, matched case-insensitively
    by: str


@dataclass(frozen=True, slots=True)
class StaleEntry:
    """An accepted-findings entry that matched no infected file this run."""

    line: int
    reason: str
    expires: date
    when: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class AcceptedInfo:
    """The accepted-findings file a run used (`run.accepted`): where, how many entries, and the
    entries that matched nothing (stale entries rot silently otherwise)."""

    source: str
    entries: int
    stale: tuple[StaleEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Run metadata for the report's `run` object.

    `servers` (every server of the inventory, in inventory order, whatever the shard) and
    `fleet_id` (a digest of that list) are additive extensions of the report contract: they let
    `merge` order shard reports as one run would, refuse reports of another fleet and name
    missing shards.
    """

    id: str
    tool_version: str
    started_at: datetime
    finished_at: datetime | None
    inventory: str
    shard: str = "1/1"
    dry_run: bool = True
    servers: tuple[str, ...] = field(default=())
    fleet_id: str = ""
    #: Set by `--only-failed PREVIOUS`: the id of the run whose failures this run retried.
    rerun_of: str | None = None
    #: The servers this run was given (its shard, after --servers), in inventory order: an
    #: empty list says "this shard had nothing to scan" rather than leaving it to be guessed.
    shard_servers: tuple[str, ...] = ()
    #: Load-aware pacing per server (only paced servers); additive, see ServerPacing.
    pacing: Mapping[str, ServerPacing] = field(default_factory=dict, hash=False)
    #: Per server with a canary (this run's servers): its test file and the entry that scans it.
    canaries: Mapping[str, CanaryInfo] = field(default_factory=dict, hash=False)
    #: The accepted-findings file, when one was given.
    accepted: AcceptedInfo | None = None
    #: The finish-by window the run had (None: none); additive, see RunWindow.
    window: RunWindow | None = None
    #: Per server, the stretches its host was down (only servers that went down); additive.
    outages: Mapping[str, tuple[Downtime, ...]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class RunWindow:
    """The run's finish-by window as it was resolved (report `run.window`): no new scan after
    `end`, an aware timestamp in its own timezone's offset; `timezone` as configured ("local"
    or an IANA name); `source` "settings" (settings.window) or "--finish-by"."""

    end: datetime
    timezone: str
    source: str


@dataclass(frozen=True, slots=True)
class Downtime:
    """One stretch a server's host was away in the run (report `run.outages[server]`): from the
    first failed request to the answer that closed the breaker (`back_at`), or to the give-up
    (`gave_up`: its remaining targets ended unreachable) or the end of the run (None)."""

    down_at: datetime
    back_at: datetime | None
    seconds: float
    gave_up: bool = False


@dataclass(frozen=True, slots=True)
class PacingSample:
    """One load reading of a paced server: seconds since the run's origin, scans running then,
    the concurrency limit after the reading, and the 1-minute load (None: the reading failed)."""

    t: float
    running: int
    limit: int
    load: float | None


@dataclass(frozen=True, slots=True)
class ServerPacing:
    """What load-aware pacing did on one server (report `run.pacing[server]`)."""

    max_load: float | None
    cap: int
    peak_load: float | None = None
    seconds_over: float = 0.0  # time the 1-minute load spent above max_load
    readings: int = 0
    failed_readings: int = 0
    history: tuple[PacingSample, ...] = ()


# ---------------------------------------------------------------------------------------------
# What the client parses from cPanel's answers and the workflow reads (shared by both)


@dataclass(frozen=True, slots=True)
class StatusData:
    """`get_scan_status` data. `None` in ScanStatusReply means "No active scans" (never scanned)."""

    scan_complete: bool
    time_started: int | None
    scanned_file_count: int = 0
    scanned_file_size: int = 0
    total_file_count: int = 0
    # `total_file_size_MiB`, misnamed: the byte total once the first file is scanned (before
    # that, MiB). 0 while it cannot be read as bytes. Scan time follows bytes, not file counts.
    total_bytes: int = 0

    def stats(self) -> ScanStats:
        return ScanStats(
            self.time_started,
            self.scanned_file_count,
            self.scanned_file_size,
            self.total_file_count,
        )


@dataclass(frozen=True, slots=True)
class DisinfectionRecord:
    id: int
    type: str  # step | issue | done
    state: str
    file: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class DisinfectionStatusReply:
    status: str  # done | running | queued | none
    details: tuple[DisinfectionRecord, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class LoadReading:
    """WHM `systemloadavg`: the 1, 5 and 15 minute load averages."""

    one: float
    five: float
    fifteen: float
