"""Inventory keys of load-aware pacing: per-server `load:`, `settings.window`, `--finish-by`.

Kept beside inventory.py (which calls these) so the loader stays one concern per module. The
same rules as everywhere in the inventory: unknown keys are errors, every error names the file,
line and field.

`load.max` needs WHM's `systemloadavg`, i.e. a whm_token server. Set on such a server (or in a
group it is in) for a cPanel login it is an error: the user asked for something that cannot
happen. Inherited from `defaults` it only applies where it can: a mixed fleet can set one
fleet-wide ceiling, and cPanel-login servers keep their fixed cap (`validate` lists them).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.config.types import AuthMethod, Inventory, LoadLimit, WindowSetting
from orchestrator.config.yamlsrc import Value
from orchestrator.errors import ConfigError

LOAD_KEYS = ("max", "check_interval")
WINDOW_KEYS = ("end", "timezone")
CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def load_entries(value: Value) -> dict[str, Value]:
    """`load: {max, check_interval}` as the loader's dotted keys (`load.max`, ...)."""
    return {f"load.{k}": v for k, v in value.mapping(LOAD_KEYS, null_ok=True).items()}


def check_max(value: Value) -> float | None:
    return None if value.is_null else value.positive()


def load_limit(merged: dict[str, Value], method: AuthMethod) -> LoadLimit:
    """The server's resolved `load`, from the merged layers."""
    base = LoadLimit()
    interval = merged.get("load.check_interval")
    check_interval = interval.positive() if interval is not None else base.check_interval
    entry = merged.get("load.max")
    ceiling = check_max(entry) if entry is not None else None
    if entry is not None and ceiling is not None and method is not AuthMethod.WHM_TOKEN:
        if entry.field.startswith("defaults."):
            ceiling = None  # a fleet-wide default: applies only where the load can be read
        else:
            raise entry.error(
                f"needs a whm_token server: {method} cannot read systemloadavg "
                "(leave it out; this server keeps max_concurrent_scans)"
            )
    return LoadLimit(max=ceiling, check_interval=check_interval)


def read_window(value: Value) -> WindowSetting:
    entries = value.mapping(WINDOW_KEYS, null_ok=True)
    end = entries.get("end")
    zone = entries.get("timezone")
    return WindowSetting(
        end=None if end is None or end.is_null else _clock(end),
        timezone="local" if zone is None else _timezone(zone),
    )


def _clock(value: Value) -> time:
    text = value.text(what="a time HH:MM")  # (unquoted 06:00 is YAML 1.1 base 60: its text)
    try:
        return parse_clock(text)
    except ValueError:
        raise value.expected("a time HH:MM") from None


def _timezone(value: Value) -> str:
    name = value.text(what="local or a timezone name like Europe/Berlin")
    if name == "local":
        return name
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise value.error(f"unknown timezone {name!r} (use local or an IANA name)") from None
    return name


def parse_clock(text: str) -> time:
    """`HH:MM` (24 h) -> time; ValueError otherwise."""
    match = CLOCK.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected HH:MM, got {text!r}")
    return time(int(match[1]), int(match[2]))


def with_finish_by(inventory: Inventory, text: str | None) -> Inventory:
    """`--finish-by HH:MM` replaces `settings.window.end` (the window's timezone is kept)."""
    if text is None:
        return inventory
    try:
        end = parse_clock(text)
    except ValueError:
        raise ConfigError(f"expected HH:MM, got {text!r}", field="--finish-by") from None
    settings = inventory.settings
    window = replace(settings.window, end=end)
    return replace(inventory, settings=replace(settings, window=window))
