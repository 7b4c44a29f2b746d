"""The inventory's `settings:` block -> `Settings`: fleet-wide caps, poll interval, timeouts.

Pure: YAML values in, config values out; keys left unset keep `Settings`' own defaults
(config.py is their one home). The `window` key is read by pacing_config.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from orchestrator.config.pacing_keys import read_window
from orchestrator.config.types import PollInterval, Settings, Timeouts
from orchestrator.config.yamlsrc import Value

SETTINGS_KEYS = (
    "max_concurrent_servers",
    "requests_per_second",
    "poll_interval",
    "timeouts",
    "window",
)

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
    )


def _get(entries: Mapping[str, Value], key: str, read: Callable[[Value], T], default: T) -> T:
    return read(entries[key]) if key in entries else default


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
