"""Inventory loader: YAML (README "Inventory") -> a validated, fully resolved `Inventory`.

Pure: no network and no logging. Inheritance is resolved here (defaults -> each group in the
server's order -> the server), never lazily; each server's `auth:` block is resolved by
credentials.py (environment variables and secret files, read once, at load time) and the
`settings:` block is read by settings_config.py.

Layers are kept as flat maps of dotted keys ("port", "auth.user", "tls.ca_file") to the YAML
value that set them, so a merged value still knows the file line it was written on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from yaml import MappingNode

from orchestrator.config.canary_keys import read_canary, resolve_canaries
from orchestrator.config.credentials import (
    ALL_REFS,
    Sources,
    auth_layer,
    credentials,
    env_name,
    missing,
)
from orchestrator.config.pacing_keys import check_max, load_entries, load_limit
from orchestrator.config.settings_keys import read_settings
from orchestrator.config.types import (
    AuthMethod,
    Credentials,
    Inventory,
    Server,
    Settings,
    TlsConfig,
)
from orchestrator.config.yamlsrc import Value, read_document
from orchestrator.errors import ConfigError
from orchestrator.model import ScanType

TOP_KEYS = ("defaults", "groups", "servers", "settings")
SERVER_ONLY = ("name", "host", "url", "groups")
INHERITED = (
    "port",
    "auth",
    "tls",
    "accounts",
    "exclude_accounts",
    "include_suspended",
    "scan_types",
    "max_concurrent_scans",
    "requests_per_second",
    "load",
    "canary",
)
TLS_KEYS = ("verify", "ca_file")
# Keys that belong to one auth method. A layer that changes `auth.method` drops the ones it
# inherited: a WHM token (or root, or port 2087, or `accounts: all`) is never right for a cPanel
# login, and silently sending one to the other method's endpoint would only fail later, per
# server, as an auth error (and count towards a cPHulk lockout).
METHOD_BOUND = ("port", "accounts", "auth.user", *(f"auth.{k}" for k in ALL_REFS))

NAME = re.compile(r"[A-Za-z0-9._-]+")
HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")
WHM_PORT, CPANEL_PORT = 2087, 2083

Layer = dict[str, Value]
T = TypeVar("T")


def load_inventory(
    path: str | Path, env: Mapping[str, str] | None = None, *, secrets: bool = True
) -> Inventory:
    """Read, validate and resolve the inventory; raises ConfigError naming file, line and field.

    With `secrets=False` (offline `validate`) nothing outside the YAML is read: secret
    references are checked for their form only and stay unresolved (`Credentials.resolved` is
    False, the secret empty), and a missing `tls.ca_file` is left for the caller to warn about.
    Such an inventory is for reporting only, never for sending a request.
    """
    root = read_document(path, "inventory")
    if root is None:
        raise ConfigError(
            "the inventory is empty: it needs at least a servers list", file=str(path)
        )
    ctx = Sources(Path(path).absolute().parent, os.environ if env is None else env, secrets)
    if not isinstance(root.node, MappingNode):
        raise root.expected("a mapping with a servers list")
    top = root.mapping(TOP_KEYS)
    defaults = _layer(top["defaults"]) if "defaults" in top else {}
    groups = _groups(top["groups"]) if "groups" in top else {}
    if "servers" not in top:
        raise missing(root, "servers", "is required: list at least one server")
    servers = _servers(top["servers"], defaults, groups, ctx)
    settings = read_settings(top["settings"]) if "settings" in top else Settings()
    if settings.accepted is not None:  # relative to the inventory, like secret files
        settings = replace(settings, accepted=ctx.base / settings.accepted.expanduser())
    return Inventory(path=str(path), servers=servers, settings=settings)


def select_servers(inv: Inventory, globs: Sequence[str]) -> Inventory:
    """Keep the servers whose name matches any glob (inventory order); every glob must match."""
    for glob in globs:
        if not any(fnmatchcase(s.name, glob) for s in inv.servers):
            known = ", ".join(s.name for s in inv.servers[:10])
            more = ", ..." if len(inv.servers) > 10 else ""
            raise ConfigError(f"{glob!r} matches no server ({known}{more})", field="--servers")
    chosen = tuple(s for s in inv.servers if any(fnmatchcase(s.name, g) for g in globs))
    return replace(inv, servers=chosen)


# -- layers: defaults, groups and each server's own keys ---------------------------------------


def _layer(value: Value, *, server: bool = False) -> Layer:
    """One layer's inheritable keys, each type-checked where it is written."""
    entries = value.mapping(null_ok=not server)
    if not server:
        for key, entry in entries.items():
            if key in SERVER_ONLY:
                raise entry.error(f"{key} may only be set on a server, not here")
    entries = value.mapping((*SERVER_ONLY, *INHERITED) if server else INHERITED, null_ok=True)
    layer: Layer = {}
    for key, entry in entries.items():
        if key == "auth":
            layer.update(auth_layer(entry))
        elif key == "tls":
            layer.update({f"tls.{k}": v for k, v in entry.mapping(TLS_KEYS).items()})
        elif key == "load":
            layer.update(load_entries(entry))
        elif key in INHERITED:
            layer[key] = entry
    for key, entry in layer.items():
        CHECKS[key](entry)
    return layer


