"""One duration syntax everywhere: `6h`, `90m`, `45s`, `1h30m`, or plain seconds; anything else
is an error that shows the syntax; inventory time values take it as well as numbers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import load_inventory
from orchestrator.config.durations import format_duration, parse_duration
from orchestrator.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6h", 21600),
        ("90m", 5400),
        ("45s", 45),
        ("1h30m", 5400),
        ("1h30m15s", 5415),
        ("2.5", 2.5),
        ("5400", 5400),
        (" 15M ", 900),
        ("0.5h", 1800),
    ],
)
def test_a_duration_reads_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "6 h", "30m1h", "1d", "-5", "0", "0s", "1h-30m", "abc"])
def test_anything_else_is_an_error_naming_the_syntax(text: str) -> None:
    with pytest.raises(ValueError, match="a duration such as 6h, 90m, 45s, 1h30m"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10 * 86400))
def test_a_formatted_duration_reads_back_as_the_same_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_inventory_timeouts_take_durations_and_numbers(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        textwrap.dedent(
            """\
            settings:
              timeouts: {scan: 6h, stall: "30m", disinfection: 3600, request: 2.5, server_down: 20m}
            servers:
              - name: a
                url: "http://127.0.0.1:1"
                auth: {method: whm_token, user: root, token_env: T}
            """
        )
    )
    timeouts = load_inventory(inventory, secrets=False).settings.timeouts
    assert (timeouts.scan, timeouts.stall, timeouts.disinfection, timeouts.request) == (
        21600,
        1800,
        3600,
        2.5,
    )
    assert timeouts.server_down == 1200


def test_server_down_defaults_to_fifteen_minutes(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "servers:\n  - name: a\n    url: http://127.0.0.1:1\n"
        "    auth: {method: whm_token, user: root, token_env: T}\n"
    )
    assert load_inventory(inventory, secrets=False).settings.timeouts.server_down == 900


def test_a_bad_duration_in_the_inventory_names_file_line_and_field(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "settings:\n  timeouts: {scan: 6 hours}\n"
        "servers:\n  - {name: a, url: 'http://127.0.0.1:1',\n"
        "     auth: {method: whm_token, user: root, token_env: T}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_inventory(inventory, secrets=False)
    message = str(caught.value)
    assert "inventory.yaml:2: settings.timeouts.scan" in message
    assert "a duration such as 45s, 90m, 6h, 1h30m" in message
