"""What an inventory promised the owner of each simulated server: the referee's limits.

Each simulated server is one host (its own 127.0.0.1 port). An inventory may point several
entries at one host: with `cpanel_token` / `cpanel_password` every account is an entry of its
own. They are one owner's one machine, so they share ONE promise (the contract: entries on
one host share its request rate and scan cap as well as its login budget), and the referee
combines them (`ServerRules.combine`), the stricter reading where the notes are silent:

- `requests_per_second`: the smallest among the host's entries (an entry that leaves it out
  has the inventory's default, 5);
- `max_concurrent_scans`: likewise the smallest (default 2): the `host-scan-cap` rule, which
  clamfleet keeps (its entries on one host share one cap). `SHARED_SCAN_CAP` (on) can be
  turned off for a fleet (`shared_scan_cap=False`) to judge each entry's own cap instead (the
  sum), the looser reading a client that caps entries apart would need;
- exclusions and `include_suspended` stay each entry's own: an account is excluded when every
  entry that reaches it (`accounts: all`, or a list naming it) excludes it, and a suspended one
  may be asked for when one entry that reaches it says `include_suspended: true`.

An entry's keys are resolved as the inventory does it: `defaults:`, then the entry's `groups:`
in order, then its own keys. Its host is its `url` (or `host` and `port`), matched to the
simulated servers by host and port; an entry on no simulated server is not this fleet's.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: the inventory's defaults of the keys the referee learns (inventory.example.yaml)
DEFAULT_SERVER_RPS = 5.0
DEFAULT_SCANS = 2
DEFAULT_FLEET_RPS = 100.0
#: Whether a fleet judges a host's entries' scan caps as one (the smallest) by default, or each
#: entry's own (their sum): see the module docstring.
SHARED_SCAN_CAP = True


@dataclass(frozen=True, slots=True)
class Scope:
    """One inventory entry's reach among a host's accounts."""

    accounts: tuple[str, ...] | None = None  # None: `accounts: all`
    exclude_accounts: tuple[str, ...] = ()
    include_suspended: bool = False

    def reaches(self, account: str) -> bool:
        return self.accounts is None or account in self.accounts

    def excludes(self, account: str) -> bool:
        return any(fnmatch.fnmatchcase(account, p) for p in self.exclude_accounts)


@dataclass(frozen=True, slots=True)
class ServerRules:
    """What the inventory promised for one server (host). None: not learned (not checked)."""

    requests_per_second: float | None = None
    exclude_accounts: tuple[str, ...] = ()
    include_suspended: bool = False
    max_concurrent_scans: int | None = None
    #: the host's entries when `combine`d (then the two fields above are unused)
    scopes: tuple[Scope, ...] = ()

    @classmethod
    def from_inventory(cls, keys: Mapping[str, Any]) -> ServerRules:
        """From one server entry's keys, with the inventory defaults for missing ones."""
        return cls(
            float(keys.get("requests_per_second", DEFAULT_SERVER_RPS)),
            tuple(str(p) for p in keys.get("exclude_accounts") or ()),
            bool(keys.get("include_suspended", False)),
            int(keys.get("max_concurrent_scans", DEFAULT_SCANS)),
        )

    @classmethod
    def combine(
        cls, entries: Sequence[Mapping[str, Any]], *, shared_scan_cap: bool = True
    ) -> ServerRules:
        """One host's promise from the keys of every entry on it (module docstring);
        `shared_scan_cap` False: the entries' caps add up instead."""
        each = [cls.from_inventory(keys) for keys in entries]
        if not each:
            return cls()
        scopes = tuple(
            Scope(_accounts(keys), rules.exclude_accounts, rules.include_suspended)
            for keys, rules in zip(entries, each, strict=True)
        )
        caps = [r.max_concurrent_scans or DEFAULT_SCANS for r in each]
        return cls(
            requests_per_second=min(r.requests_per_second or DEFAULT_SERVER_RPS for r in each),
            max_concurrent_scans=min(caps) if shared_scan_cap else sum(caps),
            scopes=scopes,
        )

    def excludes(self, account: str) -> bool:
        if not self.scopes:
            return Scope(None, self.exclude_accounts).excludes(account)
        reaching = [s for s in self.scopes if s.reaches(account)]
        return bool(reaching) and all(s.excludes(account) for s in reaching)

    def allows_suspended(self, account: str) -> bool:
        if not self.scopes:
            return self.include_suspended
        return any(s.reaches(account) and s.include_suspended for s in self.scopes)


def _accounts(keys: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = keys.get("accounts", "all")
    if isinstance(value, list | tuple):
        return tuple(str(a) for a in value)
    auth = keys.get("auth") or {}
    if isinstance(auth, Mapping) and auth.get("method") in ("cpanel_token", "cpanel_password"):
        return (str(auth.get("user", "")),)  # such an entry reaches exactly its own account
    return None


def _host(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return (parts.hostname or "").lower(), parts.port


def _entry_host(keys: Mapping[str, Any]) -> tuple[str, int | None]:
    if keys.get("url"):
        return _host(str(keys["url"]))
    port = keys.get("port")
    return str(keys.get("host", "")).lower(), int(port) if port is not None else None


def resolved_entries(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every server entry's keys with `defaults:` and its `groups:` applied, in order."""
    defaults = document.get("defaults") or {}
    groups = document.get("groups") or {}
    out = []
    for entry in document.get("servers") or ():
        keys: dict[str, Any] = dict(defaults)
        for group in entry.get("groups") or ():
            keys.update(groups.get(group) or {})
        keys.update(entry)
        out.append(keys)
    return out


def host_rules(
    document: Mapping[str, Any], urls: Mapping[str, str], *, shared_scan_cap: bool = True
) -> dict[str, ServerRules]:
    """Each simulated server's combined promise in an inventory document (servers no entry
    points at promised nothing: ServerRules())."""
    by_host = {_host(url): name for name, url in urls.items()}
    found: dict[str, list[dict[str, Any]]] = {}
    for keys in resolved_entries(document):
        name = by_host.get(_entry_host(keys))
        if name is not None:
            found.setdefault(name, []).append(keys)
    return {
        name: ServerRules.combine(found.get(name, []), shared_scan_cap=shared_scan_cap)
        for name in urls
    }


def fleet_rate(document: Mapping[str, Any]) -> float:
    """settings.requests_per_second, with the inventory's default."""
    settings = document.get("settings") or {}
    return float(settings.get("requests_per_second", DEFAULT_FLEET_RPS))