def _groups(value: Value) -> dict[str, Layer]:
    return {name: _layer(body) for name, body in value.mapping(null_ok=True).items()}


def _merge(layers: Sequence[Layer]) -> tuple[Layer, bool]:
    """The layers merged, later wins; and whether a layer changed the inherited auth.method."""
    merged: Layer = {}
    switched = False
    for layer in layers:
        method = layer.get("auth.method")
        inherited = merged.get("auth.method")
        if method and inherited and method.node.value != inherited.node.value:
            merged = {k: v for k, v in merged.items() if k not in METHOD_BOUND}
            switched = True
        if any(f"auth.{k}" in layer for k in ALL_REFS):
            # A layer's secret reference replaces the inherited one whatever its kind: there is
            # one secret per server, so `token_file` here overrides `token_env` from defaults.
            merged = {k: v for k, v in merged.items() if k.removeprefix("auth.") not in ALL_REFS}
        merged.update(layer)
    return merged, switched


# -- servers -----------------------------------------------------------------------------------


def _servers(
    value: Value, defaults: Layer, groups: dict[str, Layer], ctx: Sources
) -> tuple[Server, ...]:
    if value.is_null:
        raise value.error("must list at least one server")
    seen: dict[str, int] = {}
    servers = []
    canaries: dict[str, Value] = {}
    for item in value.items(non_empty=True):
        own = _layer(item, server=True)
        entries = item.mapping()
        name = _name(item, entries, seen)
        refs = _group_refs(entries, groups)
        merged, switched = _merge([defaults, *(groups[g] for g in refs), own])
        try:
            auth = credentials(item, merged, switched, ctx)
            servers.append(_server(item, name, entries, refs, merged, auth, ctx))
        except ConfigError as exc:
            raise _for_server(exc, item.field, name) from None
        if "canary" in merged:
            canaries[name] = merged["canary"]
    return resolve_canaries(servers, canaries)


def _for_server(exc: ConfigError, prefix: str, name: str) -> ConfigError:
    """Name the server when the faulty value was inherited from defaults or a group."""
    if (
        exc.field is None
        or exc.field == prefix
        or exc.field.startswith((f"{prefix}.", f"{prefix}["))
    ):
        return exc
    message = f"{exc.message} (inherited by server {name})"
    return ConfigError(message, file=exc.file, line=exc.line, field=exc.field)


def _name(item: Value, entries: dict[str, Value], seen: dict[str, int]) -> str:
    if "name" not in entries:
        raise missing(item, "name", "is required")
    value = entries["name"]
    name = value.text(NAME, "a name of letters, digits, '.', '_' and '-'")
    if name in seen:
        raise value.error(f"duplicate server name {name!r} (first at line {seen[name]})")
    seen[name] = value.line
    return name


def _group_refs(entries: dict[str, Value], groups: dict[str, Layer]) -> list[str]:
    if "groups" not in entries:
        return []
    names: list[str] = []
    for item in entries["groups"].items():
        name = item.text()
        if name not in groups:
            defined = ", ".join(groups) or "none"
            raise item.error(f"unknown group {name!r} (defined: {defined})")
        if name not in names:
            names.append(name)
    return names


def _server(
    item: Value,
    name: str,
    own: dict[str, Value],
    groups: list[str],
    merged: Layer,
    auth: Credentials,
    ctx: Sources,
) -> Server:
    server = Server(
        name=name,
        base_url=_base_url(item, own, merged, auth.method),
        auth=auth,
        tls=_tls(merged, ctx),
        accounts=_accounts(merged.get("accounts"), auth),
        groups=tuple(groups),
        load=load_limit(merged, auth.method),
    )
    # Keys left unset keep Server's own defaults (config.py is their one home).
    return replace(server, **{k: read(merged[k]) for k, read in OPTIONAL.items() if k in merged})


def _get(merged: Layer, key: str, read: Callable[[Value], T], default: T) -> T:
    return read(merged[key]) if key in merged else default


