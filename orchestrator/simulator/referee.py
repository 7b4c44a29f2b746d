"""The referee: every cpanel-api.md rule a client can break, checked and recorded as a violation.

The simulator answers a rule-breaking request as a real server would (often with a plain
`status: 0`, or even a success), so a buggy client can look fine. The referee writes down each
such request, naming the server, the rule, the account and the request, so tests (and
`clamfleet simulate`/`demo`, and the benchmark) can fail loudly on it.

State is per server (`ServerReferee`, used under that server's `ServerRuntime.lock`) plus one
fleet-wide request window (`FleetWindow`, its own lock, shared by every server of a fleet).
The rule checks themselves are pure functions of what the server knows at that moment.

Run identity: clamfleet sends `User-Agent: clamfleet/<version> (run <run-id>; client <tag>)`.
Requests without a run id (other clients, `validate --check-connectivity`, test helpers) form
one anonymous run. The rules "within one run" (a restarted scan, requests after a refused
login, the request rates) are counted per run: the referee judges one client's behaviour, and
two clients that each keep their promise are not one client breaking it. A run keeps its id
across `--resume`; the client tag names one process of it, and only `outage-hammering` counts
per process: a resumed process cannot know that the host its predecessor left was down, so its
own few first requests into the outage are forgiven again (every other rule holds across the
resume: a resumed run must not restart a scan its predecessor started).

Rate tolerance: a client keeping R requests per second spaces its requests at least 1/R apart
when it *sends* them; on a loaded loopback they *arrive* with jitter, so two requests sent
1/R apart may arrive closer. The referee therefore counts arrivals in windows of
RATE_WINDOW = 0.95 s instead of 1 s: R+1 arrivals inside 0.95 s mean the sender's spacing was
broken by more than 50 ms in total, not just jittered.

The night's rules (outages, throttling, shared hosts: simulator/outage.py, promises.py):

- `outage-hammering`. The client's contract: when a server stops answering, its requests in
  flight fail; a breaker opens after a few failures and then lets ONE probe through per
  cool-down, which starts at >= 1 s and grows to a cap. So within one outage, per run, the
  first `cap + GRACE_EXTRA` requests are forgiven (cap: the host's max_concurrent_scans, 2 when
  not learned: what can be in flight on a host, plus the breaker's few failures), and every
  later one must arrive at least `MIN_PROBE_INTERVAL` (1.0 s, a module constant tests may
  lower) after the run's previous request to that server, less `PROBE_JITTER` (50 ms, as for
  the rates). Judged on the simulator's clock, so a `ManualClock` test spaces probes without
  waiting. Only a `503` outage is judged: a refused connection never reaches this process
  (the kernel answers it; counting SYNs needs privileges, and any socket that would see them
  would have to accept or hold the connection, which is no longer "refused"), so a
  refused-mode outage is observed only as silence. The fuzz draws both modes: the 503 one bites.
- `host-scan-cap`. A start_scan that took while this run already had `cap` scans running on
  that host (cap: the host's entries' max_concurrent_scans combined, promises.py: the
  smallest, or their sum while `SHARED_SCAN_CAP` is off). A scan is the
  run's when its own start_scan took (a scan cPanel's UI started, `ui_race_accounts`, is
  not); it runs while its scanner child lives: until complete, or until a stalled one's child
  died (a dead child loads nothing, and cPanel accepts a new start_scan then).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.simulator.outage import Outage
from orchestrator.simulator.promises import DEFAULT_SCANS
from orchestrator.simulator.promises import ServerRules as ServerRules

ANONYMOUS = "anonymous"
RATE_WINDOW = 0.95  # seconds; see the module docstring
RUN_ID = re.compile(r"\(run ([^();\s]+)[;)]")
CLIENT = re.compile(r"\(run [^();\s]+; client ([^()\s]+)\)")
SESSION_TOKEN = re.compile(r"/cpsess\d+")
MIN_PROBE_INTERVAL = 1.0  # seconds between two requests of a run in an outage (after grace)
PROBE_JITTER = 0.05  # seconds of arrival jitter forgiven on that interval
GRACE_EXTRA = 2  # requests in one outage forgiven beyond the host's scan cap

#: rule id -> what it forbids (the ids are stable: tests and the benchmark match on them)
RULES: dict[str, str] = {
    "scan-overlap": "start_scan while that account's scan runs (any scan type)",
    "scan-restarted": "a second start_scan for one target within one run after one took",
    "scan-during-disinfection": (
        "start_scan while the account's disinfection is queued or running (its end deletes "
        "the infected list the new scan writes)"
    ),
    "results-before-complete": (
        "list_infected_files or disinfect_files while the account's scan is not complete"
    ),
    "disinfect-unlisted-path": "disinfect_files naming a path not in the latest infected list",
    "disinfect-overlap": "disinfect_files while the account's previous disinfection is not done",
    "server-rate": "more requests to one server in one second than its requests_per_second",
    "fleet-rate": "more requests to the fleet in one second than settings.requests_per_second",
    "after-refused-login": "a request to a server after a refused login there (cPHulk)",
    "suspended-account": "a request for a suspended account without include_suspended: true",
    "excluded-account": "a request for an account the inventory's exclude_accounts names",
    "outage-hammering": (
        "requests to a server during an outage beyond a breaker's: after the grace, two "
        "requests of one run less than MIN_PROBE_INTERVAL apart"
    ),
    "host-scan-cap": (
        "a start_scan that took while the run already had the host's max_concurrent_scans "
        "scans running there (the smallest among the host's inventory entries)"
    ),
}
#: routes that act on one account (listaccts and other WHM calls never do)
ACCOUNT_ROUTES = frozenset(
    {
        "execute",
        "cpsess_execute",
        "session_login",
        "session_logout",
        "uapi_cpanel",
        "create_user_session",
    }
)


def run_of(user_agent: str | None) -> str:
    """The run id a request's User-Agent carries, or ANONYMOUS."""
    m = RUN_ID.search(user_agent or "")
    return m.group(1) if m else ANONYMOUS


