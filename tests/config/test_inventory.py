"""The inventory loader: resolved values, inheritance, exact `file:line: field: message` errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.config import AuthMethod, Inventory, PollInterval, Settings, TlsConfig
from orchestrator.config.inventory import load_inventory, select_servers
from orchestrator.errors import ConfigError
from orchestrator.model import ScanType, Secret

ROOT = Path(__file__).resolve().parents[2]
ENV = {"WHM_TOKEN": "whm-secret", "ALICE_TOKEN": "alice-secret", "SHOP_PASSWORD": "pw"}
WHM = "auth: {method: whm_token, user: root, token_env: WHM_TOKEN}"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Errors name the file as given: a relative name keeps the expected texts short.
    monkeypatch.chdir(tmp_path)


def load(text: str, env: dict[str, str] | None = None) -> Inventory:
    Path("inventory.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    return load_inventory("inventory.yaml", env=ENV if env is None else env)


def error(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(text, env)
    return str(info.value)


def one_server(extra: str = "", auth: str = WHM) -> str:
    return f"servers:\n  - name: a\n    host: a.example.com\n    {auth}\n{extra}"


# -- values --------------------------------------------------------------------------------------


def test_minimal_server_gets_the_documented_defaults() -> None:
    inv = load(one_server())
    (server,) = inv.servers
    assert server.name == "a"
    assert server.base_url == "https://a.example.com:2087"
    assert server.auth.method is AuthMethod.WHM_TOKEN
    assert server.auth.user == "root"
    assert server.auth.secret == Secret("whm-secret")
    assert server.accounts is None
    assert server.scan_types == (ScanType.HOME,)
    assert (server.max_concurrent_scans, server.requests_per_second) == (2, 5.0)
    assert server.tls == TlsConfig(verify=True, ca_file=None)
    assert inv.settings == Settings()
    assert inv.path == "inventory.yaml"


def test_the_shipped_example_loads_with_its_variables_set() -> None:
    inv = load_inventory(ROOT / "inventory.example.yaml", env=ENV)
    by_name = {s.name: s for s in inv.servers}
    assert by_name["web01"].base_url == "https://web01.example.com:2087"
    assert by_name["web01"].max_concurrent_scans == 1
    assert by_name["web02"].scan_types == (ScanType.PUBLIC_HTML, ScanType.MAIL)
    assert by_name["lab"].base_url == "http://127.0.0.1:8443"
    assert by_name["lab"].auth.method is AuthMethod.CPANEL_TOKEN
    assert by_name["lab"].accounts == ("alice",)
    assert by_name["shop"].base_url == "https://shop.example.net:2083"
    assert by_name["shop"].accounts == ("shopowner",)
    assert by_name["shop"].requests_per_second == 0.5
    assert inv.settings.poll_interval == PollInterval(2.0, 30.0)


def test_precedence_is_defaults_then_groups_in_order_then_server() -> None:
    inv = load(f"""
        defaults:
          {WHM}
          max_concurrent_scans: 5
          requests_per_second: 9
          scan_types: [home]
        groups:
          slow: {{max_concurrent_scans: 1, requests_per_second: 1}}
          mail: {{scan_types: [mail], requests_per_second: 2}}
        servers:
          - name: a
            host: a.example.com
            groups: [slow, mail]
          - name: b
            host: b.example.com
            groups: [mail, slow]
            requests_per_second: 3
    """)
    a, b = inv.servers
    assert (a.max_concurrent_scans, a.requests_per_second, a.scan_types) == (
        1,
        2.0,
        (ScanType.MAIL,),
    )
    assert (b.max_concurrent_scans, b.requests_per_second) == (1, 3.0)
    assert a.groups == ("slow", "mail")


def test_auth_and_tls_merge_key_by_key() -> None:
    Path("ca.pem").write_text("pem")
    (server,) = load(f"""
        defaults:
          {WHM}
          tls: {{verify: false}}
        servers:
          - name: a
            host: a.example.com
            auth: {{user: reseller}}
            tls: {{ca_file: ca.pem}}
    """).servers
    assert server.auth.user == "reseller"
    assert server.auth.method is AuthMethod.WHM_TOKEN
    assert server.auth.secret == Secret("whm-secret")
    assert server.tls == TlsConfig(verify=False, ca_file=Path.cwd() / "ca.pem")


def test_changing_the_method_drops_the_inherited_secret_user_port_and_accounts() -> None:
    (server,) = load(f"""
        defaults:
          {WHM}
          port: 2087
          accounts: all
        servers:
          - name: a
            host: a.example.com
            auth: {{method: cpanel_password, user: alice, password_env: SHOP_PASSWORD}}
    """).servers
    assert server.auth.secret == Secret("pw")
    assert server.base_url == "https://a.example.com:2083"
    assert server.accounts == ("alice",)


def test_a_method_change_without_a_secret_reference_is_an_error() -> None:
    text = f"""
        defaults:
          {WHM}
        servers:
          - name: a
            host: a.example.com
            auth: {{method: cpanel_token, user: alice}}
    """
    assert error(text) == (
        "inventory.yaml:4: servers[0].auth.token_env: cpanel_token needs token_env or token_file"
        " (not inherited across a change of auth.method)"
    )


def test_a_later_layer_secret_reference_replaces_the_inherited_one() -> None:
    Path("token").write_text("from-file\n")
    (server,) = load(f"""
        defaults:
          {WHM}
        servers:
          - name: a
            host: a.example.com
            auth: {{token_file: token}}
    """).servers
    assert server.auth.secret.reveal() == "from-file"


def test_secret_file_relative_to_the_inventory_with_trailing_newline_stripped(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "secret.txt").write_text("s3cr3t\r\n")
    (tmp_path / "sub" / "inventory.yaml").write_text(
        "servers:\n  - name: a\n    host: h\n"
        "    auth: {method: whm_token, user: root, token_file: secret.txt}\n"
    )
    inv = load_inventory("sub/inventory.yaml", env={})
    assert inv.servers[0].auth.secret.reveal() == "s3cr3t"


def test_url_and_host_forms() -> None:
    inv = load(f"""
        defaults:
          {WHM}
          port: 2087
        servers:
          - {{name: a, url: "https://Cp.Example.com:2083/"}}
          - {{name: b, url: "http://127.0.0.1"}}
          - {{name: c, host: "2001:db8::1", port: 9999}}
          - {{name: d, url: "https://[2001:db8::2]:2087"}}
    """)
    assert [s.base_url for s in inv.servers] == [
        "https://cp.example.com:2083",
        "http://127.0.0.1",
        "https://[2001:db8::1]:9999",
        "https://[2001:db8::2]:2087",
    ]


def test_accounts_and_scan_types() -> None:
    inv = load(f"""
        defaults:
          {WHM}
        servers:
          - name: a
            host: h
            accounts: [bob, alice, bob]
            exclude_accounts: ["test*"]
            include_suspended: yes
            scan_types: [mail, home, mail]
    """)
    (server,) = inv.servers
    assert server.accounts == ("bob", "alice")
    assert server.exclude_accounts == ("test*",)
    assert server.include_suspended is True
    assert server.scan_types == (ScanType.MAIL, ScanType.HOME)


def test_settings_accept_decimals() -> None:
    inv = load(
        one_server(
            "settings:\n  requests_per_second: 2.5\n  poll_interval: {min: 0.1, max: 0.5}\n"
            "  timeouts: {request: 1.5}\n  max_concurrent_servers: 3\n"
        )
    )
    assert inv.settings.requests_per_second == 2.5
    assert inv.settings.poll_interval == PollInterval(0.1, 0.5)
    assert inv.settings.timeouts.request == 1.5
    assert inv.settings.timeouts.scan == 21600.0
    assert inv.settings.max_concurrent_servers == 3


def test_yaml_merge_keys_work() -> None:
    inv = load("""
        defaults:
          auth: &auth {method: whm_token, user: root, token_env: WHM_TOKEN}
        servers:
          - {name: a, host: h, auth: {<<: *auth, user: other}}
    """)
    assert inv.servers[0].auth.user == "other"


def test_a_mapping_merging_itself_is_an_error() -> None:
    message = error("defaults: &a\n  <<: *a\nservers: []\n")
    assert message == "inventory.yaml:1: defaults: a mapping cannot merge itself (<<)"


def test_secrets_never_show_in_reprs() -> None:
    inv = load(one_server())
    assert "whm-secret" not in repr(inv)


def test_select_servers_by_glob_keeps_inventory_order() -> None:
    inv = load(
        f"defaults:\n  {WHM}\nservers:\n"
        "  - {name: web02, host: h}\n  - {name: db01, host: h}\n  - {name: web01, host: h}\n"
    )
    assert [s.name for s in select_servers(inv, ["web*"]).servers] == ["web02", "web01"]
    assert [s.name for s in select_servers(inv, ["db01", "web01"]).servers] == ["db01", "web01"]
    with pytest.raises(ConfigError) as info:
        select_servers(inv, ["web*", "mail*"])
    assert str(info.value) == "--servers: 'mail*' matches no server (web02, db01, web01)"


# -- errors: exact text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            one_server("    prot: 2087\n"),
            "inventory.yaml:5: servers[0].prot: unknown key 'prot' (allowed: name, host, url,"
            " groups, port, auth, tls, accounts, exclude_accounts, include_suspended, scan_types,"
            " max_concurrent_scans, requests_per_second, load, canary)",
            id="unknown-key",
        ),
        pytest.param(
            one_server("    port: abc\n"),
            "inventory.yaml:5: servers[0].port: expected an integer from 1 to 65535,"
            " got the string 'abc'",
            id="wrong-type-int",
        ),
        pytest.param(
            one_server("    include_suspended: 'no'\n"),
            "inventory.yaml:5: servers[0].include_suspended: expected true or false,"
            " got the string 'no'",
            id="wrong-type-bool",
        ),
        pytest.param(
            one_server("    max_concurrent_scans: 0\n"),
            "inventory.yaml:5: servers[0].max_concurrent_scans: expected an integer >= 1,"
            " got 0 (an integer)",
            id="zero-scans",
        ),
        pytest.param(
            one_server("    requests_per_second: -1\n"),
            "inventory.yaml:5: servers[0].requests_per_second: expected a number > 0,"
            " got -1 (an integer)",
            id="negative-rate",
        ),
        pytest.param(
            one_server(auth="auth: {method: whm_token, user: root, token_env: NOPE_TOKEN}"),
            "inventory.yaml:4: servers[0].auth.token_env: environment variable NOPE_TOKEN"
            " is not set",
            id="env-unset",
        ),
        pytest.param(
            one_server(auth="auth: {method: whm, user: root, token_env: WHM_TOKEN}"),
            "inventory.yaml:4: servers[0].auth.method: expected one of whm_token | cpanel_token"
            " | cpanel_password, got a string (value not shown: it may be a secret)",
            id="bad-method",
        ),
        pytest.param(
            one_server(auth="auth: {method: whm_token, user: root, password_env: WHM_TOKEN}"),
            "inventory.yaml:4: servers[0].auth.password_env: whm_token takes token_env or"
            " token_file, not password_env",
            id="wrong-reference-kind",
        ),
        pytest.param(
            one_server(auth="auth: {method: whm_token, user: root, token_env: A, token_file: f}"),
            "inventory.yaml:4: servers[0].auth.token_file: use exactly one secret reference,"
            " not token_env and token_file",
            id="two-references",
        ),
        pytest.param(
            "servers:\n  - name: a\n    url: ftp://a.example.com\n    " + WHM + "\n",
            "inventory.yaml:3: servers[0].url: expected http(s)://host[:port],"
            " got 'ftp://a.example.com'",
            id="bad-url-scheme",
        ),
        pytest.param(
            "servers:\n  - name: a\n    url: https://a.example.com/cpanel\n    " + WHM + "\n",
            "inventory.yaml:3: servers[0].url: expected http(s)://host[:port] without path or"
            " query, got 'https://a.example.com/cpanel'",
            id="bad-url-path",
        ),
        pytest.param(
            "servers:\n  - name: a\n    url: https://a:99999\n    " + WHM + "\n",
            "inventory.yaml:3: servers[0].url: not a valid URL (check the host and port)",
            id="bad-url-port",
        ),
        pytest.param(
            "servers:\n  - name: a\n    host: h\n    url: https://h\n    " + WHM + "\n",
            "inventory.yaml:4: servers[0].url: host and url are mutually exclusive: use one",
            id="host-and-url",
        ),
        pytest.param(
            "servers:\n  - name: a\n    url: https://h\n    port: 2083\n    " + WHM + "\n",
            "inventory.yaml:4: servers[0].port: port and url are mutually exclusive:"
            " put the port in the url",
            id="port-and-url",
        ),
        pytest.param(
            "servers:\n  - name: a\n    " + WHM + "\n",
            "inventory.yaml:2: servers[0].host: each server needs host (and optional port) or url",
            id="no-host",
        ),
        pytest.param(
            "servers:\n  - name: a\n    host: h:2087\n    " + WHM + "\n",
            "inventory.yaml:3: servers[0].host: expected a bare host name; put the port in port:",
            id="host-with-port",
        ),
        pytest.param(
            f"defaults:\n  {WHM}\nservers:\n  - {{name: a, host: h}}\n  - {{name: a, host: i}}\n",
            "inventory.yaml:5: servers[1].name: duplicate server name 'a' (first at line 4)",
            id="duplicate-name",
        ),
        pytest.param(
            f"defaults:\n  {WHM}\nservers:\n  - {{name: 'a b', host: h}}\n",
            "inventory.yaml:4: servers[0].name: expected a name of letters, digits, '.', '_'"
            " and '-', got the string 'a b'",
            id="bad-name",
        ),
        pytest.param(
            f"defaults:\n  {WHM}\nservers:\n  - {{host: h}}\n",
            "inventory.yaml:4: servers[0].name: is required",
            id="no-name",
        ),
        pytest.param(
            f"defaults:\n  {WHM}\ngroups:\n  eu: {{}}\nservers:\n  - name: a\n    host: h\n"
            "    groups: [eu, us]\n",
            "inventory.yaml:8: servers[0].groups[1]: unknown group 'us' (defined: eu)",
            id="unknown-group",
        ),
        pytest.param(
            f"defaults:\n  {WHM}\ngroups:\n  eu: {{host: h}}\nservers:\n  - {{name: a, host: h}}\n",
            "inventory.yaml:4: groups.eu.host: host may only be set on a server, not here",
            id="host-in-group",
        ),
        pytest.param(
            one_server(
                "    accounts: [alice, bob]\n",
                auth="auth: {method: cpanel_token, user: alice, token_env: ALICE_TOKEN}",
            ),
            "inventory.yaml:5: servers[0].accounts: cpanel_token reaches only its own account:"
            " use [alice] or leave it out",
            id="cpanel-accounts-list",
        ),
        pytest.param(
            one_server(
                "    accounts: all\n",
                auth="auth: {method: cpanel_token, user: alice, token_env: ALICE_TOKEN}",
            ),
            "inventory.yaml:5: servers[0].accounts: cpanel_token reaches only its own account:"
            " use [alice] or leave it out",
            id="cpanel-accounts-all",
        ),
        pytest.param(
            one_server("    accounts: some\n"),
            "inventory.yaml:5: servers[0].accounts: expected all or a list of user names,"
            " got the string 'some'",
            id="accounts-word",
        ),
        pytest.param(
            one_server("    accounts: []\n"),
            "inventory.yaml:5: servers[0].accounts: must not be empty",
            id="accounts-empty",
        ),
        pytest.param(
            one_server("    scan_types: [home, www]\n"),
            "inventory.yaml:5: servers[0].scan_types[1]: expected one of home | mail |"
            " public_html | public_ftp, got the string 'www'",
            id="bad-scan-type",
        ),
        pytest.param(
            one_server("    scan_types: []\n"),
            "inventory.yaml:5: servers[0].scan_types: must not be empty",
            id="no-scan-types",
        ),
        pytest.param(
            one_server("settings:\n  poll_interval: {min: 40, max: 30}\n"),
            "inventory.yaml:6: settings.poll_interval.min: min (40) must not be larger than"
            " max (30)",
            id="poll-min-over-max",
        ),
        pytest.param(
            one_server("settings:\n  poll_interval: {min: 40}\n"),
            "inventory.yaml:6: settings.poll_interval.min: min (40) must not be larger than"
            " max (30)",
            id="poll-min-over-default-max",
        ),
        pytest.param(
            one_server("settings:\n  timeouts: {scan: .nan}\n"),
            "inventory.yaml:6: settings.timeouts.scan: expected seconds > 0 or a duration such as"
            " 45s, 90m, 6h, 1h30m, got .nan (a decimal number)",
            id="nan-timeout",
        ),
        pytest.param(
            one_server("settings:\n  timeout: {scan: 1}\n"),
            "inventory.yaml:6: settings.timeout: unknown key 'timeout' (allowed:"
            " max_concurrent_servers, requests_per_second, poll_interval, timeouts, window,"
            " history, notify, accepted, max_duration)",
            id="unknown-settings-key",
        ),
        pytest.param(
            one_server("    tls: {verify: true, ca_file: missing.pem}\n"),
            "inventory.yaml:5: servers[0].tls.ca_file: CA file {cwd}/missing.pem does not exist",
            id="ca-file-missing",
        ),
        pytest.param(
            "servers:\n  - name: a\n    host: [unclosed\n",
            "inventory.yaml:4: invalid YAML: while parsing a flow sequence, expected ',' or ']',"
            " but got '<stream end>'",
            id="yaml-syntax",
        ),
        pytest.param(
            "servers:\n  - name: a\n    name: b\n",
            "inventory.yaml:3: servers[0].name: duplicate key (first at line 2)",
            id="duplicate-key",
        ),
        pytest.param(
            "",
            "inventory.yaml: the inventory is empty: it needs at least a servers list",
            id="empty",
        ),
        pytest.param(
            "# nothing\n",
            "inventory.yaml: the inventory is empty: it needs at least a servers list",
            id="comments-only",
        ),
        pytest.param(
            "- name: a\n",
            "inventory.yaml:1: expected a mapping with a servers list, got a list",
            id="top-level-list",
        ),
        pytest.param(
            f"defaults:\n  {WHM}\n",
            "inventory.yaml:1: servers: is required: list at least one server",
            id="no-servers",
        ),
        pytest.param(
            "servers: []\n", "inventory.yaml:1: servers: must not be empty", id="empty-servers"
        ),
        pytest.param(
            "servers:\n",
            "inventory.yaml:1: servers: must list at least one server",
            id="null-servers",
        ),
        pytest.param(
            "servers:\n  - name: a\n    host: h\n    auth: {method: whm_token, token_env: X}\n",
            "inventory.yaml:2: servers[0].auth.user: is required (here, in a group or in defaults)",
            id="no-user",
        ),
    ],
)
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    assert error(text) == expected.replace("{cwd}", str(Path.cwd()))


def test_inline_secrets_are_refused_without_echoing_them() -> None:
    message = error(one_server(auth="auth: {method: whm_token, user: root, token: HUNTER2XYZ}"))
    assert message == (
        "inventory.yaml:4: servers[0].auth.token: secrets may only be referenced:"
        " use token_env or token_file"
    )
    message = error(
        one_server(auth="auth: {method: cpanel_password, user: a, password: HUNTER2XYZ}")
    )
    assert message.endswith("use password_env or password_file")
    assert "HUNTER2XYZ" not in message


def test_a_token_pasted_into_token_env_is_not_echoed() -> None:
    token = "ABCDEFGHIJ0123456789KLMNOPQRSTUV"
    message = error(one_server(auth=f"auth: {{method: whm_token, user: root, token_env: {token}}}"))
    assert token not in message
    assert "the environment variable named here is not set (value not shown" in message


def test_credentials_in_a_url_are_refused_without_echoing_them() -> None:
    message = error("servers:\n  - name: a\n    url: https://root:pw123@h\n    " + WHM + "\n")
    assert message == (
        "inventory.yaml:3: servers[0].url: credentials in the url are not allowed: use auth"
    )


def test_empty_environment_variable_is_named() -> None:
    message = error(one_server(), env={"WHM_TOKEN": ""})
    assert message == (
        "inventory.yaml:4: servers[0].auth.token_env: environment variable WHM_TOKEN is empty"
    )


def test_secret_file_missing_or_empty_is_named() -> None:
    auth = "auth: {method: whm_token, user: root, token_file: tok.txt}"
    field = "inventory.yaml:4: servers[0].auth.token_file: "
    assert error(one_server(auth=auth)) == (
        f"{field}the secret file named here does not exist (value not shown: it may be a secret;"
        f" relative paths start at {Path.cwd()})"
    )
    Path("tok.txt").write_text("\n")
    assert error(one_server(auth=auth)) == f"{field}secret file {Path.cwd() / 'tok.txt'} is empty"


def test_inherited_faults_name_the_server_that_inherits_them() -> None:
    message = error(f"defaults:\n  {WHM}\nservers:\n  - {{name: web01, host: h}}\n", env={})
    assert message == (
        "inventory.yaml:2: defaults.auth.token_env: environment variable WHM_TOKEN is not set"
        " (inherited by server web01)"
    )


def test_faults_in_defaults_are_found_even_when_every_server_overrides_them() -> None:
    text = f"defaults:\n  {WHM}\n  port: 0\nservers:\n  - {{name: a, host: h, port: 1}}\n"
    assert error(text) == (
        "inventory.yaml:3: defaults.port: expected an integer from 1 to 65535, got 0 (an integer)"
    )


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_inventory("nope.yaml", env={})
    assert str(info.value) == "nope.yaml: cannot read the inventory: No such file or directory"


def test_python_tags_are_not_constructed() -> None:
    message = error("servers: !!python/object/apply:os.system ['true']\n")
    assert message == (
        "inventory.yaml:1: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'"
        " is not allowed"
    )
