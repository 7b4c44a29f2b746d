"""Resolved configuration values: what the inventory and policy loaders return.

Inheritance (defaults -> groups -> server) is resolved once, at load time; these values are final.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, time
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path

from orchestrator.model import Action, ScanType, Secret, Target


class AuthMethod(StrEnum):
    WHM_TOKEN = "whm_token"  # noqa: S105 (a method name, not a secret)
    CPANEL_TOKEN = "cpanel_token"  # noqa: S105
    CPANEL_PASSWORD = "cpanel_password"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Credentials:
    method: AuthMethod
    user: str
    secret: Secret
    #: Where the secret comes from, for display: `token_env WHM_TOKEN`, `password_file`.
    reference: str = field(default="", compare=False)
    #: False when loaded without secrets (offline validate): `secret` is then empty.
    resolved: bool = True


@dataclass(frozen=True, slots=True)
class TlsConfig:
    verify: bool = True
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class LoadLimit:
    """`load:` of a server: the systemloadavg ceiling its scan concurrency adapts to.

    `max` None keeps the fixed `max_concurrent_scans`; only whm_token servers can read the load.
    """

    max: float | None = None
    check_interval: float = 30.0  # seconds between two systemloadavg readings
    #: Seconds the load may keep every waiting target from starting (over max, nothing of ours
    #: running) before they are deferred, named by the load.
    patience: float = 3600.0
    #: The time constant of the 1-minute load average the readings return: 60 s on Linux (the
    #: kernel's). Only a simulated server whose time runs K times faster has 60/K.
    time_constant: float = 60.0


def scan_reads(scan_type: ScanType, path: str) -> bool:
    """Whether a scan of this type reads `path` (relative to the home; home reads it all)."""
    return scan_type is ScanType.HOME or path.startswith(f"{scan_type}/")


@dataclass(frozen=True, slots=True)
class Canary:
    """`canary:` of a server: a planted test file (EICAR) that each night's scan must find,
    else the clean verdicts of the servers it stands for are unproven (README "Canaries").

    `path` is relative to the account's home (`public_html/eicar.txt`); `virus` a glob matched
    case-insensitively (`*EICAR*` matches both `Eicar-Signature` and `Win.Test.EICAR_HDB-1`).
    `scan_type` is the type of the target added when the account is not otherwise scanned.
    `by` names the inventory entry that scans it: the server itself, or for a cPanel login
    (which reaches only its own account) the entry on the same host that logs in as `account`.
    """

    account: str
    path: str
    virus: str
    scan_type: ScanType
    by: str = ""

    def read_by(self, scan_type: ScanType) -> bool:
        """Whether a scan of this type reads the canary file."""
        return scan_reads(scan_type, self.path)

    def same_file(self, other: Canary) -> bool:
        """Whether two entries name the same canary (the host's entries must agree)."""
        mine = (self.account, self.path, self.virus, self.scan_type)
        return mine == (other.account, other.path, other.virus, other.scan_type)


@dataclass(frozen=True, slots=True)
class Server:
    """One cPanel/WHM server, fully resolved."""

    name: str
    base_url: str  # scheme://host:port, no trailing slash
    auth: Credentials
    tls: TlsConfig = field(default_factory=TlsConfig)
    accounts: tuple[str, ...] | None = None  # None means "all" (whm_token only)
    exclude_accounts: tuple[str, ...] = ()
    include_suspended: bool = False
    scan_types: tuple[ScanType, ...] = (ScanType.HOME,)
    max_concurrent_scans: int = 2
    requests_per_second: float = 5.0
    groups: tuple[str, ...] = ()
    load: LoadLimit = field(default_factory=LoadLimit)
    canary: Canary | None = None


@dataclass(frozen=True, slots=True)
class PollInterval:
    min: float = 2.0
    max: float = 30.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    request: float = 30.0
    scan: float = 21600.0
    stall: float = 1800.0
    disinfection: float = 3600.0
    #: A host that answered earlier in the run and then went away (a cpsrvd restart, a 503
    #: proxy) is waited for this long, continuously down, before its remaining targets are given
    #: up (client/breaker.py).
    server_down: float = 900.0


@dataclass(frozen=True, slots=True)
class WindowSetting:
    """`settings.window` (or `--finish-by`): no new scan starts after `end`.

    `end` is a wall-clock time, resolved against the run's start (the next such time after it)
    by `pacing.Window.resolve`; `timezone` is "local" (the machine's) or an IANA name.
    """

    end: time | None = None
    timezone: str = "local"
    #: `--finish-by +DURATION`: the window ends this many seconds after the run's start
    #: (instead of at `end`).
    after: float | None = None
    #: Where the window came from, for the log and the report: "settings" or "--finish-by".
    source: str = "settings"

    @property
    def set(self) -> bool:
        return self.end is not None or self.after is not None


class NotifyOn(StrEnum):
    """When a notification is sent: `new` infected files (any infected file without a
    comparison), any `infected` file, any target not fully scanned (`failed`), or `always`."""

    NEW = "new"
    INFECTED = "infected"
    FAILED = "failed"
    ALWAYS = "always"


@dataclass(frozen=True, slots=True)
class NotifySetting:
    """One `settings.notify` entry: the variable holding an Apprise URL, never the URL."""

    url_env: str
    on: NotifyOn = NotifyOn.INFECTED
    #: where it was written, for a run-time error about the variable (file, line, key path)
    file: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)
    key_path: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Settings:
    max_concurrent_servers: int = 50
    requests_per_second: float = 100.0
    poll_interval: PollInterval = field(default_factory=PollInterval)
    timeouts: Timeouts = field(default_factory=Timeouts)
    window: WindowSetting = field(default_factory=WindowSetting)
    #: SQLite history of every night, as written (relative: from the inventory's folder).
    history: Path | None = None
    notify: tuple[NotifySetting, ...] = ()
    #: `settings.accepted`: the accepted-findings file (relative paths start at the inventory's
    #: folder); `run --accepted FILE` wins over it.
    accepted: Path | None = None
    #: The run's deadline, seconds after its start (`settings.max_duration`, `--max-duration`):
    #: no new scan after it, running ones followed for a short grace, the report written.
    max_duration: float | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    path: str
    servers: tuple[Server, ...]
    settings: Settings = field(default_factory=Settings)

    @property
    def fleet_id(self) -> str:
        """Stable digest of the server list: shards of one inventory share it."""
        names = "\n".join(s.name for s in self.servers)
        return hashlib.sha256(names.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class When:
    """The `when` matcher of policy rules and accepted findings (one implementation).

    Every key that is set must match: `virus`, `path` (the absolute path cPanel reports,
    HTML-unescaped), `account` and `server` are case-sensitive globs, `scan_type` is exact.
    Nothing set matches every file.
    """

    virus: str | None = None
    path: str | None = None
    account: str | None = None
    server: str | None = None
    scan_type: ScanType | None = None

    def matches(self, target: Target, path: str, virus: str) -> bool:
        pairs = (
            (self.virus, virus),
            (self.path, path),
            (self.account, target.account),
            (self.server, target.server),
        )
        if any(glob is not None and not fnmatchcase(text, glob) for glob, text in pairs):
            return False
        return self.scan_type is None or self.scan_type is target.scan_type

    def keys(self) -> dict[str, str]:
        """The keys that are set, as written (for reports and messages)."""
        values = {
            "server": self.server,
            "account": self.account,
            "scan_type": None if self.scan_type is None else str(self.scan_type),
            "path": self.path,
            "virus": self.virus,
        }
        return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Rule(When):
    """One policy rule: its `when` keys (inherited: `rule.virus`, `rule.matches(...)`) and the
    action. `action` is the one positional field (`when` keys are keyword-only)."""

    action: Action
    name: str | None = None


@dataclass(frozen=True, slots=True)
class AcceptedEntry:
    """One entry of the accepted-findings file: a `when`, why, and until when.

    In force while the run's date (in the run's time zone) is before `expires`; from that day on
    the files it matches count as findings again.
    """

    when: When
    reason: str
    expires: date
    line: int = 0  # where it starts in its file (for messages and the report's stale list)

    def in_force(self, today: date) -> bool:
        return today < self.expires


@dataclass(frozen=True, slots=True)
class Accepted:
    """The accepted-findings file (`--accepted FILE` or `settings.accepted`)."""

    source: str
    entries: tuple[AcceptedEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    max_destructive_per_account: int | None = None
    max_destructive_per_run: int | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    default: Action = Action.REPORT
    rules: tuple[Rule, ...] = ()
    limits: Limits = field(default_factory=Limits)
    source: str | None = None  # the file it came from, None for the built-in report-only policy


REPORT_ONLY = Policy()