def _base_url(item: Value, own: dict[str, Value], merged: Layer, method: AuthMethod) -> str:
    host, url = own.get("host"), own.get("url")
    if host and url:
        raise url.error("host and url are mutually exclusive: use one")
    if url:
        if "port" in own:
            raise own["port"].error("port and url are mutually exclusive: put the port in the url")
        # An inherited port (e.g. `port: 2087` in defaults) is meant for host: entries.
        return _url(url)
    if not host:
        raise missing(item, "host", "each server needs host (and optional port) or url")
    default_port = WHM_PORT if method is AuthMethod.WHM_TOKEN else CPANEL_PORT
    port = _get(merged, "port", _port, default_port)
    return f"https://{_host(host)}:{port}"


def _host(value: Value) -> str:
    text = value.text()
    if "://" in text or "/" in text:
        raise value.error("expected a bare host name; use url: for a full URL")
    if ":" in text and not text.startswith("["):
        if text.count(":") == 1:
            raise value.error("expected a bare host name; put the port in port:")
        text = f"[{text}]"  # an IPv6 address
    if not HOST.fullmatch(text):
        raise value.expected("a host name or IP address")
    return text


def _url(value: Value) -> str:
    text = value.text()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise value.error("not a valid URL (check the host and port)") from None
    if parts.username is not None or parts.password is not None:
        # Never echo the URL here: it carries a credential.
        raise value.error("credentials in the url are not allowed: use auth")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise value.error(f"expected http(s)://host[:port], got {text!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise value.error(f"expected http(s)://host[:port] without path or query, got {text!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _tls(merged: Layer, ctx: Sources) -> TlsConfig:
    verify = _get(merged, "tls.verify", Value.boolean, True)
    ca = merged.get("tls.ca_file")
    if ca is None or ca.is_null:
        return TlsConfig(verify=verify)
    path = ctx.path(ca)
    if ctx.secrets and not path.is_file():
        raise ca.error(f"CA file {path} does not exist")
    return TlsConfig(verify=verify, ca_file=path)


def _accounts(value: Value | None, auth: Credentials) -> tuple[str, ...] | None:
    whm = auth.method is AuthMethod.WHM_TOKEN
    if value is None:
        return None if whm else (auth.user,)
    accounts = _account_list(value)
    if whm:
        return accounts
    if accounts != (auth.user,):
        # A cPanel login reaches only its own account.
        message = f"{auth.method} reaches only its own account: use [{auth.user}] or leave it out"
        raise value.error(message)
    return accounts


def _account_list(value: Value) -> tuple[str, ...] | None:
    if isinstance(value.node.value, str):
        if value.node.value == "all":
            return None
        raise value.expected("all or a list of user names")
    names = [item.text(NAME, "an account user name") for item in value.items(non_empty=True)]
    return tuple(dict.fromkeys(names))


def _scan_types(value: Value) -> tuple[ScanType, ...]:
    kinds = [item.choice(ScanType) for item in value.items(non_empty=True)]
    return tuple(dict.fromkeys(kinds))


def _strings(value: Value) -> list[str]:
    return value.strings()


def _port(value: Value) -> int:
    return value.integer(1, 65535)


def _at_least_one(value: Value) -> int:
    return value.integer(1)


def _check_ca(value: Value) -> None:
    if not value.is_null:
        value.text()


# Type checks of every inheritable key, run on each layer where the value is written; the
# checks that need the merged server (env vars, files, method-specific rules) run on resolving.
CHECKS: dict[str, Callable[[Value], object]] = {
    "port": _port,
    "accounts": _account_list,
    "exclude_accounts": _strings,
    "include_suspended": Value.boolean,
    "scan_types": _scan_types,
    "max_concurrent_scans": _at_least_one,
    "requests_per_second": Value.positive,
    "auth.method": lambda v: v.choice(AuthMethod),
    "auth.user": Value.text,
    "auth.token_env": env_name,
    "auth.password_env": env_name,
    "auth.token_file": Value.text,
    "auth.password_file": Value.text,
    "tls.verify": Value.boolean,
    "tls.ca_file": _check_ca,
    "load.max": check_max,
    "load.check_interval": Value.duration,
    "load.patience": Value.duration,
    "load.time_constant": Value.duration,
    "canary": read_canary,
}


# Per-server keys whose reader returns the Server field's value as it is.
OPTIONAL: dict[str, Callable[[Value], Any]] = {
    "exclude_accounts": lambda v: tuple(v.strings()),
    "include_suspended": Value.boolean,
    "scan_types": _scan_types,
    "max_concurrent_scans": _at_least_one,
    "requests_per_second": Value.positive,
    "canary": read_canary,
}
