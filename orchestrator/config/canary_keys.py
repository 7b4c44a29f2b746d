"""The inventory's `canary:` key (README "Canaries"): a planted test file each night must find.

    canary: {account: clamcanary, path: public_html/eicar.txt, virus: "*EICAR*"}

Set in `defaults`, a group or on a server (a server's own `canary: null` turns an inherited
one off). `path` is relative to the account's home; `scan_type` defaults to the one the path
lies in (`public_html/...` -> public_html, `mail/...` -> mail, else home).

**Which entry scans it.** A canary is a property of a host (scheme, host and port: the machine
whose clamd the night relies on). A WHM token reaches every account; a cPanel login only its
own. So the canary of an entry is scanned by the first entry on its host that can reach the
canary's account, preferring one that names the canary itself: with cPanel logins, one entry
per account, the canary account needs an entry of its own on that host (error otherwise), and
every entry of the host that names the canary is verified by it (so is the entry that scans
it). Entries of one host must name the same canary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from orchestrator.config.types import AuthMethod, Canary, Server, scan_reads
from orchestrator.config.yamlsrc import Value
from orchestrator.errors import ConfigError
from orchestrator.model import ScanType

CANARY_KEYS = ("account", "path", "virus", "scan_type")
REQUIRED = {
    "account": "the account that holds the test file",
    "path": "the test file, relative to the account's home (public_html/eicar.txt)",
}
#: The default signature glob, matched case-insensitively: ClamAV names the EICAR test file
#: `Eicar-Signature` or `Win.Test.EICAR_HDB-1` depending on the signature database.
DEFAULT_VIRUS = "*EICAR*"
ACCOUNT = re.compile(r"[A-Za-z0-9._-]+")
SUBTREES = (ScanType.MAIL, ScanType.PUBLIC_HTML, ScanType.PUBLIC_FTP)

HostKey = tuple[str, str, int]


def read_canary(value: Value) -> Canary | None:
    """One layer's `canary:` (None: `canary: null`); `by` is set by `resolve_canaries`."""
    if value.is_null:
        return None
    entries = value.mapping(CANARY_KEYS)
    for key, what in REQUIRED.items():
        if key not in entries:
            field = f"{value.field}.{key}"
            raise ConfigError(f"is required: {what}", file=value.file, line=value.line, field=field)
    account = entries["account"].text(ACCOUNT, "an account user name")
    path = _path(entries["path"])
    virus = entries["virus"].text() if "virus" in entries else DEFAULT_VIRUS
    scan_type = scan_type_of(path)
    if "scan_type" in entries:
        scan_type = entries["scan_type"].choice(ScanType)
        if not scan_reads(scan_type, path):
            raise entries["scan_type"].error(f"a {scan_type} scan does not read {path}")
    return Canary(account=account, path=path, virus=virus, scan_type=scan_type)


def _path(value: Value) -> str:
    text = value.text(what="a path relative to the account's home, like public_html/eicar.txt")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if text.startswith(("/", "~")) or ".." in parts or not parts:
        raise value.error(
            f"expected a path relative to the account's home (public_html/eicar.txt), got {text!r}"
        )
    return "/".join(parts)


def scan_type_of(path: str) -> ScanType:
    """The narrowest scan type whose scan reads `path` (relative to the home)."""
    return next((t for t in SUBTREES if path.startswith(f"{t}/")), ScanType.HOME)


def host_of(server: Server) -> HostKey:
    """(scheme, host, port): the machine a canary stands for (as cPHulk counts hosts)."""
    parts = urlsplit(server.base_url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def can_scan(server: Server, account: str) -> bool:
    return server.auth.method is AuthMethod.WHM_TOKEN or server.auth.user == account


def resolve_canaries(servers: Sequence[Server], written: Mapping[str, Value]) -> tuple[Server, ...]:
    """Every canary with the entry that scans it (`by`); that entry gets the canary too.

    `written`: each server's `canary` value (for errors naming its file and line)."""
    hosts: dict[HostKey, list[Server]] = {}
    for server in servers:
        hosts.setdefault(host_of(server), []).append(server)
    scanner: dict[HostKey, tuple[str, Canary]] = {}
    for key, entries in hosts.items():
        named = [s for s in entries if s.canary is not None]
        if not named:
            continue
        first = named[0].canary
        assert first is not None
        for other in named[1:]:
            if other.canary is not None and not other.canary.same_file(first):
                raise written[other.name].error(
                    f"entries on one host share one canary: {named[0].name} names another"
                    f" ({first.account}: {first.path}, {first.virus})"
                )
        able = [s for s in named if can_scan(s, first.account)]
        able += [s for s in entries if s.canary is None and can_scan(s, first.account)]
        if not able:
            raise written[named[0].name].error(
                f"no entry on {key[1]}:{key[2]} can scan account {first.account}: a"
                f" {AuthMethod.CPANEL_TOKEN}/{AuthMethod.CPANEL_PASSWORD} entry reaches only its"
                f" own account, so add an entry for {first.account} on this host"
            )
        scanner[key] = (able[0].name, first)
    out = []
    for server in servers:
        found = scanner.get(host_of(server))
        if found is None:
            out.append(server)
            continue
        by, canary = found
        if server.canary is None and server.name != by:
            out.append(server)  # an entry without a canary of its own (`canary: null`)
            continue
        out.append(replace(server, canary=replace(canary, by=by)))
    return tuple(out)
