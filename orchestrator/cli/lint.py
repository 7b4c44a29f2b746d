"""What offline `clamfleet validate` shows and warns about. Pure: values in, lines out.

The warnings flag a configuration that loads but does not do what its author probably meant;
none of them changes the exit code (the file is valid), they are for review in CI.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase

from orchestrator.config import AuthMethod, Inventory, Policy, Rule, Server
from orchestrator.config.durations import format_duration
from orchestrator.config.hosts import shared_limits
from orchestrator.config.policy import WHEN_GLOBS
from orchestrator.model import Action, ScanType

#: Where cPanel keeps mail (README "Remediation policy": cleanse_mailbox only under the
#: account's mail/). A path glob that names no `mail` and matches none of these cannot be
#: meant for mail files.
MAIL_PROBES = (
    "/home/user/mail/inbox",
    "/home/user/mail/example.com/info/cur/1700000000.M1P1.host:2,S",
    "/home/user/mail/.Junk/new/1700000000.M1P1.host",
)
#: Scan types whose files can lie under mail/ (home is the whole home directory).
MAIL_SCAN_TYPES = frozenset((ScanType.HOME, ScanType.MAIL))


def server_lines(server: Server) -> list[str]:
    """Three lines per server: identity and auth, what is scanned, limits and TLS."""
    auth = server.auth
    accounts = "all" if server.accounts is None else ", ".join(server.accounts)
    excludes = ", ".join(server.exclude_accounts) or "none"
    tls = _tls(server)
    return [
        f"  {server.name}  {server.base_url}  {auth.method} as {auth.user}"
        f" ({auth.reference or 'secret'})",
        f"      accounts: {accounts}; exclude: {excludes}; suspended:"
        f" {'scanned' if server.include_suspended else 'skipped'};"
        f" scan types: {', '.join(str(t) for t in server.scan_types)}",
        f"      limits: max_concurrent_scans {server.max_concurrent_scans},"
        f" requests_per_second {server.requests_per_second:g}; TLS: {tls}",
    ]


def _tls(server: Server) -> str:
    if not server.base_url.startswith("https:"):
        return "none (plain http)"
    verify = "verify" if server.tls.verify else "NOT VERIFIED (verify: false)"
    ca = f", ca_file {server.tls.ca_file}" if server.tls.ca_file else ", system CAs"
    return verify + ca


def inventory_warnings(inventory: Inventory) -> Iterator[str]:
    for server in inventory.servers:
        if server.base_url.startswith("https:") and not server.tls.verify:
            yield (
                f"{server.name}: tls.verify is false: the certificate is not checked, so anyone"
                " on the path can read the credentials"
            )
        ca = server.tls.ca_file
        if ca is not None and not ca.is_file():
            yield f"{server.name}: tls.ca_file {ca} does not exist here (a run needs it)"
        if (overlap := home_overlap(server.scan_types)) is not None:
            yield f"{server.name}: {overlap}"


def pacing_lines(inventory: Inventory) -> list[str]:
    """What `validate` says about load-aware pacing and the window."""
    lines = []
    paced = [s for s in inventory.servers if s.load.max is not None]
    if paced:
        lines.append("load-aware: " + ", ".join(f"{s.name} (max {s.load.max:g})" for s in paced))
    blind = [s.name for s in inventory.servers if s.auth.method is not AuthMethod.WHM_TOKEN]
    if blind:
        lines.append(
            "no load reading (cPanel login, fixed max_concurrent_scans): " + ", ".join(blind)
        )
    window = inventory.settings.window
    if window.end is not None:
        lines.append(f"window: no new scan after {window.end:%H:%M} ({window.timezone})")
    if (deadline := inventory.settings.max_duration) is not None:
        lines.append(f"max_duration: no new scan after {format_duration(deadline)} of run")
    waits = {s.load.patience for s in inventory.servers if s.load.max is not None}
    if waits:
        patience = ", ".join(format_duration(p) for p in sorted(waits))
        lines.append(f"load.patience: targets the load keeps waiting {patience} are deferred")
    return lines


def host_lines(inventory: Inventory) -> list[str]:
    """Entries on one host (scheme+host+port) share its limits: what they share, combined."""
    lines = []
    for host in shared_limits(inventory.servers).values():
        if not host.shared:
            continue
        shown = ", ".join(host.servers[:5]) + (", ..." if len(host.servers) > 5 else "")
        load = f", load.max {host.load.max:g}" if host.load.max is not None else ""
        lines.append(
            f"shared host {host.label}: {len(host.servers)} entries ({shown}) share one"
            f" budget: requests_per_second {host.requests_per_second:g},"
            f" max_concurrent_scans {host.max_concurrent_scans}{load} (the smallest given)"
        )
    return lines


def load_warnings(inventory: Inventory) -> Iterator[str]:
    """A `load.max` that cannot mean what was meant: under 1 (one scan alone is ~1 of load), or
    above what the scan cap can ever add (often a percentage written where a load belongs)."""
    for server in inventory.servers:
        ceiling, cap = server.load.max, server.max_concurrent_scans
        if ceiling is None:
            continue
        if ceiling < 1:
            yield (
                f"{server.name}: load.max {ceiling:g} is under 1: one scan alone adds about 1"
                " to the load, so the server is over max as soon as anything runs. load.max is"
                " a load average, not a share: 75 % of 4 cores is 3"
            )
        elif ceiling > cap:
            yield (
                f"{server.name}: load.max {ceiling:g} is above what max_concurrent_scans {cap}"
                f" can add (each scan is about 1 of load): it holds scans back only while the"
                f" server's own load is over {ceiling - cap:g}. load.max is a load average, not"
                " a percentage: 75 % of 4 cores is 3"
            )


def home_overlap(scan_types: Iterable[ScanType]) -> str | None:
    """`home` already contains mail/, public_html/ and public_ftp/: scanning it and one of them
    reads those files twice (the account's scans run one after another, so it costs time)."""
    types = list(scan_types)
    inner = [str(t) for t in types if t is not ScanType.HOME]
    if ScanType.HOME not in types or not inner:
        return None
    return (
        f"scan_types home and {', '.join(inner)}: home already contains "
        f"{', '.join(t + '/' for t in inner)}, so those files are scanned twice per account "
        "(one scan per account at a time: each account takes that much longer; a file found "
        "twice is reported and disinfected once). Scan home alone, or drop home"
    )


def policy_warnings(policy: Policy) -> Iterator[str]:
    """Rules that can never match what they were written for."""
    for index, rule in enumerate(policy.rules):
        label = _label(index, rule)
        if rule.action is Action.CLEANSE_MAILBOX:
            yield from _mail_warnings(label, rule)
        for earlier_index, earlier in enumerate(policy.rules[:index]):
            if _catches_all(earlier, rule.scan_type):
                yield (
                    f"{label} never applies: {_label(earlier_index, earlier)} before it matches"
                    " every file (first match wins)"
                )
                break


def _label(index: int, rule: Rule) -> str:
    return f"rules[{index}]" + (f" ({rule.name})" if rule.name else "")


def _mail_warnings(label: str, rule: Rule) -> Iterator[str]:
    if rule.scan_type is not None and rule.scan_type not in MAIL_SCAN_TYPES:
        yield (
            f"{label}: cleanse_mailbox can never apply with scan_type {rule.scan_type}:"
            " that scan never sees mail/"
        )
    elif rule.path is not None and not could_be_mail(rule.path):
        yield (
            f"{label}: cleanse_mailbox can never apply: path {rule.path!r} matches no file"
            " under mail/"
        )


def could_be_mail(glob: str) -> bool:
    """Whether a path glob may match files under an account's mail/ directory."""
    return "mail" in glob or any(fnmatchcase(probe, glob) for probe in MAIL_PROBES)


def _catches_all(rule: Rule, scan_type: ScanType | None) -> bool:
    """Whether `rule` matches every file a later rule for `scan_type` could see."""
    globs = (getattr(rule, key) for key in WHEN_GLOBS)
    if any(glob is not None and glob.strip("*") for glob in globs):
        return False
    return rule.scan_type is None or rule.scan_type is scan_type
