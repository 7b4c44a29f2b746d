"""What offline `clamfleet validate` shows and warns about. Pure: values in, lines out.

The warnings flag a configuration that loads but does not do what its author probably meant;
none of them changes the exit code (the file is valid), they are for review in CI.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

import yaml

from orchestrator.config import AuthMethod, Inventory, Policy, Rule, Server
from orchestrator.config.durations import format_duration
from orchestrator.config.hosts import shared_limits
from orchestrator.config.when import WHEN_GLOBS
from orchestrator.engine.targets import excluded_by, expected_accounts
from orchestrator.model import Action, ScanType

#: Where cPanel keeps mail (README "Remediation policy": cleanse_mailbox only under the
#: account's mail/). A path glob that names no `mail` and matches none of these cannot be
#: meant for mail files. Maildir has cur/, new/ and tmp/ under each mailbox (and folders as
#: `.Name/`), mbox a file per folder.
MAIL_PROBES = (
    "/home/user/mail/inbox",
    "/home/user/mail/example.com/info/cur/1700000000.M1P1.host:2,S",
    "/home/user/mail/example.com/info/new/1700000000.M1P1.host",
    "/home/user/mail/example.com/info/tmp/1700000000.M1P1.host",
    "/home/user/mail/.Junk/new/1700000000.M1P1.host",
)

#: About what one target costs in requests (bench/RESULTS.md: 8.3 per target for 600-s scans).
CALLS_PER_TARGET = 8
#: A night: a server (or the fleet) whose request rate cannot serve its targets' requests in
#: this long is throttled below any use.
NIGHT_SECONDS = 12 * 3600.0
#: A 1-minute load average an idle server rarely reads under: a `load.max` below it keeps every
#: scan waiting.
#: The longest load average (15 min): read less often than this, the load tells pacing nothing
#: about the moment it decides in.
SLOWEST_USEFUL_CHECK = 900.0
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
        if (excluded := _canary_excluded(server)) is not None:
            yield f"{server.name}: {excluded}"


def _canary_excluded(server: Server) -> str | None:
    canary = server.canary
    if canary is None or canary.by != server.name:
        return None
    pattern = next((p for p in server.exclude_accounts if fnmatchcase(canary.account, p)), None)
    if pattern is None:
        return None
    return (
        f"the canary account {canary.account} is excluded by exclude_accounts ({pattern}): it"
        " is never scanned, so no clean verdict of this server is ever proven"
    )


def limit_warnings(inventory: Inventory) -> Iterator[str]:
    """Limits that load, but leave a server unable to do its work: a request rate that cannot
    serve its targets in a night, a load read so rarely it says nothing (a `load.max` that
    cannot mean what was meant: `load_warnings`)."""
    settings = inventory.settings
    total = 0
    for server in inventory.servers:
        targets = _targets_at_least(server)
        total += targets
        if (slow := _too_slow(server.requests_per_second, targets)) is not None:
            yield f"{server.name}: requests_per_second {server.requests_per_second:g}: {slow}"
        load = server.load
        if load.max is None:
            continue
        if load.check_interval > SLOWEST_USEFUL_CHECK:
            yield (
                f"{server.name}: load.check_interval {_span(load.check_interval)}: the load"
                f" would be read that rarely (even the 15-minute average moves faster), so"
                " pacing decides on stale readings; the default is 30s"
            )
    fleet_rps = settings.requests_per_second
    if (slow := _too_slow(fleet_rps, total)) is not None:
        yield f"settings.requests_per_second {fleet_rps:g} (the whole fleet): {slow}"


def _targets_at_least(server: Server) -> int:
    """How many targets the server has at least (an `accounts: all` list counts as one)."""
    accounts = len(server.accounts) if server.accounts is not None else 1
    return max(accounts, 1) * len(server.scan_types)


def _too_slow(rps: float, targets: int) -> str | None:
    if rps <= 0:
        return None  # rejected by the loader; nothing to add
    needed = targets * CALLS_PER_TARGET / rps
    if needed <= NIGHT_SECONDS:
        return None
    return (
        f"one request every {_span(1 / rps)}; at about {CALLS_PER_TARGET} requests a target,"
        f" {targets} target(s) need at least {_span(needed)}"
    )


def _span(seconds: float) -> str:
    """A rough human length: 45s, 12m, 5h, 11.6 days."""
    if seconds < 60:
        return f"{seconds:.3g}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:,.1f} days"


def account_name_warnings(inventory: Inventory) -> Iterator[str]:
    """Account names that cannot be what was meant: cPanel user names are lowercase (a name
    with a capital matches no account, and as a cPanel login it is a refused login that cPHulk
    counts); two names that differ only in case; one account named by two entries of the same
    host (scanned, and acted on, twice)."""
    for server in inventory.servers:
        names = [*(server.accounts or ()), *server.exclude_accounts]
        if server.auth.method is not AuthMethod.WHM_TOKEN:
            names.append(server.auth.user)
        by_lower: dict[str, list[str]] = {}
        for name in dict.fromkeys(names):
            by_lower.setdefault(name.lower(), []).append(name)
        for variants in by_lower.values():
            if len(variants) > 1:
                yield (
                    f"{server.name}: account names {' and '.join(variants)} differ only in case:"
                    " cPanel user names are lowercase, so only one can be an account"
                )
            elif variants[0] != variants[0].lower():
                yield (
                    f"{server.name}: account name {variants[0]} has capitals: cPanel user names"
                    f" are lowercase, so it matches no account (did you mean"
                    f" {variants[0].lower()}?)"
                )
    yield from _same_account_twice(inventory.servers)


def _same_account_twice(servers: Iterable[Server]) -> Iterator[str]:
    """An account two entries of one host both scan (an `accounts: all` entry scans every
    account it does not exclude)."""
    seen: dict[tuple[str, str], str] = {}
    every: dict[str, list[Server]] = {}  # host -> its `accounts: all` entries
    named: list[tuple[Server, str, str]] = []
    for server in servers:
        host = (urlsplit(server.base_url).hostname or "").lower()
        names = expected_accounts(server)
        if names is None:
            every.setdefault(host, []).append(server)
            continue
        # a name with capitals is no account at all (warned above)
        named += [(server, host, name) for name in names if name == name.lower()]
    for server, host, name in named:
        first = seen.setdefault((host, name), server.name)
        also = [first] if first != server.name else []
        also += [s.name for s in every.get(host, ()) if excluded_by(s, name) is None]
        if also:
            yield (
                f"{server.name}: account {name} on {host} is also scanned by {also[0]}: each"
                " entry scans it and acts on its files, so it is scanned by both"
            )


def listed_twice(document: yaml.Node | None, file: str) -> Iterator[str]:
    """Names an `accounts:` or `exclude_accounts:` list of the YAML gives more than once (the
    loader keeps one, silently: perhaps another account was meant)."""
    if document is None:
        return
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if (
                    isinstance(key, yaml.ScalarNode)
                    and key.value in ("accounts", "exclude_accounts")
                    and isinstance(value, yaml.SequenceNode)
                ):
                    yield from _repeats(value, key.value, file)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _repeats(node: yaml.SequenceNode, key: str, file: str) -> Iterator[str]:
    seen: set[str] = set()
    for item in node.value:
        if not isinstance(item, yaml.ScalarNode):
            continue
        if item.value in seen:
            line = item.start_mark.line + 1
            yield f"{file}:{line}: {key} lists {item.value} twice (one is kept)"
        seen.add(item.value)


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
