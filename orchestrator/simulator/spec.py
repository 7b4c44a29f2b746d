"""What a simulated fleet holds: plain frozen values that tests can also build by hand.

Secrets left empty are derived from the name (a digest), so a hand-built spec needs only names
and files; `generate_fleet` fills every field from its seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.simulator.load import LoadSpec

SCAN_TYPES: tuple[str, ...] = ("home", "mail", "public_html", "public_ftp")
OUTAGE_MODES: tuple[str, ...] = ("refused", "503")
THROTTLE_MODES: tuple[str, ...] = ("429", "503")
#: what `outage_on` may name: the ClamScanner functions (either way in), WHM's, the session login
FUNCTIONS: tuple[str, ...] = (
    "get_scan_paths", "start_scan", "get_scan_status", "list_infected_files", "disinfect_files",
    "check_disinfection_status", "listaccts", "systemloadavg", "create_user_session", "login",
)  # fmt: skip
QUARANTINE_DIR = "quarantine_clamavconnector"


def derived_secret(kind: str, name: str) -> str:
    """A stable 32-character upper-case token (cPanel's token alphabet) for a name."""
    return hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()[:32].upper()


@dataclass(frozen=True, slots=True)
class Faults:
    """Per-server fault knobs; all off by default, all deterministic (count-based).

    A request "matches" when `functions` is None or holds its function name (`start_scan`,
    `listaccts`, `create_user_session`, `login`, ...). The `*_every` knobs count matching
    requests of one server: the Nth, 2Nth, ... one is hit.

    The knobs of a real night ignore `functions`: outages of the HTTP face (`outage_*`,
    `upcp_seconds`; simulator/outage.py), a throttling proxy on start_scan (`throttle_*`: its
    answer replaces the call, which does not run), a busy server (`busy_load`) and
    systemloadavg readings that fail now and then (`loadavg_fail_*`). A function name is the
    ClamScanner function whichever way in (`/execute` or `uapi_cpanel`), or the WHM one.
    """

    status_5xx_every: int = 0  # answer 500, 502, 503 in turn
    retry_after_every: int = 0  # 429 with Retry-After: 1
    reset_every: int = 0  # drop the connection without an answer (before the call runs)
    truncated_json_every: int = 0  # the call runs; its JSON body is cut in half
    slow_seconds: float = 0.0  # delay every reply
    html_login: bool = False  # 200 text/html cPanel login page for every request
    fail_next: int = 0  # the next N matching requests get 503
    stall_accounts: frozenset[str] = frozenset()  # scans die at ~40% and never complete
    clamd_down: bool = False  # start_scan: "failed to connect to the ClamAV service"
    clamd_down_accounts: frozenset[str] = frozenset()  # the same, for these accounts only
    #: someone starts a `home` scan from cPanel's UI just before the first start_scan for
    #: these accounts arrives (the race between a client's status read and its start)
    ui_race_accounts: frozenset[str] = frozenset()
    lockout_failures: int = 5  # cPHulk: failed logins per IP within lockout_window
    lockout_window: float = 900.0
    lockout_seconds: float = 600.0
    stale_seconds: float = 0.2  # after start_scan the previous completed status shows this long
    disinfect_start_delay: float = 0.3  # the transient `none` before the task writes records
    disinfect_step_seconds: float = 0.02  # between two disinfection log records
    functions: frozenset[str] | None = None
    loadavg_unavailable: bool = False  # systemloadavg fails at WHM level (ACL, old server)
    #: -- a real night (simulator/outage.py): cpsrvd restarts, a proxy in front, busy servers --
    outage_mode: str = "refused"  # refused (nothing listens: a stopped cpsrvd) | 503 (a proxy)
    outage_seconds: float = 0.0  # an outage this long (0: none), at outage_at or on outage_on
    outage_at: float = 0.0  # seconds after the fleet's start (or set_faults) that it begins
    outage_on: str = ""  # instead: at this function's Nth request after outage_at (it is hit)
    outage_on_count: int = 1  # N for outage_on, counted per server
    outage_retry_after: int = 0  # 503 mode: Retry-After seconds on the page (0: no header)
    upcp_seconds: float = 0.0  # instead: an upcp run, 2-4 restarts of 5-40 s over this span
    throttle_start: int = 0  # the first N start_scan per account: the proxy answers, not run
    throttle_mode: str = "429"  # 429 | 503: what the throttling proxy answers
    throttle_retry_after: int = 1  # Retry-After seconds of a throttled answer (0: no header)
    busy_load: float = 0.0  # load besides the scans all night (a shop), added to --background
    loadavg_fail_first: int = 0  # the first N systemloadavg readings fail at WHM level
    loadavg_fail_every: int = 0  # every Nth systemloadavg reading fails at WHM level

    #: (an ExcludePath, a MaxFileSize, a permissions problem, a broken signature database)
    blind: bool = False  # clamd is blind: scans complete as usual and detect nothing

    # validate --check-api: each assumption's "differs" variant (README, "The API probe")
    uapi_envelope_legacy: bool = False  # UAPI result in {"cpanelresult": ...} / data.result
    scan_paths_as_strings: bool = False  # get_scan_paths data ["home", ...], not [{id, message}]
    time_started_as_string: bool = False  # "1764295200", as cPanel's docs show (still holds)
    time_started_as_date: bool = False  # time_started a date text, not epoch seconds
    listaccts_suspended_as_text: bool = False  # listaccts suspended "true"/"false", not 1/0
    loadavg_as_list: bool = False  # systemloadavg data [one, five, fifteen], not an object
    session_login_no_cookie: bool = False  # the session login redirects but sets no cookie
    disinfection_status_idle: bool = False  # check_disinfection_status "idle" for "none"
    scan_busy_text_localized: bool = False  # the "already in progress" refusal in German
    time_started_not_renewed: bool = False  # a new scan keeps the previous time_started
    infected_paths_relative: bool = False  # list_infected_files file home-relative
    paths_unescaped: bool = False  # list_infected_files file not HTML-escaped
    disinfection_done_without_type: bool = False  # last log record {"status": "done"}, no type

    def __post_init__(self) -> None:
        if self.outage_mode not in OUTAGE_MODES:
            raise ValueError(
                f"outage_mode: one of {', '.join(OUTAGE_MODES)}, not {self.outage_mode!r}"
            )
        if self.throttle_mode not in THROTTLE_MODES:
            raise ValueError(
                f"throttle_mode: one of {', '.join(THROTTLE_MODES)}, not {self.throttle_mode!r}"
            )
        if self.outage_on and self.outage_on not in FUNCTIONS:
            raise ValueError(f"outage_on: one of {', '.join(FUNCTIONS)}, not {self.outage_on!r}")
        numbers = {
            "outage_seconds": self.outage_seconds, "outage_at": self.outage_at,
            "outage_on_count": self.outage_on_count - 1, "upcp_seconds": self.upcp_seconds,
            "outage_retry_after": self.outage_retry_after, "throttle_start": self.throttle_start,
            "throttle_retry_after": self.throttle_retry_after, "busy_load": self.busy_load,
            "loadavg_fail_first": self.loadavg_fail_first,
            "loadavg_fail_every": self.loadavg_fail_every,
        }  # fmt: skip
        if bad := [name for name, value in numbers.items() if value < 0]:
            raise ValueError(f"{', '.join(bad)}: out of range (outage_on_count >= 1, others >= 0)")

    @property
    def outages(self) -> bool:
        """Whether these knobs take the server's HTTP face away at some point."""
        return self.outage_seconds > 0 or self.upcp_seconds > 0


@dataclass(frozen=True, slots=True)
class SimFile:
    """One file of a home directory. For an mbox under `mail/`, `mail_messages` holds one entry
    per message: None when clean, else the virus it carries."""

    relpath: str
    size: int = 1024
    virus: str | None = None
    mail_messages: Sequence[str | None] | None = None

    @property
    def infected_by(self) -> str | None:
        """The signature a scan reports for this file (the first infected message of an mbox)."""
        if self.virus:
            return self.virus
        return next((m for m in self.mail_messages or () if m), None)


@dataclass(frozen=True, slots=True)
class AccountSpec:
    user: str
    domain: str = ""
    password: str = ""
    cpanel_token: str = ""
    suspended: bool = False
    has_feature: bool = True
    allowed_scan_types: Sequence[str] = SCAN_TYPES
    files: Sequence[SimFile] = ()
    scan_seconds: float | None = None  # None: FleetSpec.scan_seconds
    owner: str = "root"
    plan: str = "default"
    unix_startdate: int = 1_700_000_000

    def __post_init__(self) -> None:
        if not self.domain:
            object.__setattr__(self, "domain", f"{self.user}.example.com")
        if not self.password:
            object.__setattr__(self, "password", derived_secret("password", self.user)[:16])
        if not self.cpanel_token:
            object.__setattr__(self, "cpanel_token", derived_secret("cpanel", self.user))

    @property
    def home(self) -> str:
        return f"/home/{self.user}"

    @property
    def disk_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    accounts: Sequence[AccountSpec] = ()
    whm_user: str = "root"
    whm_token: str = ""
    faults: Faults = field(default_factory=Faults)
    #: Capacity and background load; None: no load modelling (scans keep fixed durations and
    #: systemloadavg reports the number of running scans, unsmoothed).
    load: LoadSpec | None = None

    def __post_init__(self) -> None:
        if not self.whm_token:
            object.__setattr__(self, "whm_token", derived_secret("whm", self.name))

    def account(self, user: str) -> AccountSpec | None:
        return next((a for a in self.accounts if a.user == user), None)


@dataclass(frozen=True, slots=True)
class FleetSpec:
    servers: Sequence[ServerSpec] = ()
    scan_seconds: float = 1.0  # for accounts without their own scan_seconds
    seed: int = 0
    time_scale: float = 1.0  # K: simulated seconds per real second (load ticks, profiles)

    def server(self, name: str) -> ServerSpec:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)

    def with_faults(self, server: str, **knobs: Any) -> FleetSpec:
        """This fleet with fault knobs (fields of `Faults`) set on one server."""
        self.server(server)  # KeyError for an unknown name
        servers = tuple(
            replace(s, faults=replace(s.faults, **knobs)) if s.name == server else s
            for s in self.servers
        )
        return replace(self, servers=servers)

    def scan_seconds_of(self, account: AccountSpec) -> float:
        """Seconds a `home` scan of this account takes (from start_scan to scan_complete)."""
        return self.scan_seconds if account.scan_seconds is None else account.scan_seconds