def client_of(user_agent: str | None) -> str:
    """The client tag (one process of a run) a request's User-Agent carries, or ""."""
    m = CLIENT.search(user_agent or "")
    return m.group(1) if m else ""


def redact(path: str) -> str:
    """The request path without its session token (a credential while the session lives)."""
    return SESSION_TOKEN.sub("/cpsess…", path)


@dataclass(frozen=True, slots=True)
class Request:
    """A request as the referee sees it: who sent it, what it asked, when (simulator clock)."""

    method: str
    path: str  # redacted, no query string (that may hold a session name)
    route: str
    function: str | None
    account: str | None
    run: str
    t: float
    client: str = ""  # one process of the run (a --resume is another): see `client_of`


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: where, which rule, by which request, in one human line."""

    server: str
    rule: str
    account: str | None
    method: str
    path: str
    function: str | None
    t: float
    run: str
    message: str

    def __str__(self) -> str:
        who = f" account={self.account}" if self.account else ""
        fn = f" ({self.function})" if self.function else ""
        return (
            f"violation run={self.run} server={self.server} rule={self.rule}{who} "
            f"t={self.t:.3f} {self.method} {self.path}{fn}: {self.message}"
        )


def over_rate(window: deque[float], arrived: float, limit: float | None) -> bool:
    """Add an arrival (monotonic seconds) to `window`; True when it is one too many.

    A rate below 1/s still allows one request in a window (the pacer's promise then is one
    request per 1/R seconds, which no one-second count can check more strictly).
    """
    while window and arrived - window[0] >= RATE_WINDOW:
        window.popleft()
    window.append(arrived)
    return limit is not None and len(window) > max(limit, 1.0)


class FleetWindow:
    """Arrivals at every server of one fleet, per run, for settings.requests_per_second."""

    def __init__(self) -> None:
        self.limit: float | None = None
        self._lock = threading.Lock()
        self._arrivals: dict[str, deque[float]] = {}

    def over(self, run: str, arrived: float) -> bool:
        with self._lock:
            return over_rate(self._arrivals.setdefault(run, deque()), arrived, self.limit)


# -- the UAPI rules: pure functions of what the account's state says --------------------------


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """What the server knows about an account just before a ClamScanner call runs."""

    scan_complete: bool  # the status file (not its stale view) says scan_complete 1
    listed: frozenset[str]  # relpaths of the latest infected list
    disinfecting: bool  # a disinfection task is queued or running


def judge_call(
    function: str, args: Mapping[str, Any], facts: AccountFacts, relpath: Callable[[str], str]
) -> list[tuple[str, str]]:
    """(rule, message) for list_infected_files / disinfect_files broken against `facts`."""
    if function not in ("list_infected_files", "disinfect_files"):
        return []
    if not facts.scan_complete:
        return [("results-before-complete", f"{function} before the account's scan completed")]
    out: list[tuple[str, str]] = []
    actions = args.get("actions")
    if function == "disinfect_files" and isinstance(actions, dict) and actions:
        if facts.disinfecting:
            out.append(("disinfect-overlap", "the previous disinfection is not done yet"))
        unlisted = sorted(str(k) for k in actions if relpath(str(k)) not in facts.listed)
        if unlisted:
            shown = ", ".join(unlisted[:3]) + (" …" if len(unlisted) > 3 else "")
            out.append(("disinfect-unlisted-path", f"{len(unlisted)} path(s) not listed: {shown}"))
    return out


def judge_start(
    scan_type: str, refused_running: bool, took_before: bool, disinfecting: bool = False
) -> list[tuple[str, str]]:
    """(rule, message) for one start_scan; `took_before`: this run already started it;
    `disinfecting`: the account's disinfection task is queued or running."""
    out: list[tuple[str, str]] = []
    if refused_running:
        out.append(("scan-overlap", f"start_scan {scan_type} while a scan of the account runs"))
    if disinfecting:
        out.append(
            ("scan-during-disinfection", f"start_scan {scan_type} while a disinfection is pending")
        )
    if took_before:
        out.append(("scan-restarted", f"start_scan {scan_type} again in the same run"))
    return out


