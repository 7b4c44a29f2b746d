"""`clamfleet validate INVENTORY --check-connectivity`: would every server be fully scanned?

Through the same client, limits and error mapping as a run:

    whm_token                        listaccts (reachability, TLS, credentials, the account list),
                                     systemloadavg where `load.max` is set (what pacing reads),
                                     then get_scan_paths per account to be scanned
    cpanel_token / cpanel_password   get_scan_paths for the account

With a `--policy` that sends actions (any action but `report`), a whm_token server is also asked
for what its disinfect_files will need: a cPanel session of its first scannable account
(create_user_session and the session's login), which is then logged out. Nothing else changes
anything on a server: no scan is started, no file touched.

An auth or TLS failure ends a server's checks after that one request (the client never retries
them; cPHulk locks out an address that keeps trying), and an auth failure ends the checks of
every other entry on the same host too: cPHulk counts refusals per host, not per entry, so the
client sends nothing more there (health.py) and those rows say "not attempted" (and "blocked"
in the auth column, never "ok" beside an auth failure). A systemloadavg that fails (a run would
ignore `load.max` and run `max_concurrent_scans`) and a session that cannot be opened (the
policy's actions could not be sent) fail the server too. Every failure becomes the row's
verdict, never a traceback. Exit 0 only when every server passes, else 2 (as a run that could
not fully scan some target).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

import anyio

from orchestrator.client import Http, RetryPolicy, ServerClient
from orchestrator.client.health import Hosts
from orchestrator.config import AuthMethod, Inventory, Policy, Server
from orchestrator.engine.limiter import FleetLimits
from orchestrator.engine.targets import account_skip, expected_accounts
from orchestrator.errors import (
    ApiError,
    AuthError,
    HostRefused,
    RequestTimeout,
    TargetError,
    TlsError,
    TransportError,
)
from orchestrator.log import redact_text
from orchestrator.model import EXIT_CLEAN, EXIT_INCOMPLETE, ErrorInfo, ErrorKind, Status

#: Account problems listed in a row before "(+N more)".
MAX_LISTED = 3


@dataclass(slots=True)
class ServerCheck:
    """What the pre-flight found out about one server. None: not known (never got that far)."""

    server: Server
    reachable: bool | None = None
    tls_ok: bool | None = None
    auth_ok: bool | None = None
    accounts_checked: int = 0
    #: `account: missing types` or `account: why it cannot be scanned`.
    problems: list[str] = field(default_factory=list)
    error: ErrorInfo | None = None
    #: nothing was sent: another login on the host was refused (cPHulk counts per host)
    blocked: bool = False
    #: accounts whose every configured scan type is allowed (a session is tried with one)
    scannable: list[str] = field(default_factory=list)
    load: float | None = None  # systemloadavg's 1-minute load, where `load.max` is set
    load_error: str | None = None
    #: the cPanel session disinfect_files needs: None not tried (no policy sending actions,
    #: or a route that needs none), True opened and logged out, False opened, logout unanswered
    session: bool | None = None
    session_error: str | None = None

    @property
    def https(self) -> bool:
        return self.server.base_url.startswith("https")

    @property
    def unverified(self) -> bool:
        return self.https and not self.server.tls.verify

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and not self.problems
            and self.load_error is None
            and self.session_error is None
        )

    def answered(self) -> None:
        """The server sent an authenticated answer: reachable, TLS and credentials are fine."""
        self.reachable = self.auth_ok = True
        self.tls_ok = True if self.https else None

    def failed(self, exc: TargetError) -> None:
        self.error = ErrorInfo(exc.kind, str(exc))
        if isinstance(exc, HostRefused):
            self.blocked = True
            return  # nothing was sent: reachability and these credentials are still unknown
        if isinstance(exc, TlsError):
            self.reachable, self.tls_ok = True, False
        elif isinstance(exc, TransportError):
            # A 5xx or a reset is an answer of sorts; "cannot connect" and timeouts are not.
            self.reachable = exc.maybe_sent and not isinstance(exc, RequestTimeout)
        else:  # the server answered: the connection and its TLS worked
            self.reachable = True
            self.tls_ok = True if self.https else None
            if isinstance(exc, AuthError):
                self.auth_ok = False
            elif isinstance(exc, ApiError):  # the call ran: the credentials were accepted
                self.auth_ok = True


def check_connectivity(
    inventory: Inventory,
    *,
    out: TextIO | None = None,
    retry: RetryPolicy | None = None,
    policy: Policy | None = None,
) -> int:
    """Check every server, print one table row per server; 0 when all pass, else 2.
    `policy`: the run's; one that sends actions makes whm_token servers try a session."""
    session = policy is not None and sends_actions(policy)
    checks = anyio.run(check_fleet, inventory, retry or RetryPolicy.for_checks(), session)
    stream = out or sys.stdout
    stream.write(render_table(checks) + "\n")
    passed = sum(c.passed for c in checks)
    stream.write(f"{passed} of {len(checks)} servers pass\n")
    return EXIT_CLEAN if passed == len(checks) else EXIT_INCOMPLETE


