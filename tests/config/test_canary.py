"""The inventory's `canary` key: inheritance, the scan type, and which entry of a host scans it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.config import Canary, Inventory
from orchestrator.config.inventory import load_inventory
from orchestrator.engine.shard import assign_shards
from orchestrator.errors import ConfigError
from orchestrator.model import ScanType

ENV = {"WHM_TOKEN": "w", "A_TOKEN": "a", "B_TOKEN": "b", "C_TOKEN": "c"}
CANARY = "canary: {account: clamcanary, path: public_html/eicar.txt}"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(text: str) -> Inventory:
    Path("inventory.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    return load_inventory("inventory.yaml", env=ENV)


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(text)
    return str(info.value)


def test_a_canary_in_defaults_reaches_every_server_and_null_turns_it_off() -> None:
    inv = load(
        f"""
        defaults:
          auth: {{method: whm_token, user: root, token_env: WHM_TOKEN}}
          {CANARY}
        servers:
          - {{name: web01, host: web01.example.com}}
          - {{name: web02, host: web02.example.com, canary: null}}
        """
    )
    web01, web02 = inv.servers
    assert web01.canary == Canary(
        "clamcanary", "public_html/eicar.txt", "*EICAR*", ScanType.PUBLIC_HTML, by="web01"
    )
    assert web02.canary is None


@pytest.mark.parametrize(
    ("path", "scan_type"),
    [
        ("public_html/eicar.txt", ScanType.PUBLIC_HTML),
        ("mail/eicar.eml", ScanType.MAIL),
        ("public_ftp/eicar.txt", ScanType.PUBLIC_FTP),
        ("./canary/eicar.txt", ScanType.HOME),
    ],
)
def test_the_scan_type_is_the_one_the_path_lies_in(path: str, scan_type: ScanType) -> None:
    inv = load(
        f"""
        servers:
          - name: web01
            host: web01.example.com
            auth: {{method: whm_token, user: root, token_env: WHM_TOKEN}}
            canary: {{account: c, path: "{path}", virus: "Eicar-*"}}
        """
    )
    canary = inv.servers[0].canary
    assert canary is not None
    assert (canary.scan_type, canary.path, canary.virus) == (
        scan_type,
        path.removeprefix("./"),
        "Eicar-*",
    )


@pytest.mark.parametrize(
    ("canary", "message"),
    [
        (
            "{account: c, path: public_html/e.txt, scan_type: mail}",
            "inventory.yaml:5: servers[0].canary.scan_type: a mail scan does not read"
            " public_html/e.txt",
        ),
        (
            "{account: c, path: /home/c/public_html/e.txt}",
            "inventory.yaml:5: servers[0].canary.path: expected a path relative to the account's"
            " home (public_html/eicar.txt), got '/home/c/public_html/e.txt'",
        ),
        (
            "{account: c, path: ../x/e.txt}",
            "inventory.yaml:5: servers[0].canary.path: expected a path relative to the account's"
            " home (public_html/eicar.txt), got '../x/e.txt'",
        ),
        (
            "{path: public_html/e.txt}",
            "inventory.yaml:5: servers[0].canary.account: is required: the account that holds"
            " the test file",
        ),
        (
            "{account: c, path: public_html/e.txt, file: x}",
            "inventory.yaml:5: servers[0].canary.file: unknown key 'file' (allowed: account,"
            " path, virus, scan_type)",
        ),
    ],
)
def test_canary_errors_name_file_line_and_field(canary: str, message: str) -> None:
    text = f"""
        servers:
          - name: web01
            host: web01.example.com
            auth: {{method: whm_token, user: root, token_env: WHM_TOKEN}}
            canary: {canary}
        """
    assert error(text) == message


CPANEL_HOST = f"""
defaults:
  {CANARY}
servers:
  - name: web03-alice
    url: https://web03.example.com:2083
    auth: {{method: cpanel_token, user: alice, token_env: A_TOKEN}}
  - name: web03-bob
    url: https://web03.example.com:2083
    auth: {{method: cpanel_token, user: bob, token_env: B_TOKEN}}
  - name: web03-canary
    url: https://web03.example.com:2083
    auth: {{method: cpanel_token, user: clamcanary, token_env: C_TOKEN}}
  - name: web04-alice
    url: https://web04.example.com:2083
    auth: {{method: cpanel_token, user: alice, token_env: A_TOKEN}}
    canary: null
"""


def test_cpanel_logins_of_a_host_are_verified_by_the_entry_of_the_canary_account() -> None:
    inv = load(CPANEL_HOST)
    by = {s.name: s.canary.by if s.canary else None for s in inv.servers}
    assert by == {
        "web03-alice": "web03-canary",
        "web03-bob": "web03-canary",
        "web03-canary": "web03-canary",
        "web04-alice": None,
    }


def test_a_host_where_no_entry_can_reach_the_canary_account_is_an_error() -> None:
    text = CPANEL_HOST.replace("user: clamcanary", "user: carol")
    assert error(text) == (
        "inventory.yaml:2: defaults.canary: no entry on web03.example.com:2083 can scan account"
        " clamcanary: a cpanel_token/cpanel_password entry reaches only its own account, so add"
        " an entry for clamcanary on this host"
    )


def test_entries_of_one_host_must_name_the_same_canary() -> None:
    text = CPANEL_HOST.replace(
        "    auth: {method: cpanel_token, user: bob, token_env: B_TOKEN}\n",
        "    auth: {method: cpanel_token, user: bob, token_env: B_TOKEN}\n"
        "    canary: {account: clamcanary, path: canary/eicar.txt}\n",
    )
    assert error(text) == (
        "inventory.yaml:10: servers[1].canary: entries on one host share one canary: web03-alice"
        " names another (clamcanary: public_html/eicar.txt, *EICAR*)"
    )


def test_a_whm_entry_scans_its_own_canary_whatever_the_account_list() -> None:
    inv = load(
        f"""
        servers:
          - name: web01
            host: web01.example.com
            auth: {{method: whm_token, user: root, token_env: WHM_TOKEN}}
            accounts: [alice, bob]
            {CANARY}
        """
    )
    canary = inv.servers[0].canary
    assert canary is not None and canary.by == "web01"


def test_shards_keep_the_entries_of_a_host_with_the_entry_that_scans_its_canary() -> None:
    inv = load(CPANEL_HOST)
    for n in (2, 3, 4):
        shards = assign_shards(inv.servers, n)
        assert shards["web03-alice"] == shards["web03-bob"] == shards["web03-canary"], n