# -- one server's referee ---------------------------------------------------------------------


@dataclass(slots=True)
class ServerReferee:
    """The rules' memory for one server; every method runs under the server's lock."""

    server: str
    fleet: FleetWindow
    suspended: frozenset[str]
    rules: ServerRules = field(default_factory=ServerRules)
    violations: list[Violation] = field(default_factory=list)
    _arrivals: dict[str, deque[float]] = field(default_factory=dict)
    _refused: set[str] = field(default_factory=set)  # runs refused a login here
    _denied: set[tuple[str, str]] = field(default_factory=set)  # (run, suspended account)
    _took: set[tuple[str, str, str]] = field(default_factory=set)  # (run, account, scan_type)
    #: (outage index, run) -> (requests in that outage, arrival of the latest)
    _outage_seen: dict[tuple[int, str, str], tuple[int, float]] = field(default_factory=dict)

    def flag(self, req: Request, rule: str, message: str) -> None:
        self.violations.append(
            Violation(
                self.server, rule, req.account, req.method, req.path, req.function, req.t,
                req.run, message,
            )
        )  # fmt: skip

    def arrival(self, req: Request, arrived: float) -> None:
        """Rate rules, at arrival (monotonic seconds), for every request, faulted ones too."""
        window = self._arrivals.setdefault(req.run, deque())
        if over_rate(window, arrived, self.rules.requests_per_second):
            self.flag(req, "server-rate", f"over {self.rules.requests_per_second:g} requests/s")
        if self.fleet.over(req.run, arrived):
            self.flag(req, "fleet-rate", f"over {self.fleet.limit:g} requests/s fleet-wide")

    def request(self, req: Request) -> None:
        """Login and account rules, once the request is parsed (before it is answered)."""
        if req.run in self._refused:
            self.flag(req, "after-refused-login", "this run's login here was already refused")
        user = req.account
        if user is None or req.route not in ACCOUNT_ROUTES:
            return
        if self.rules.excludes(user):
            self.flag(req, "excluded-account", f"{user} is excluded by the inventory")
        # With the account's own credentials (`execute`) the client cannot know before the 403.
        known = req.route != "execute" or (req.run, user) in self._denied
        if user in self.suspended and not self.rules.allows_suspended(user) and known:
            self.flag(req, "suspended-account", f"{user} is suspended")

    def refused_login(self, req: Request) -> None:
        """Bad credentials (or a cPHulk block) answered 403: the run must stop here."""
        self._refused.add(req.run)

    def denied_suspended(self, req: Request) -> None:
        if req.account is not None:
            self._denied.add((req.run, req.account))

    def start_scan(
        self, req: Request, scan_type: str, refused_running: bool, took: bool,
        disinfecting: bool = False, running: int = 0,
    ) -> None:  # fmt: skip
        """`running`: scans this run started here that run (the one just started aside)."""
        key = (req.run, req.account or "", scan_type)
        judged = judge_start(scan_type, refused_running, key in self._took, disinfecting)
        for rule, message in judged:
            self.flag(req, rule, message)
        cap = self.rules.max_concurrent_scans
        if took and cap is not None and running >= cap:
            self.flag(
                req, "host-scan-cap",
                f"start_scan {scan_type} took while {running} scan(s) of this run ran here"
                f" (the host's max_concurrent_scans: {cap})",
            )  # fmt: skip
        if took:
            self._took.add(key)

    def outage(self, req: Request, outage: Outage) -> None:
        """A request that arrived during a 503 outage (see the module docstring)."""
        key = (outage.index, req.run, req.client)
        count, last = self._outage_seen.get(key, (0, req.t))
        count += 1
        self._outage_seen[key] = (count, req.t)
        grace = (self.rules.max_concurrent_scans or DEFAULT_SCANS) + GRACE_EXTRA
        gap = req.t - last
        if count > grace and gap < MIN_PROBE_INTERVAL - PROBE_JITTER:
            self.flag(
                req, "outage-hammering",
                f"request {count} of this run in the {outage}, {gap:.3f} s after its previous"
                f" one (after {grace} requests a breaker probes once per"
                f" {MIN_PROBE_INTERVAL:g} s at most)",
            )  # fmt: skip

    def call(
        self, req: Request, function: str, args: Mapping[str, Any], facts: AccountFacts,
        relpath: Callable[[str], str],
    ) -> None:  # fmt: skip
        for rule, message in judge_call(function, args, facts, relpath):
            self.flag(req, rule, message)


def summary_lines(violations: Iterable[Violation], limit: int = 200) -> list[str]:
    """Up to `limit` violation lines, then one count line per (run, rule), then the total."""
    items = list(violations)
    lines = [str(v) for v in items[:limit]]
    if len(items) > limit:
        lines.append(f"... and {len(items) - limit} more")
    counts: dict[tuple[str, str], int] = {}
    for v in items:
        counts[(v.run, v.rule)] = counts.get((v.run, v.rule), 0) + 1
    lines += [f"violations run={r} rule={rule} count={n}" for (r, rule), n in counts.items()]
    lines.append(f"{len(items)} protocol violations")
    return lines
