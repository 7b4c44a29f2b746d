"""Inventory keys of load-aware pacing: `load:`, `settings.window` and `run --finish-by`."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.config import LoadLimit, WindowSetting
from orchestrator.config.pacing_keys import parse_finish_by, with_finish_by, with_max_duration
from orchestrator.errors import ConfigError
from tests.config.test_inventory import ENV, WHM, error, load, one_server

ALICE = "auth: {method: cpanel_token, user: alice, token_env: ALICE_TOKEN}"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_load_is_off_by_default_and_checked_every_30_seconds() -> None:
    (server,) = load(one_server()).servers
    assert server.load == LoadLimit(max=None, check_interval=30.0)
    assert server.load.patience == 3600.0


def test_load_is_inherited_from_defaults_and_groups_and_overridden_per_server() -> None:
    inv = load(
        f"""
        defaults:
          {WHM}
          load: {{max: 6, check_interval: 10}}
        groups:
          big: {{load: {{max: 12.8}}}}
        servers:
          - {{name: a, host: a.example.com}}
          - {{name: b, host: b.example.com, groups: [big]}}
          - {{name: c, host: c.example.com, groups: [big], load: {{max: null}}}}
        """
    )
    loads = {s.name: s.load for s in inv.servers}
    assert loads["a"] == LoadLimit(6.0, 10.0)
    assert loads["b"] == LoadLimit(12.8, 10.0)
    assert loads["c"] == LoadLimit(None, 10.0)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    load: {maximum: 4}\n", "inventory.yaml:5: servers[0].load.maximum: unknown key"),
        ("    load: {max: 0}\n", "inventory.yaml:5: servers[0].load.max: expected a number > 0"),
        (
            "    load: {check_interval: soon}\n",
            "inventory.yaml:5: servers[0].load.check_interval: expected seconds > 0 or a duration",
        ),
        (
            "    load: {patience: forever}\n",
            "inventory.yaml:5: servers[0].load.patience: expected seconds > 0 or a duration",
        ),
        ("    load: 4\n", "inventory.yaml:5: servers[0].load: expected a mapping"),
    ],
)
def test_bad_load_values_name_file_line_and_field(extra: str, expected: str) -> None:
    assert error(one_server(extra)).startswith(expected)


def test_load_patience_defaults_to_an_hour_and_takes_the_duration_syntax() -> None:
    (server,) = load(one_server()).servers
    assert server.load.patience == 3600.0 and server.load.time_constant == 60.0
    text = "    load: {max: 3, check_interval: 10s, patience: 1h30m, time_constant: 0.5}\n"
    (server,) = load(one_server(text)).servers
    assert server.load == LoadLimit(3.0, 10.0, patience=5400.0, time_constant=0.5)


def test_max_duration_is_off_by_default_and_takes_the_duration_syntax() -> None:
    assert load(one_server()).settings.max_duration is None
    inv = load(one_server("settings: {max_duration: 6h}\n"))
    assert inv.settings.max_duration == 21600.0
    assert with_max_duration(inv, "90m").settings.max_duration == 5400.0
    assert with_max_duration(inv, "2.5").settings.max_duration == 2.5
    assert with_max_duration(inv, None) is inv
    message = error(one_server("settings: {max_duration: tonight}\n"))
    assert message.startswith("inventory.yaml:5: settings.max_duration: expected seconds > 0")
    with pytest.raises(ConfigError, match=r"--max-duration: expected a duration such as 6h"):
        with_max_duration(inv, "6 hours")


def test_load_max_on_a_cpanel_login_server_is_an_error() -> None:
    message = error(one_server("    load: {max: 4}\n", auth=ALICE))
    assert message.startswith("inventory.yaml:5: servers[0].load.max: needs a whm_token server")


def test_load_max_from_defaults_applies_only_where_the_load_can_be_read() -> None:
    inv = load(
        f"""
        defaults: {{load: {{max: 4}}}}
        servers:
          - {{name: a, host: a.example.com, {WHM}}}
          - {{name: b, host: b.example.com, {ALICE}}}
        """
    )
    assert [s.load.max for s in inv.servers] == [4.0, None]


def test_window_reads_hh_mm_unquoted_or_quoted_and_an_iana_timezone() -> None:
    inv = load(one_server("settings:\n  window: {end: 06:30, timezone: Europe/Berlin}\n"))
    assert inv.settings.window == WindowSetting(time(6, 30), "Europe/Berlin")
    inv = load(one_server("settings:\n  window: {end: '23:05'}\n"))
    assert inv.settings.window == WindowSetting(time(23, 5), "local")
    assert load(one_server()).settings.window == WindowSetting(None, "local")


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("{end: 25:00}", "settings.window.end: expected a time HH:MM"),
        ("{end: 6}", "settings.window.end: expected a time HH:MM"),
        ("{end: '06:00', timezone: Mars/Olympus}", "settings.window.timezone: unknown timezone"),
        ("{start: '22:00'}", "settings.window.start: unknown key"),
    ],
)
def test_bad_window_values_name_file_line_and_field(window: str, expected: str) -> None:
    message = error(one_server(f"settings:\n  window: {window}\n"))
    assert message.startswith("inventory.yaml:6: " + expected)


def test_finish_by_overrides_the_window_end_and_keeps_its_timezone() -> None:
    inv = load(one_server("settings:\n  window: {end: '06:00', timezone: UTC}\n"))
    window = with_finish_by(inv, "05:15").settings.window
    assert window == WindowSetting(time(5, 15), "UTC", source="--finish-by")
    assert with_finish_by(inv, None) is inv
    with pytest.raises(ConfigError, match=r"--finish-by: expected HH:MM, HH:MM ZONE .*, got '5pm'"):
        with_finish_by(inv, "5pm")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("06:00", WindowSetting(time(6, 0), "Asia/Tokyo", source="--finish-by")),
        ("06:00 Europe/Berlin", WindowSetting(time(6, 0), "Europe/Berlin", source="--finish-by")),
        ("6:30 UTC", WindowSetting(time(6, 30), "UTC", source="--finish-by")),
        ("+5h30m", WindowSetting(None, "Asia/Tokyo", after=19800.0, source="--finish-by")),
        ("+45s", WindowSetting(None, "Asia/Tokyo", after=45.0, source="--finish-by")),
        ("+2.5", WindowSetting(None, "Asia/Tokyo", after=2.5, source="--finish-by")),
    ],
)
def test_finish_by_takes_a_time_a_time_and_zone_or_a_duration_from_now(
    text: str, expected: WindowSetting
) -> None:
    assert parse_finish_by(text, "Asia/Tokyo") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("06:00 Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
        ("+5 hours", "expected HH:MM, HH:MM ZONE"),
        ("+", "expected HH:MM, HH:MM ZONE"),
        ("+0s", "expected HH:MM, HH:MM ZONE"),
        ("24:00", "expected HH:MM, HH:MM ZONE"),
    ],
)
def test_a_bad_finish_by_names_the_forms_it_takes(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        parse_finish_by(text)
    assert caught.value.field == "--finish-by"


def test_run_with_a_bad_finish_by_exits_3_before_scanning(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    Path("inventory.yaml").write_text(one_server())
    assert main(["run", "inventory.yaml", "--finish-by", "6am"]) == 3
    assert "--finish-by: expected HH:MM" in capsys.readouterr().err


def test_validate_names_servers_without_a_load_reading_and_the_window(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    Path("inventory.yaml").write_text(
        f"""
defaults: {{load: {{max: 4}}}}
servers:
  - {{name: a, host: a.example.com, {WHM}}}
  - {{name: b, host: b.example.com, {ALICE}}}
settings: {{window: {{end: '06:00', timezone: UTC}}}}
"""
    )
    assert main(["validate", "inventory.yaml"]) == 0
    out = capsys.readouterr().out
    assert "load-aware: a (max 4)" in out
    assert "no load reading (cPanel login, fixed max_concurrent_scans): b" in out
    assert "window: no new scan after 06:00 (UTC)" in out
