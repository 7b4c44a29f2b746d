"""Which targets a run scans on a server, which it skips and why, and in what order it starts them.

Pure: the resolved server, the account list (listaccts, when the server has one) and the run's
options in; targets, skip verdicts and a start order out. The runner, `validate` and the live
progress all ask here, so there is one copy of each rule:

- an account matching `exclude_accounts` is skipped (the pattern is the reason);
- with an account list: an account it does not know is failed (`api`), a suspended one skipped
  unless `include_suspended`;
- when the account list itself could not be read, the server is one failed row per scan type,
  account `*` (`accounts: all` cannot be expanded, and a server must not vanish from a report);
- `--only-failed` keeps only the targets it names (and every account of a server listed as `*`);
- the canary (README "Canaries"): on the entry that scans it, the canary account's own target
  whose scan type reads the test file (home reads all), else one added for it (first in the
  server's rows); `--only-failed` keeps it for a server it rescans anything of (tonight's clean
  verdicts need tonight's canary), and it starts first. The canary account is skipped like any
  other when it is excluded or suspended (then nothing proves the server's clean verdicts).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from orchestrator.client.parse import Account
from orchestrator.config import AuthMethod, Server
from orchestrator.model import ErrorInfo, ErrorKind, ScanType, Status, Target, TargetResult

ALL_ACCOUNTS = "*"


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a target of the inventory is not scanned, as its report row says it."""

    kind: ErrorKind
    message: str
    status: Status

    def result(self, target: Target) -> TargetResult:
        return TargetResult(target, self.status, error=ErrorInfo(self.kind, self.message))


@dataclass(frozen=True, slots=True)
class Selection:
    """A server's targets in report (inventory) order, and those of them not to scan."""

    targets: tuple[Target, ...]
    skips: Mapping[Target, Skip] = field(default_factory=dict)
    #: account -> disk use in MiB (listaccts `diskused`), where the server reported it
    sizes: Mapping[str, float] = field(default_factory=dict)
    #: the target whose scan must find the server's canary (None: it scans none)
    canary: Target | None = None

    def to_scan(self) -> tuple[Target, ...]:
        return tuple(t for t in self.targets if t not in self.skips)


def scan_types_of(server: Server, override: tuple[ScanType, ...] | None) -> tuple[ScanType, ...]:
    """`--scan-type` wins over the inventory."""
    return override or server.scan_types


def excluded_by(server: Server, name: str) -> str | None:
    """The `exclude_accounts` pattern that excludes this account, if any."""
    return next((p for p in server.exclude_accounts if fnmatch.fnmatchcase(name, p)), None)


def account_skip(server: Server, name: str, listed: Mapping[str, Account] | None) -> Skip | None:
    """Why an account is not scanned (None: it is). `listed`: None when there is no list."""
    if (pattern := excluded_by(server, name)) is not None:
        return Skip(ErrorKind.SKIPPED, f"excluded by exclude_accounts: {pattern}", Status.SKIPPED)
    if listed is None:
        return None
    account = listed.get(name)
    if account is None:
        return Skip(ErrorKind.API, "no such account on this server (listaccts)", Status.FAILED)
    if account.suspended and not server.include_suspended:
        return Skip(ErrorKind.SKIPPED, "account is suspended", Status.SKIPPED)
    return None


def inventory_accounts(server: Server) -> tuple[str, ...] | None:
    """The accounts the inventory names for this server; None: `accounts: all` (listaccts)."""
    if server.accounts is not None:
        return server.accounts
    if server.auth.method is not AuthMethod.WHM_TOKEN:
        return (server.auth.user,)
    return None


def expected_accounts(server: Server) -> tuple[str, ...] | None:
    """The accounts a run will scan, as far as the inventory alone can tell (None: unknown)."""
    names = inventory_accounts(server)
    if names is None:
        return None
    return tuple(n for n in names if excluded_by(server, n) is None)


def select(
    server: Server,
    scan_types: tuple[ScanType, ...],
    listed: Iterable[Account] | None,
    only: Collection[Target] | None = None,
) -> Selection:
    """The server's targets. `listed`: listaccts' answer (None: the server has no list)."""
    by_user = None if listed is None else {a.user: a for a in listed}
    names = inventory_accounts(server)
    if names is None:
        names = tuple(by_user or ())
    rows = tuple(Target(server.name, n, st) for n in names for st in scan_types)
    canary = canary_target(server, rows)
    if canary is not None and canary not in rows:
        rows = (canary, *rows)
    targets = only_failed(rows, only, keep=canary)
    skips = {}
    for target in targets:
        if (skip := account_skip(server, target.account, by_user)) is not None:
            skips[target] = skip
    sizes = {
        a.user: a.disk_used_mib for a in (by_user or {}).values() if a.disk_used_mib is not None
    }
    return Selection(targets, skips, sizes, canary)


def canary_target(server: Server, rows: Iterable[Target]) -> Target | None:
    """The target that must find the canary this server scans (None: it scans none): the
    account's own first row whose scan type reads the file, else one of the canary's type."""
    canary = server.canary
    if canary is None or canary.by != server.name:
        return None
    own = (t for t in rows if t.account == canary.account and canary.read_by(t.scan_type))
    return next(own, Target(server.name, canary.account, canary.scan_type))


def unlisted(
    server: Server, scan_types: tuple[ScanType, ...], only: Collection[Target] | None = None
) -> tuple[Target, ...]:
    """The rows of a server whose account list could not be read (account `*` for `all`)."""
    accounts = inventory_accounts(server) or (ALL_ACCOUNTS,)
    rows = tuple(Target(server.name, a, st) for a in accounts for st in scan_types)
    return only_failed(rows, only)


def only_failed(
    targets: tuple[Target, ...], only: Collection[Target] | None, keep: Target | None = None
) -> tuple[Target, ...]:
    """With --only-failed: the targets it names, and every account of a server whose account
    list could not be read last time (reported as account `*`); and `keep` (the server's
    canary) when any other target of the server is kept: tonight's clean verdicts need
    tonight's canary."""
    if only is None:
        return targets
    kept = tuple(
        t for t in targets if t in only or Target(t.server, ALL_ACCOUNTS, t.scan_type) in only
    )
    if keep is None or keep in kept or not kept:
        return kept
    return tuple(t for t in targets if t in kept or t == keep)


def start_order(
    targets: Iterable[Target],
    sizes: Mapping[str, float],
    first: Collection[str] = (),
    lead: Target | None = None,
) -> list[Target]:
    """The order a server's targets start in.

    1. Accounts in `first` (a resumed run's scans in flight: they are running at the server
       already, so they take the lanes before anything new starts there);
    2. then `lead`, the canary's target: the night's proof of detection comes first;
    3. then the largest accounts (listaccts' disk use): a scan's duration grows with the
       account's size, and a server's run ends with its last scan, so the longest scans start
       first (the longest-processing-time rule);
    4. else inventory order. The sort is stable, so an account's scan types stay together and
       in their inventory order: they run back to back (see lanes.AccountQueue).
    """
    return sorted(
        targets,
        key=lambda t: (t.account not in first, t != lead, -sizes.get(t.account, 0.0)),
    )
