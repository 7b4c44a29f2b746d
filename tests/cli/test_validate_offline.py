"""`clamfleet validate` lints an inventory and policy offline, without the secrets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli.lint import could_be_mail, policy_warnings
from orchestrator.config import Policy, Rule
from orchestrator.config.inventory import load_inventory
from orchestrator.errors import ConfigError
from orchestrator.model import Action, ScanType
from tests.support import Outcome

CLI = Callable[..., Outcome]

# Port 9 on loopback: nothing answers there, and offline validate must never try.
INVENTORY = """\
defaults:
  auth: {method: whm_token, user: root, token_env: CLAMFLEET_LINT_TOKEN}
  requests_per_second: 3
servers:
  - name: web01
    url: https://127.0.0.1:9
    exclude_accounts: ["tmp*", old]
    max_concurrent_scans: 4
  - name: web02
    url: https://127.0.0.1:9
    tls: {verify: false}
    auth: {method: cpanel_password, user: alice, password_file: secrets/alice.pw}
"""


@pytest.fixture
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CLAMFLEET_LINT_TOKEN", raising=False)
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return path


def test_validate_needs_no_secret_and_shows_what_each_server_resolves_to(
    cli: CLI, inventory: Path
) -> None:
    result = cli("validate", inventory)
    assert result.code == 0, result.stderr
    assert f"{inventory}: OK, 2 servers" in result.stdout
    web01, web02 = result.stdout.split("  web01 ")[1].split("  web02 ")
    assert "whm_token as root (token_env CLAMFLEET_LINT_TOKEN)" in web01
    assert "exclude: tmp*, old" in web01
    assert "max_concurrent_scans 4, requests_per_second 3" in web01
    assert "TLS: verify, system CAs" in web01
    assert "cpanel_password as alice (password_file)" in web02
    assert "max_concurrent_scans 2, requests_per_second 3" in web02
    assert "NOT VERIFIED" in web02
    assert "warning: web02: tls.verify is false" in result.stdout
    assert "web01: tls.verify" not in result.stdout


def test_a_missing_secret_is_still_an_error_for_run_and_for_connectivity_checks(
    cli: CLI, inventory: Path
) -> None:
    for args in (("run", inventory), ("validate", inventory, "--check-connectivity")):
        result = cli(*args)
        assert result.code == 3
        assert "environment variable CLAMFLEET_LINT_TOKEN is not set" in result.stderr


def test_an_offline_load_reads_no_secret_and_marks_the_credentials_unresolved(
    inventory: Path,
) -> None:
    loaded = load_inventory(inventory, env={"CLAMFLEET_LINT_TOKEN": "t0ken"}, secrets=False)
    assert all(not s.auth.resolved and s.auth.secret.reveal() == "" for s in loaded.servers)
    with pytest.raises(ConfigError, match="secret file named here does not exist"):
        load_inventory(inventory, env={"CLAMFLEET_LINT_TOKEN": "t0ken"})  # run's way: it reads


def test_validate_still_refuses_an_invalid_inventory_offline(cli: CLI, tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY.replace("token_env: CLAMFLEET_LINT_TOKEN", "token_env: 6IFA7"))
    result = cli("validate", path)
    assert result.code == 3
    assert "defaults.auth.token_env: is not a valid environment variable name" in result.stderr


POLICY = """\
rules:
  - name: web-mail
    when: {path: "*/public_html/*"}
    action: cleanse_mailbox
  - name: ftp-mail
    when: {scan_type: public_ftp}
    action: cleanse_mailbox
  - name: mail
    when: {path: "*/mail/*"}
    action: cleanse_mailbox
  - name: everything
    when: {virus: "*", path: "*"}
    action: quarantine
  - name: eicar
    when: {virus: "Eicar-*"}
    action: ignore
"""


def test_validate_warns_about_policy_rules_that_can_never_apply(
    cli: CLI, inventory: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    result = cli("validate", inventory, "--policy", policy)
    assert result.code == 0, result.stderr  # warnings, not errors
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    about_policy = [w for w in warnings if str(policy) in w]
    assert len(about_policy) == 3, warnings
    assert "rules[0] (web-mail): cleanse_mailbox can never apply" in about_policy[0]
    assert (
        "rules[1] (ftp-mail): cleanse_mailbox can never apply with scan_type public_ftp"
        in (about_policy[1])
    )
    assert "rules[4] (eicar) never applies: rules[3] (everything) before it" in about_policy[2]


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("*/mail/*", True),
        ("/home/*/mail/*", True),
        ("*", True),
        ("/home/*/*", True),
        ("*/public_html/*", False),
        ("*.php", False),
        ("/home/alice/public_ftp/*", False),
    ],
)
def test_which_path_globs_could_match_mail_files(glob: str, expected: bool) -> None:
    assert could_be_mail(glob) is expected


def test_a_catch_all_for_one_scan_type_shadows_only_rules_for_that_type() -> None:
    policy = Policy(
        rules=(
            Rule(Action.QUARANTINE, name="home-all", scan_type=ScanType.HOME),
            Rule(Action.IGNORE, name="mail-eicar", virus="Eicar-*", scan_type=ScanType.MAIL),
            Rule(Action.IGNORE, name="home-eicar", virus="Eicar-*", scan_type=ScanType.HOME),
            Rule(Action.IGNORE, name="any-eicar", virus="Eicar-*"),
        )
    )
    warnings = list(policy_warnings(policy))
    assert warnings == [
        "rules[2] (home-eicar) never applies: rules[0] (home-all) before it matches every file"
        " (first match wins)"
    ]


def test_a_sensible_policy_gets_no_warning() -> None:
    policy = Policy(
        rules=(
            Rule(Action.IGNORE, name="test-signatures", virus="Eicar-*"),
            Rule(Action.CLEANSE_MAILBOX, name="mail", path="*/mail/*"),
            Rule(Action.QUARANTINE, name="everything-else"),
        )
    )
    assert list(policy_warnings(policy)) == []


def test_validate_warns_that_home_plus_another_scan_type_reads_those_files_twice(
    cli: CLI, inventory: Path
) -> None:
    inventory.write_text(
        INVENTORY.replace(
            "    max_concurrent_scans: 4\n",
            "    max_concurrent_scans: 4\n    scan_types: [home, mail, public_html]\n",
        )
    )
    result = cli("validate", inventory)
    assert result.code == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if "scanned twice" in x]
    assert line.startswith("warning: web01: scan_types home and mail, public_html")
    assert "mail/, public_html/" in line
    assert "web02: scan_types" not in result.stdout  # home alone: nothing read twice