def sends_actions(policy: Policy) -> bool:
    """Whether the policy can send disinfect_files at all (any action but `report`)."""
    return policy.default.sent or any(rule.action.sent for rule in policy.rules)


async def check_fleet(
    inventory: Inventory, retry: RetryPolicy, session: bool = False
) -> list[ServerCheck]:
    """Every server concurrently, at most max_concurrent_servers at once, within its rate
    (entries on one host share its rate). `session`: also try the cPanel session
    disinfect_files needs (whm_token servers)."""
    limits = FleetLimits(inventory.settings, inventory_servers=inventory.servers)  # per host
    checks = [ServerCheck(server) for server in inventory.servers]
    http = Http(request_timeout=inventory.settings.timeouts.request, hosts=Hosts.for_checks())
    async with http, anyio.create_task_group() as tg:
        for check in checks:
            tg.start_soon(_check_server, http, limits, check, retry, session)
    return checks


async def _check_server(
    http: Http, limits: FleetLimits, check: ServerCheck, retry: RetryPolicy, session: bool
) -> None:
    server = check.server
    async with limits.servers:
        client = ServerClient(http, server, limits.gate_for(server), retry)
        try:
            wanted = await _accounts(client, check)
            if server.load.max is not None:
                await _read_load(client, check)
        except Exception as exc:
            _record(check, exc)
            return
        accounts = iter(wanted)
        async with anyio.create_task_group() as tg:
            for _ in range(max(server.max_concurrent_scans, 1)):
                tg.start_soon(_lane, client, check, accounts, tg.cancel_scope)
        if session and check.error is None:
            try:
                await _try_session(client, check, wanted)
            except Exception as exc:
                _record(check, exc)


async def _read_load(client: ServerClient, check: ServerCheck) -> None:
    """systemloadavg, as pacing will read it; a failure is the row's, not fatal (a run falls
    back to the fixed cap), except a refused login, which ends the server's checks."""
    try:
        reading = await client.system_load()
    except (AuthError, TlsError):
        raise
    except TargetError as exc:
        check.load_error = str(exc)
        return
    check.load = reading.one if reading is not None else None


async def _try_session(client: ServerClient, check: ServerCheck, accounts: list[str]) -> None:
    """The session disinfect_files will need, with the first scannable account; logged out."""
    ready = set(check.scannable)
    account = next((a for a in accounts if a in ready), None)
    if account is None:
        return  # no account to act on: the rows' problems say why
    try:
        check.session = await client.try_session(account)
    except HostRefused:
        raise
    except TargetError as exc:
        check.session_error = f"{account}: {exc}"


async def _lane(
    client: ServerClient, check: ServerCheck, accounts: Iterator[str], scope: anyio.CancelScope
) -> None:
    """Lanes share the iterator; the first fatal error stops them all (no further requests)."""
    try:
        await _check_accounts(client, check, accounts)
    except Exception as exc:
        _record(check, exc)
        scope.cancel()


def _record(check: ServerCheck, exc: Exception) -> None:
    if check.error is not None:
        return
    if isinstance(exc, TargetError):
        check.failed(exc)
    else:  # a bug here is one row's verdict, not a traceback
        check.error = ErrorInfo(ErrorKind.INTERNAL, _describe(exc))


