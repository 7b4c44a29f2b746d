"""Inventory entries that share one host (scheme+host+port) share one budget. Pure.

With `cpanel_token` or `cpanel_password` every account is its own inventory entry, so one
cPanel server is often five, fifty entries with the same URL. The promises an inventory makes
to a server's owner are about the server, not the entry: `requests_per_second: 5` on each of
five entries must still be 5 requests per second to that machine, and `max_concurrent_scans: 2`
two clamd children on it, not ten. So entries on one host share one request rate and one scan
cap, the smallest any of them gives (the safer reading: each entry's limit holds), as they
already share the host's login verdict (client/health.py, keyed the same way). Load-aware
pacing is per host too: the load is the machine's.

    host_key(base_url)      ("https", "web01.example.com", 2083)
    shared_limits(servers)  host key -> HostLimits, for every host of the inventory
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from orchestrator.config.types import AuthMethod, LoadLimit, Server

#: (scheme, host, port): one host, as its budgets are counted.
HostKey = tuple[str, str, int]


def host_key(base_url: str) -> HostKey:
    """`https://Web01.example.com:2083` -> ("https", "web01.example.com", 2083)."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


@dataclass(frozen=True, slots=True)
class HostLimits:
    """What every entry on one host shares: the smallest rate, cap and load settings given."""

    key: HostKey
    servers: tuple[str, ...]  # the inventory entries on this host, in inventory order
    requests_per_second: float
    max_concurrent_scans: int
    load: LoadLimit  # max: the smallest of the whm_token entries' (None: no load pacing)

    @property
    def shared(self) -> bool:
        return len(self.servers) > 1

    @property
    def label(self) -> str:
        return f"{self.key[0]}://{self.key[1]}:{self.key[2]}"


def shared_limits(servers: Iterable[Server]) -> dict[HostKey, HostLimits]:
    """Every host of `servers` with the limits its entries share."""
    by_host: dict[HostKey, list[Server]] = {}
    for server in servers:
        by_host.setdefault(host_key(server.base_url), []).append(server)
    return {key: _combined(key, entries) for key, entries in by_host.items()}


def _combined(key: HostKey, entries: list[Server]) -> HostLimits:
    readers = [s for s in entries if s.auth.method is AuthMethod.WHM_TOKEN]
    ceilings = [s.load.max for s in readers if s.load.max is not None]
    paced = [s for s in readers if s.load.max is not None] or entries
    load = LoadLimit(
        max=min(ceilings) if ceilings else None,
        check_interval=min(s.load.check_interval for s in paced),
        patience=min(s.load.patience for s in paced),
        time_constant=min(s.load.time_constant for s in paced),
    )
    return HostLimits(
        key=key,
        servers=tuple(s.name for s in entries),
        requests_per_second=min(s.requests_per_second for s in entries),
        max_concurrent_scans=min(s.max_concurrent_scans for s in entries),
        load=load,
    )
