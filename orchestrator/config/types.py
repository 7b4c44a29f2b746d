"""Resolved configuration values: what the inventory and policy loaders return.

Inheritance (defaults -> groups -> server) is resolved once, at load time; these values are final.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import time
from enum import StrEnum
from pathlib import Path

from orchestrator.model import Action, ScanType, Secret


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


@dataclass(frozen=True, slots=True)
class Settings:
    max_concurrent_servers: int = 50
    requests_per_second: float = 100.0
    poll_interval: PollInterval = field(default_factory=PollInterval)
    timeouts: Timeouts = field(default_factory=Timeouts)
    window: WindowSetting = field(default_factory=WindowSetting)


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


@dataclass(frozen=True, slots=True)
class Rule:
    """One policy rule. Every `when` key that is set must match; globs except scan_type."""

    action: Action
    name: str | None = None
    virus: str | None = None
    path: str | None = None
    account: str | None = None
    server: str | None = None
    scan_type: ScanType | None = None


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
