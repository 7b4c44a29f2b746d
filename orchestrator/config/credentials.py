"""An inventory server's `auth:` block -> `Credentials`: secret references and their resolution.

Pure apart from reading what the references name: the environment variable or the secret file,
once, at load time, so a run fails before it starts rather than halfway through the fleet. With
`Sources.secrets` False (offline `validate`) nothing outside the YAML is read: references are
checked for their form only and stay unresolved (`Credentials.resolved` False, the secret empty).

No error here shows a value that may be a secret (see secretref.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config.types import AuthMethod, Credentials
from orchestrator.config.yamlsrc import Value
from orchestrator.errors import ConfigError
from orchestrator.model import Secret
from orchestrator.secretref import NOT_SHOWN, shown_env_name

AUTH_KEYS = ("method", "user", "token_env", "token_file", "password_env", "password_file")
INLINE_SECRETS = {"token": "token_env or token_file", "password": "password_env or password_file"}
SECRET_REFS = {
    AuthMethod.WHM_TOKEN: ("token_env", "token_file"),
    AuthMethod.CPANEL_TOKEN: ("token_env", "token_file"),
    AuthMethod.CPANEL_PASSWORD: ("password_env", "password_file"),
}
ALL_REFS = ("token_env", "token_file", "password_env", "password_file")

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Sources:
    """What resolving needs besides the YAML: where relative paths start, the environment."""

    base: Path  # the inventory's directory: relative token_file / ca_file paths start here
    env: Mapping[str, str]
    secrets: bool = True  # False: read no environment variable and no file (offline validate)

    def path(self, value: Value) -> Path:
        try:
            return self.base / Path(value.text()).expanduser()
        except RuntimeError:  # `~name/...` for a user this machine does not know
            # Not echoed: a password starting with `~` lands here too.
            raise value.error("its leading ~ names no home directory on this machine") from None


def missing(item: Value, key: str, message: str) -> ConfigError:
    """The error for a key `item` lacks, named by its field path (`servers[2].auth.user`)."""
    field = f"{item.field}.{key}" if item.field else key
    return ConfigError(message, file=item.file, line=item.line, field=field)


def auth_layer(value: Value) -> dict[str, Value]:
    """One layer's `auth:` block as dotted keys; an inline secret is refused, never echoed."""
    entries = value.mapping()
    for inline, refs in INLINE_SECRETS.items():
        if inline in entries:  # checked before unknown keys, and never echoing the value
            raise entries[inline].error(f"secrets may only be referenced: use {refs}")
    entries = value.mapping(AUTH_KEYS)
    present = [k for k in ALL_REFS if k in entries]
    if len(present) > 1:
        message = f"use exactly one secret reference, not {' and '.join(present)}"
        raise entries[present[1]].error(message)
    return {f"auth.{k}": v for k, v in entries.items()}


def env_name(value: Value) -> str:
    """A `*_env` value: the name of a variable (a pasted token is refused without showing it)."""
    name = value.text()  # a non-string is refused without showing it (secret field)
    if not ENV_NAME.fullmatch(name):
        # A variable name cannot start with a digit or hold '-', '+', '/': a pasted token can.
        raise value.error(f"is not a valid environment variable name ({NOT_SHOWN})")
    return name


def credentials(
    item: Value, merged: Mapping[str, Value], switched: bool, sources: Sources
) -> Credentials:
    """The server's method, user and secret from its merged layers (`switched`: a layer changed
    the inherited auth.method, so the old method's user and secret were dropped)."""
    hint = " (not inherited across a change of auth.method)" if switched else ""
    if "auth.method" not in merged:
        raise missing(item, "auth.method", "is required (here, in a group or in defaults)")
    method = merged["auth.method"].choice(AuthMethod)
    if "auth.user" not in merged:
        raise missing(item, "auth.user", "is required (here, in a group or in defaults)" + hint)
    user = merged["auth.user"].text()
    allowed = SECRET_REFS[method]
    if not any(f"auth.{k}" in merged for k in ALL_REFS):
        needs = f"{method} needs {' or '.join(allowed)}{hint}"
        raise missing(item, f"auth.{allowed[0]}", needs)
    key = next(k for k in ALL_REFS if f"auth.{k}" in merged)
    value = merged[f"auth.{key}"]
    if key not in allowed:
        raise value.error(f"{method} takes {' or '.join(allowed)}, not {key}")
    reference = _reference(key, value)
    if not sources.secrets:
        return Credentials(method, user, Secret(""), reference=reference, resolved=False)
    return Credentials(method, user, _secret(key, value, sources), reference=reference)


def _reference(key: str, value: Value) -> str:
    """How validate shows the reference: `token_env WHM_TOKEN`; a file path is never shown."""
    name = shown_env_name(value.text()) if key.endswith("_env") else None
    return f"{key} {name}" if name else key


def _secret(key: str, value: Value, sources: Sources) -> Secret:
    if key.endswith("_env"):
        return _secret_from_env(value, sources)
    return _secret_from_file(value, sources)


def _secret_from_env(value: Value, sources: Sources) -> Secret:
    var = value.text()
    secret = sources.env.get(var, "")
    if var in sources.env and not secret:
        # The variable exists, so this is its name and not a pasted secret: name it.
        raise value.error(f"environment variable {var} is empty")
    if not secret:
        if shown_env_name(var) is None:
            # Perhaps the token itself was pasted here (see secretref): say so, never echo it.
            raise value.error(
                f"the environment variable named here is not set ({NOT_SHOWN}; "
                f"{value.field.rsplit('.', 1)[-1]} takes the name of a variable, e.g. WHM_TOKEN)"
            )
        raise value.error(f"environment variable {var} is not set")
    return Secret(secret)


def _secret_from_file(value: Value, sources: Sources) -> Secret:
    path = sources.path(value)
    try:
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        # Perhaps the password itself was pasted here: the path is not shown. Once the file
        # exists (the errors below) the value is certainly a path and naming it helps.
        raise value.error(
            f"the secret file named here does not exist ({NOT_SHOWN};"
            f" relative paths start at {sources.base})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise value.error(f"cannot read secret file {path}: {reason}") from None
    if not secret:
        raise value.error(f"secret file {path} is empty")
    return Secret(secret)