async def _accounts(client: ServerClient, check: ServerCheck) -> list[str]:
    """The accounts a run would scan on this server (listaccts for whm_token)."""
    server = check.server
    if server.auth.method is not AuthMethod.WHM_TOKEN:
        return list(expected_accounts(server) or ())  # excluded ones are skipped by a run too
    listed = {a.user: a for a in await client.list_accounts()}
    check.answered()
    names = list(listed) if server.accounts is None else list(server.accounts)
    wanted = []
    for name in names:
        skip = account_skip(server, name, listed)  # the run's own rule (targets.py)
        if skip is None:
            wanted.append(name)
        elif skip.status is Status.FAILED:
            check.problems.append(f"{name}: no such account")
    return wanted


async def _check_accounts(
    client: ServerClient, check: ServerCheck, accounts: Iterator[str]
) -> None:
    """Check each account's allowed scan types; fatal errors propagate to `_lane`."""
    for account in accounts:
        try:
            allowed = set(await client.get_scan_paths(account))
        except ApiError as exc:  # this account cannot scan (feature off, ClamAV disabled)
            check.answered()
            check.problems.append(f"{account}: {exc}")
            continue
        check.answered()
        check.accounts_checked += 1
        missing = [str(t) for t in check.server.scan_types if str(t) not in allowed]
        if missing:
            check.problems.append(f"{account}: {', '.join(missing)} not allowed")
        else:
            check.scannable.append(account)


def _describe(exc: BaseException) -> str:
    return redact_text(f"{type(exc).__name__}: {exc}")[:200]


# ---------------------------------------------------------------------------------------------
# The table

HEADER = (
    "server",
    "url",
    "reachable",
    "TLS",
    "auth",
    "accounts",
    "missing scan types",
    "load",
    "session",
    "verdict",
)


def render_table(checks: list[ServerCheck]) -> str:
    """One row per server, plain text (it goes to logs and CI output as often as to a TTY)."""
    rows = [HEADER, *(_row(c) for c in checks)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _row(check: ServerCheck) -> tuple[str, ...]:
    return (
        check.server.name,
        check.server.base_url,
        _yes_no(check.reachable),
        _tls(check),
        _auth(check),
        str(check.accounts_checked),
        _problems(check.problems),
        _load(check),
        _session(check),
        _verdict(check),
    )


def _auth(check: ServerCheck) -> str:
    """As the verdict says: never "ok" beside an auth failure."""
    if check.blocked:
        return "blocked"  # nothing sent: another login on this host was refused
    if check.error is not None and check.error.kind is ErrorKind.AUTH:
        return "refused"
    return {True: "ok", False: "refused", None: "?"}[check.auth_ok]


def _load(check: ServerCheck) -> str:
    ceiling = check.server.load.max
    if ceiling is None:
        return "-"
    if check.load_error is not None:
        return "failed"
    if check.load is None:
        return "n/a" if check.server.auth.method is not AuthMethod.WHM_TOKEN else "?"
    return f"{check.load:.2f} (max {ceiling:g})"


def _session(check: ServerCheck) -> str:
    if check.session_error is not None:
        return "failed"
    return {True: "ok", False: "ok, logout unanswered", None: "-"}[check.session]


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "?"}[value]


def _tls(check: ServerCheck) -> str:
    if not check.https:
        return "-"  # plain http: nothing to verify (loopback, labs)
    if check.unverified:
        return "UNVERIFIED"
    return {True: "ok", False: "failed", None: "?"}[check.tls_ok]


def _problems(problems: list[str]) -> str:
    if not problems:
        return "-"
    shown = "; ".join(sorted(problems)[:MAX_LISTED])
    more = len(problems) - MAX_LISTED
    return f"{shown} (+{more} more)" if more > 0 else shown


def _verdict(check: ServerCheck) -> str:
    if check.error is not None:
        return f"FAIL {check.error.kind}: {check.error.message}"
    if check.problems:
        return "FAIL some accounts cannot run every configured scan type"
    if check.load_error is not None:
        return (
            f"FAIL load: systemloadavg failed: {check.load_error} (a run would ignore load.max"
            " and run max_concurrent_scans)"
        )
    if check.session_error is not None:
        return (
            f"FAIL session: no cPanel session for {check.session_error} (the policy's"
            " disinfect_files could not be sent)"
        )
    if check.unverified:
        return "OK (TLS verification off: verify: false)"
    return "OK"
