"""`clamfleet validate INVENTORY --check-api`: does each server answer the way clamfleet assumes?

Every assumption clamfleet makes about cPanel's answers (client/assumptions.py, the README's
list) is checked against each server and printed as one row: holds, differs (with what was
seen) or could not check (with why); `not used` marks what this server's route never relies
on. Read-only requests only, through the same client, limits and error mapping as a run:

    whm_token        listaccts, systemloadavg, then as one account (the canary if named, else
                     the first a run would scan): get_scan_paths, get_scan_status (up to
                     STATUS_SAMPLE accounts until one has a status), check_disinfection_status,
                     and get_scan_paths again inside a create_user_session session
    cpanel login     the same ClamScanner reads as the account itself

What needs a scan (the refusal text, the stale status, the infected list, disinfection records)
is checked only with `--canary-account NAME --scan-canary` (probe_canary.py), else it is
"could not check". Exit 0 only when every relied-on assumption holds on every server, else 2:
"could not check" is no proof, and a zero exit must mean "verified". A server that cannot be
probed (credentials refused, unreachable, TLS) says so in its heading, and its rows say why.
`--record DIR` writes each server's exchanges without secrets (probe_record.py).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio

from orchestrator.cli import probe_canary, probe_record
from orchestrator.client import Http, RetryPolicy, ServerClient
from orchestrator.client.answer_checks import (
    check_disinfection_status,
    check_envelope,
    check_listaccts,
    check_loadavg,
    check_scan_paths,
    check_scan_status,
    check_session,
)
from orchestrator.client.assumptions import ASSUMPTIONS, BY_KEY, Finding, Verdict, unchecked
from orchestrator.client.health import Hosts
from orchestrator.client.parse import Answer, parse_accounts, uapi_data
from orchestrator.client.transcript import Exchange
from orchestrator.config import AuthMethod, Inventory, Server
from orchestrator.engine.limiter import FleetLimits
from orchestrator.engine.targets import account_skip, expected_accounts
from orchestrator.errors import ApiError, AuthError, ConfigError, ProtocolError, TargetError
from orchestrator.log import redact_text
from orchestrator.model import EXIT_CLEAN, EXIT_INCOMPLETE, ErrorInfo, ErrorKind

#: Accounts whose get_scan_status is read until one has a status object.
STATUS_SAMPLE = 3
NEEDS_CANARY = "needs a canary scan: --scan-canary (the inventory's canary, or --canary-account)"


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    canary: str | None = None  # --canary-account (else each server's inventory `canary`)
    scan_canary: bool = False  # --scan-canary: start_scan (and an ignore-only disinfection)
    record: Path | None = None
    redact_hosts: bool = False


@dataclass(slots=True)
class ServerProbe:
    """What the probe found on one server."""

    server: Server
    account: str | None = None
    findings: dict[str, Finding] = field(default_factory=dict)
    error: ErrorInfo | None = None  # why the probe stopped early (auth, unreachable, ...)
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def whm(self) -> bool:
        return self.server.auth.method is AuthMethod.WHM_TOKEN

    def add(self, finding: Finding) -> None:
        """A finding; a later one replaces only a "could not check" (a canary's status)."""
        known = self.findings.get(finding.key)
        if known is None or known.verdict is Verdict.UNCHECKED:
            self.findings[finding.key] = finding

    def rows(self, options: ProbeOptions) -> list[Finding]:
        """One finding per assumption, in the catalogue's order, the missing ones explained."""
        return [self.findings.get(a.key) or self._missing(a.key, options) for a in ASSUMPTIONS]

    def _missing(self, key: str, options: ProbeOptions) -> Finding:
        assumption = BY_KEY[key]
        if assumption.whm_only and not self.whm:
            return Finding(key, Verdict.NOT_USED, "this entry logs in to cPanel itself")
        if self.error is not None:
            return unchecked(key, f"the probe stopped: {self.error.kind}")
        if assumption.needs_scan and not options.scan_canary:
            return unchecked(key, NEEDS_CANARY)
        if self.account is None:
            return unchecked(key, "no account a run would scan on this server to read as")
        return unchecked(key, "not reached")

    def passed(self, options: ProbeOptions) -> bool:
        return all(f.verdict in (Verdict.HOLDS, Verdict.NOT_USED) for f in self.rows(options))


def options_of(args: argparse.Namespace) -> ProbeOptions:
    """The probe's flags; each needs --check-api, --scan-canary the account it may scan."""
    for flag, value in (
        ("--record", args.record),
        ("--redact-hosts", args.redact_hosts),
        ("--canary-account", args.canary_account),
        ("--scan-canary", args.scan_canary),
    ):
        if value and not args.check_api:
            raise ConfigError(f"{flag} needs --check-api", field=flag)
    if args.redact_hosts and args.record is None:
        raise ConfigError("--redact-hosts needs --record DIR", field="--redact-hosts")
    return ProbeOptions(args.canary_account, args.scan_canary, args.record, args.redact_hosts)


def check_api(
    inventory: Inventory,
    options: ProbeOptions,
    *,
    out: TextIO | None = None,
    retry: RetryPolicy | None = None,
) -> int:
    """Probe every server, print its rows; write transcripts if asked; 0 when all hold, else 2."""
    probes = anyio.run(probe_fleet, inventory, options, retry or RetryPolicy.for_checks())
    stream = out or sys.stdout
    stream.write(render(probes, options) + "\n")
    if options.record is not None:
        paths = probe_record.write(options.record, probes, inventory, options.redact_hosts)
        stream.write(f"transcripts: {len(paths)} file(s) in {options.record}\n")
    passed = sum(p.passed(options) for p in probes)
    stream.write(f"{passed} of {len(probes)} servers: every assumption holds\n")
    return EXIT_CLEAN if passed == len(probes) else EXIT_INCOMPLETE


async def probe_fleet(
    inventory: Inventory, options: ProbeOptions, retry: RetryPolicy
) -> list[ServerProbe]:
    """Every server concurrently, at most max_concurrent_servers at once, within its rate."""
    limits = FleetLimits(inventory.settings)
    probes = [ServerProbe(server) for server in inventory.servers]
    by_name = {p.server.name: p for p in probes}

    def record(exchange: Exchange) -> None:
        by_name[exchange.server].exchanges.append(exchange)

    recorder = record if options.record is not None else None
    http = Http(
        request_timeout=inventory.settings.timeouts.request,
        recorder=recorder,
        hosts=Hosts.for_checks(),
    )
    async with http, anyio.create_task_group() as tg:
        for probe in probes:
            tg.start_soon(_probe_server, http, limits, probe, options, retry, inventory)
    return probes


async def _probe_server(
    http: Http,
    limits: FleetLimits,
    probe: ServerProbe,
    options: ProbeOptions,
    retry: RetryPolicy,
    inventory: Inventory,
) -> None:
    server = probe.server
    async with limits.servers:
        client = ServerClient(http, server, limits.gate_for(server), retry)
        try:
            accounts = await _accounts(client, probe, options)
            if accounts:
                probe.account = accounts[0]
                await _read_only(client, probe, accounts)
                if options.scan_canary:
                    await _canary(client, probe, options, inventory)
        except TargetError as exc:
            probe.error = ErrorInfo(exc.kind, redact_text(str(exc)))
        except Exception as exc:  # a bug here is one server's verdict, not a traceback
            probe.error = ErrorInfo(ErrorKind.INTERNAL, redact_text(f"{type(exc).__name__}: {exc}"))


async def _accounts(client: ServerClient, probe: ServerProbe, options: ProbeOptions) -> list[str]:
    """The accounts to read as (the canary first when it is one); WHM-only rows on the way."""
    server = probe.server
    if not probe.whm:
        return list(expected_accounts(server) or ())
    answer = await client.whm_answer("listaccts", {"api.version": "1", "want": LISTACCTS_WANT})
    probe.add(check_listaccts(answer))
    probe.add(check_loadavg(await client.whm_answer("systemloadavg", {"api.version": "1"})))
    try:
        listed = {a.user: a for a in parse_accounts(answer)}
    except ProtocolError:
        return []  # the listaccts row says what differs; nothing to read as
    names = list(listed) if server.accounts is None else list(server.accounts)
    wanted = [n for n in names if account_skip(server, n, listed) is None]
    canary = canary_account(server, options)
    if canary in wanted:
        wanted.remove(canary)
        wanted.insert(0, canary)
    return wanted


def canary_account(server: Server, options: ProbeOptions) -> str | None:
    """The account the probe may scan on this server: `--canary-account`, else the account of
    the server's inventory `canary` (the planted test file each night must find)."""
    if options.canary is not None:
        return options.canary
    return None if server.canary is None else server.canary.account


LISTACCTS_WANT = "user,domain,suspended,diskused"


async def _read_only(client: ServerClient, probe: ServerProbe, accounts: list[str]) -> None:
    account = accounts[0]
    answer = await client.read_answer(account, "get_scan_paths")
    probe.add(check_envelope(answer, whm=probe.whm))
    data, why = unwrapped(probe, answer, "get_scan_paths")
    probe.add(check_scan_paths(data) if why is None else unchecked("scan-paths", why))
    for name in accounts[:STATUS_SAMPLE]:
        answer = await client.read_answer(name, "get_scan_status")
        data, why = unwrapped(probe, answer, "get_scan_status")
        probe.add(check_scan_status(data) if why is None else unchecked("scan-status", why))
        if probe.findings["scan-status"].verdict is not Verdict.UNCHECKED:
            break
    answer = await client.read_answer(account, "check_disinfection_status")
    data, why = unwrapped(probe, answer, "check_disinfection_status")
    finding = check_disinfection_status(data) if why is None else None
    probe.add(finding or unchecked("disinfection-status", why or ""))
    if probe.whm:
        probe.add(await _session(client, account))


async def _session(client: ServerClient, account: str) -> Finding:
    try:
        answer = await client.session_answer(account, "get_scan_paths")
    except ApiError as exc:
        return unchecked("session", f"WHM refused create_user_session: {exc}")
    except AuthError as exc:
        if exc.http_status is not None:
            raise  # credentials refused: the server's probe ends here
        return Finding("session", Verdict.DIFFERS, str(exc))
    except ProtocolError as exc:
        return Finding("session", Verdict.DIFFERS, str(exc))
    return check_session(answer)


async def _canary(
    client: ServerClient, probe: ServerProbe, options: ProbeOptions, inventory: Inventory
) -> None:
    server = probe.server
    canary = canary_account(server, options)
    why = canary_refusal(probe, canary)
    if why is not None:
        for assumption in ASSUMPTIONS:
            if assumption.needs_scan:
                probe.add(unchecked(assumption.key, why))
        return
    assert canary is not None
    planted = server.canary
    # the inventory's canary names the scan type that reads its file; else the server's first
    use = planted is not None and planted.account == canary
    scan_type = planted.scan_type if use and planted is not None else server.scan_types[0]
    limits = probe_canary.Limits.of(inventory.settings)
    await probe_canary.run(client, canary, scan_type, limits, probe.add)


def canary_refusal(probe: ServerProbe, canary: str | None) -> str | None:
    """Why the canary scan is not run on this server (None: it is)."""
    if canary is None:
        return "no canary: give the server an inventory `canary`, or --canary-account NAME"
    if probe.account != canary:
        if probe.whm:
            return f"no account {canary} a run would scan on this server"
        return f"this entry logs in as {probe.server.auth.user}, not as the canary {canary}"
    if probe.findings["envelope"].verdict is not Verdict.HOLDS:
        return "the answers' envelope differs (see envelope)"
    return None


def unwrapped(probe: ServerProbe, answer: Answer, function: str) -> tuple[Any, str | None]:
    """The call's `data` as every run reads it, or why there is none to check."""
    try:
        return uapi_data(answer, probe.server.name, function, whm=probe.whm), None
    except ProtocolError:
        return None, "the answer's envelope differs (see envelope)"
    except ApiError as exc:
        return None, f"{function} refused: {exc}"


# ---------------------------------------------------------------------------------------------
# The rows


def render(probes: list[ServerProbe], options: ProbeOptions) -> str:
    """Per server a heading, then one row per assumption; the claim under each that differs."""
    lines = []
    width = max(len(a.key) for a in ASSUMPTIONS)
    for probe in probes:
        lines.append(_heading(probe))
        for finding in probe.rows(options):
            detail = f"  {finding.detail}" if finding.detail else ""
            lines.append(f"  {finding.key:<{width}}  {finding.verdict.upper()}{detail}")
            if finding.verdict is Verdict.DIFFERS:
                lines.append(f"    assumed: {BY_KEY[finding.key].claim}")
                lines.append(f"    clamfleet then: {BY_KEY[finding.key].if_differs}")
    return "\n".join(lines)


def _heading(probe: ServerProbe) -> str:
    server = probe.server
    head = f"{server.name}  {server.base_url}  {server.auth.method}"
    if probe.account is not None:
        head += f"  as {probe.account}"
    if probe.error is not None:
        head += f"  FAIL {probe.error.kind}: {probe.error.message}"
    return head
