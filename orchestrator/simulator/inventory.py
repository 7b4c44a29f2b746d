"""The inventory (README "Inventory") matching a running simulated fleet; secrets by env var.

With `cpanel_token` / `cpanel_password` every account is an entry of its own, all on their
server's one URL: one host, whose entries share one rate and one scan cap, the smallest they
give (the referee learns the document written: promises.py). The keys given are written into
every entry alike, so the shared promise is those keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from orchestrator.simulator.load import TAUS
from orchestrator.simulator.spec import AccountSpec, FleetSpec, ServerSpec

LOAD_TAU = TAUS[0]  # the 1-minute average's time constant, simulated seconds

AUTHS = ("whm", "cpanel_token", "cpanel_password")


def env_name(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Z0-9]", "_", p.upper()) for p in ("CLAMFLEET", *parts))


def whm_var(server: ServerSpec) -> str:
    return env_name(server.name, "TOKEN")


def account_var(server: ServerSpec, account: AccountSpec, kind: str) -> str:
    return env_name(server.name, account.user, kind)


def all_secrets(spec: FleetSpec) -> dict[str, str]:
    env: dict[str, str] = {}
    for server in spec.servers:
        env[whm_var(server)] = server.whm_token
        for account in server.accounts:
            env[account_var(server, account, "TOKEN")] = account.cpanel_token
            env[account_var(server, account, "PASSWORD")] = account.password
    return env


def _entries(server: ServerSpec, url: str, auth: str, env: dict[str, str]) -> list[dict[str, Any]]:
    if auth == "whm":
        env[whm_var(server)] = server.whm_token
        method = {"method": "whm_token", "user": server.whm_user, "token_env": whm_var(server)}
        return [{"name": server.name, "url": url, "auth": method, "accounts": "all"}]
    out = []
    for account in server.accounts:
        if auth == "cpanel_token":
            var = account_var(server, account, "TOKEN")
            env[var] = account.cpanel_token
            method = {"method": "cpanel_token", "user": account.user, "token_env": var}
        else:
            var = account_var(server, account, "PASSWORD")
            env[var] = account.password
            method = {"method": "cpanel_password", "user": account.user, "password_env": var}
        name = f"{server.name}-{account.user}"
        out.append({"name": name, "url": url, "auth": method, "accounts": [account.user]})
    return out


def _load_keys(
    spec: FleetSpec, server: ServerSpec, given: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The entry's `load:` keys: the ones given, and, on a server whose time runs K times
    faster (`time_scale`), the time constant its load averages really have (60 s / K)."""
    keys = dict(given or {})
    if server.load is not None and spec.time_scale != 1.0:
        keys.setdefault("time_constant", LOAD_TAU / spec.time_scale)
    return keys


def inventory_document(
    spec: FleetSpec,
    urls: Mapping[str, str],
    *,
    auth: str = "whm",
    ca_file: Path | None = None,
    settings: Mapping[str, Any] | None = None,
    extra_server_keys: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The inventory as data, and the environment variables it references."""
    if auth not in AUTHS:
        raise ValueError(f"auth must be one of {', '.join(AUTHS)}, not {auth!r}")
    env: dict[str, str] = {}
    servers = []
    extra = dict(extra_server_keys or {})
    for server in spec.servers:
        for entry in _entries(server, urls[server.name], auth, env):
            if ca_file is not None:
                entry["tls"] = {"verify": True, "ca_file": str(ca_file)}
            load = _load_keys(spec, server, extra.get("load"))
            servers.append({**entry, **extra, **({"load": load} if load else {})})
    document: dict[str, Any] = {"servers": servers}
    if settings:
        document["settings"] = dict(settings)
    return document, env


def read(path: Path) -> dict[str, Any]:
    """An inventory document as written (or edited since): the referee learns its promises."""
    loaded = yaml.safe_load(Path(path).read_text())
    return loaded if isinstance(loaded, dict) else {}


def write(path: Path, document: Mapping[str, Any]) -> None:
    header = "# Written by the clamfleet simulator; secrets come from the environment.\n"
    Path(path).write_text(header + yaml.safe_dump(dict(document), sort_keys=False))
