"""The inventory's `settings:` block -> `Settings`: fleet-wide caps, poll interval, timeouts.

Pure: YAML values in, config values out; keys left unset keep `Settings`' own defaults
(config.py is their one home). The `window` key is read by pacing_config.py. `history` is a
path as written; `notify` entries name an environment variable, which is read by `run` only
(offline `validate` reads no secret), and an error never shows a `url_env` value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from orchestrator.config.pacing_keys import read_max_duration, read_window
from orchestrator.config.types import NotifyOn, NotifySetting, PollInterval, Settings, Timeouts
from orchestrator.config.yamlsrc import Value
from orchestrator.secretref import NOT_SHOWN, is_env_name

SETTINGS_KEYS = (
    "max_concurrent_servers",
    "requests_per_second",
    "poll_interval",
    "timeouts",
    "window",
    "history",
    "notify",
    "accepted",
    "max_duration",
)
NOTIFY_KEYS = ("url_env", "on")

T = TypeVar("T")


def read_settings(value: Value) -> Settings:
    """`settings:` as written; each error names the file, line and field."""
    entries = value.mapping(SETTINGS_KEYS, null_ok=True)
    base = Settings()
    return Settings(
        max_concurrent_servers=_get(
            entries, "max_concurrent_servers", _at_least_one, base.max_concurrent_servers
        ),
        requests_per_second=_get(
            entries, "requests_per_second", Value.positive, base.requests_per_second
        ),
        poll_interval=_get(entries, "poll_interval", _poll_interval, base.poll_interval),
        timeouts=_get(entries, "timeouts", _timeouts, base.timeouts),
        window=_get(entries, "window", read_window, base.window),
        history=_get(entries, "history", _history, base.history),
        notify=_get(entries, "notify", _notify, base.notify),
        accepted=_get(entries, "accepted", _optional_path, base.accepted),
        max_duration=_get(entries, "max_duration", read_max_duration, base.max_duration),
    )


def _get(entries: Mapping[str, Value], key: str, read: Callable[[Value], T], default: T) -> T:
    return read(entries[key]) if key in entries else default


def _optional_path(value: Value) -> Path | None:
    return None if value.is_null else Path(value.text(what="a file path"))


def _at_least_one(value: Value) -> int:
    return value.integer(1)


def _poll_interval(value: Value) -> PollInterval:
    entries = value.mapping(("min", "max"))
    base = PollInterval()
    low = _get(entries, "min", Value.positive, base.min)
    high = _get(entries, "max", Value.positive, base.max)
    if low > high:
        where = entries.get("min") or entries["max"]
        raise where.error(f"min ({low:g}) must not be larger than max ({high:g})")
    return PollInterval(min=low, max=high)


def _timeouts(value: Value) -> Timeouts:
    keys = ("request", "scan", "stall", "disinfection", "server_down")
    entries = value.mapping(keys)
    base = Timeouts()
    values = {k: _get(entries, k, Value.duration, getattr(base, k)) for k in keys}
    return Timeouts(**values)


def _history(value: Value) -> Path | None:
    return None if value.is_null else Path(value.text(what="a file path"))


def _notify(value: Value) -> tuple[NotifySetting, ...]:
    """`[{url_env: OPS_MAIL, on: new}]`: `on` defaults to `infected`, like `--notify-on`."""
    if value.is_null:
        return ()
    out = []
    for item in value.items():
        entries = item.mapping(NOTIFY_KEYS)
        if "url_env" not in entries:
            raise item.error("url_env is required: the environment variable holding the URL")
        env = entries["url_env"]
        name = env.text()  # not shown when it is not a string: url_env is a secret field
        if not is_env_name(name):
            raise env.error(f"is not a valid environment variable name ({NOT_SHOWN})")
        on = entries["on"].choice(NotifyOn) if "on" in entries else NotifyOn.INFECTED
        out.append(NotifySetting(name, on, file=env.file, line=env.line, key_path=env.field))
    return tuple(out)
