"""`clamfleet validate` on pacing: what entries of one host share, and a `load.max` that
cannot mean what was meant."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import Outcome

CLI = Callable[..., Outcome]

# Three cPanel logins on one host (different caps and rates), one WHM server elsewhere.
INVENTORY = """\
defaults:
  auth: {method: cpanel_token, token_env: CLAMFLEET_LINT_TOKEN}
servers:
  - {name: shop-a, url: "https://shop.example.net:2083", auth: {user: a}}
  - {name: shop-b, url: "https://SHOP.example.net:2083", auth: {user: b},
     max_concurrent_scans: 1}
  - {name: shop-c, url: "https://shop.example.net:2083", auth: {user: c},
     requests_per_second: 2}
  - name: web01
    host: web01.example.com
    auth: {method: whm_token, user: root, token_env: CLAMFLEET_LINT_TOKEN}
    max_concurrent_scans: 4
    load: {max: %s}
"""


def write(tmp_path: Path, ceiling: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY % ceiling)
    return path


def test_validate_shows_the_budget_the_entries_of_one_host_share(cli: CLI, tmp_path: Path) -> None:
    result = cli("validate", write(tmp_path, "3"))
    assert result.code == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("shared host")]
    assert line == (
        "shared host https://shop.example.net:2083: 3 entries (shop-a, shop-b, shop-c) share one"
        " budget: requests_per_second 2, max_concurrent_scans 1 (the smallest given)"
    )
    assert "web01" not in line
    assert "warning: web01: load.max" not in result.stdout


@pytest.mark.parametrize(
    ("ceiling", "warning"),
    [
        ("0.75", "warning: web01: load.max 0.75 is under 1: one scan alone adds about 1"),
        ("75", "warning: web01: load.max 75 is above what max_concurrent_scans 4 can add"),
    ],
)
def test_validate_warns_about_a_load_max_under_1_or_above_what_the_cap_can_add(
    cli: CLI, tmp_path: Path, ceiling: str, warning: str
) -> None:
    result = cli("validate", write(tmp_path, ceiling))
    assert result.code == 0, result.stderr
    assert warning in result.stdout
    assert "75 % of 4 cores is 3" in result.stdout


def test_validate_names_the_patience_and_the_deadline(cli: CLI, tmp_path: Path) -> None:
    path = write(tmp_path, "3")
    path.write_text(
        path.read_text().replace("load: {max: 3}", "load: {max: 3, patience: 90m}")
        + "settings: {max_duration: 6h}\n"
    )
    result = cli("validate", path)
    assert result.code == 0, result.stderr
    assert "load.patience: targets the load keeps waiting 1h30m are deferred" in result.stdout
    assert "max_duration: no new scan after 6h of run" in result.stdout
