"""Offline `validate` warns about limits that leave a server unable to work, about account
names that cannot be what was meant, and not about Maildir paths that can be mail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli.lint import account_name_warnings, could_be_mail, limit_warnings
from orchestrator.config.inventory import load_inventory
from tests.support import Outcome

CLI = Callable[..., Outcome]

SILLY = """\
defaults:
  auth: {method: whm_token, user: root, token_env: CLAMFLEET_LINT_TOKEN}
servers:
  - name: web01
    url: https://127.0.0.1:9
    accounts: [alice, bob, alice]
    requests_per_second: 0.000001
    load: {max: 0.05, check_interval: 100000}
  - name: web02
    url: https://127.0.0.2:9
    accounts: [carol, Carol, Dave]
    max_concurrent_scans: 4
    load: {max: 3}
  - name: web03
    url: https://127.0.0.2:9
    auth: {method: cpanel_token, user: carol, token_env: CAROL_TOKEN}
"""

SENSIBLE = """\
defaults:
  auth: {method: whm_token, user: root, token_env: CLAMFLEET_LINT_TOKEN}
settings: {requests_per_second: 50}
servers:
  - name: web01
    url: https://127.0.0.1:9
    requests_per_second: 0.5
    load: {max: 3, check_interval: 120}
  - name: web02
    url: https://127.0.0.2:9
    exclude_accounts: [carol]
  - name: web03
    url: https://127.0.0.2:9
    auth: {method: cpanel_token, user: carol, token_env: CAROL_TOKEN}
"""


def warnings_of(cli: CLI, tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    result = cli("validate", path)
    assert result.code == 0, result.stderr  # warnings, never errors
    return [line for line in result.stdout.splitlines() if line.startswith("warning:")]


def test_validate_warns_about_limits_that_leave_a_server_unable_to_work(
    cli: CLI, tmp_path: Path
) -> None:
    warnings = warnings_of(cli, tmp_path, SILLY)
    (rate,) = [w for w in warnings if "requests_per_second" in w]
    assert rate.startswith("warning: web01: requests_per_second 1e-06: one request every")
    assert "days" in rate
    assert any("web01: load.max 0.05 is under 1:" in w for w in warnings)
    assert any("web01: load.check_interval 1.2 days:" in w for w in warnings)
    assert not [w for w in warnings if "web02: load" in w], "load.max 3 is sensible"


def test_validate_warns_about_account_names_listed_twice_or_differing_in_case(
    cli: CLI, tmp_path: Path
) -> None:
    warnings = warnings_of(cli, tmp_path, SILLY)
    assert any("inventory.yaml:6: accounts lists alice twice" in w for w in warnings), warnings
    assert any("web02: account names carol and Carol differ only in case" in w for w in warnings)
    assert any("web02: account name Dave has capitals" in w and "dave?" in w for w in warnings)
    (twice,) = [w for w in warnings if "scanned by both" in w]
    assert twice.startswith("warning: web03: account carol on 127.0.0.2 is also scanned by web02")


def test_sensible_limits_and_names_get_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(SENSIBLE)
    inventory = load_inventory(path, secrets=False)
    assert list(limit_warnings(inventory)) == []
    assert list(account_name_warnings(inventory)) == [], "web02 excludes carol: scanned once"


@pytest.mark.parametrize(
    "glob", ["*/tmp/*", "*/new/*", "*/cur/*", "/home/*/mail/*/*/tmp/*", "*/.Junk/*"]
)
def test_maildir_folders_can_hold_mail(glob: str) -> None:
    """Maildir keeps every message under cur/, new/ or tmp/ of its mailbox folder."""
    assert could_be_mail(glob)


def test_a_cleanse_rule_for_maildir_tmp_gets_no_mail_warning(cli: CLI, tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(SENSIBLE)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n  - name: tmp\n    when: {path: '*/tmp/*'}\n    action: cleanse_mailbox\n"
    )
    result = cli("validate", path, "--policy", policy)
    assert result.code == 0, result.stderr
    assert "matches no file under mail/" not in result.stdout
