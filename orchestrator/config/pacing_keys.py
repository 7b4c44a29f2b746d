"""Inventory keys of load-aware pacing: per-server `load:`, `settings.window`, `--finish-by`,
`settings.max_duration` and `--max-duration`.

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

from orchestrator.config.durations import SYNTAX, parse_duration
from orchestrator.config.types import AuthMethod, Inventory, LoadLimit, WindowSetting
from orchestrator.config.yamlsrc import Value
from orchestrator.errors import ConfigError

LOAD_KEYS = ("max", "check_interval", "patience", "time_constant")
WINDOW_KEYS = ("end", "timezone")
CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def load_entries(value: Value) -> dict[str, Value]:
    """`load: {max, check_interval, patience, time_constant}` as the loader's dotted keys."""
    return {f"load.{k}": v for k, v in value.mapping(LOAD_KEYS, null_ok=True).items()}


def check_max(value: Value) -> float | None:
    return None if value.is_null else value.positive()


def load_limit(merged: dict[str, Value], method: AuthMethod) -> LoadLimit:
    """The server's resolved `load`, from the merged layers."""
    base = LoadLimit()

    def seconds(key: str, default: float) -> float:
        value = merged.get(f"load.{key}")
        return value.duration() if value is not None else default

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
    return LoadLimit(
        max=ceiling,
        check_interval=seconds("check_interval", base.check_interval),
        patience=seconds("patience", base.patience),
        time_constant=seconds("time_constant", base.time_constant),
    )


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


FINISH_BY = "HH:MM, HH:MM ZONE (06:00 Europe/Berlin) or +DURATION (+5h30m)"


def with_finish_by(inventory: Inventory, text: str | None) -> Inventory:
    """`--finish-by` replaces `settings.window`: `HH:MM` (in the window's timezone, `local`
    unless the inventory names one), `HH:MM ZONE`, or `+DURATION` after the run's start."""
    if text is None:
        return inventory
    window = parse_finish_by(text, inventory.settings.window.timezone)
    settings = replace(inventory.settings, window=window)
    return replace(inventory, settings=settings)


def parse_finish_by(text: str, timezone: str = "local") -> WindowSetting:
    """`--finish-by`'s value as a window; ConfigError naming the forms otherwise."""
    value = text.strip()
    try:
        if value.startswith("+"):
            after = parse_duration(value[1:])
            return WindowSetting(timezone=timezone, after=after, source="--finish-by")
        clock, _, zone = value.partition(" ")
        zone = zone.strip() or timezone
        end = parse_clock(clock)
    except ValueError:
        raise ConfigError(f"expected {FINISH_BY}, got {text!r}", field="--finish-by") from None
    if zone != "local":
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"unknown timezone {zone!r} (use local or an IANA name like Europe/Berlin)",
                field="--finish-by",
            ) from None
    return WindowSetting(end=end, timezone=zone, source="--finish-by")


def read_max_duration(value: Value) -> float | None:
    """`settings.max_duration`: null (no deadline) or a duration."""
    return None if value.is_null else value.duration()


def with_max_duration(inventory: Inventory, text: str | None) -> Inventory:
    """`--max-duration DURATION` replaces `settings.max_duration`."""
    if text is None:
        return inventory
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ConfigError(f"expected {SYNTAX}, got {text!r}", field="--max-duration") from None
    settings = replace(inventory.settings, max_duration=seconds)
    return replace(inventory, settings=settings)
