"""A secret pasted where a reference belongs never shows up in an error message."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli import main
from orchestrator.config.inventory import load_inventory
from orchestrator.errors import ConfigError
from orchestrator.secretref import shown_env_name

TOKEN = "6IFA3QX0ZK7M1N2B4C5D8E9F0G1H2J3K"  # the shape of a cPanel API token


def inventory_error(tmp_path: Path, auth: str) -> str:
    path = tmp_path / "inventory.yaml"
    path.write_text(f"servers:\n  - name: a\n    host: a.example.com\n    auth: {auth}\n")
    with pytest.raises(ConfigError) as info:
        load_inventory(path, env={})
    return str(info.value)


def test_a_token_pasted_into_token_env_is_refused_without_echoing_it(tmp_path: Path) -> None:
    message = inventory_error(tmp_path, f"{{method: whm_token, user: root, token_env: {TOKEN}}}")
    assert TOKEN not in message and "6IFA" not in message
    assert message.endswith(
        "servers[0].auth.token_env: is not a valid environment variable name"
        " (value not shown: it may be a secret)"
    )


def test_a_token_shaped_like_a_name_is_not_echoed_as_an_unset_variable(tmp_path: Path) -> None:
    token = "ABCDEFGHIJ0123456789KLMNOPQRSTUV"  # a valid variable name, but no underscore
    message = inventory_error(tmp_path, f"{{method: whm_token, user: root, token_env: {token}}}")
    assert token not in message
    assert "the environment variable named here is not set" in message
    assert "token_env takes the name of a variable" in message


def test_a_password_pasted_into_password_file_is_not_echoed(tmp_path: Path) -> None:
    auth = "{method: cpanel_password, user: alice, password_file: 'Tr0ub4dor&3'}"
    message = inventory_error(tmp_path, auth)
    assert "Tr0ub4dor" not in message
    assert "servers[0].auth.password_file: the secret file named here does not exist" in message
    assert f"relative paths start at {tmp_path}" in message


def test_a_secret_pasted_as_the_method_is_not_echoed(tmp_path: Path) -> None:
    message = inventory_error(tmp_path, f"{{method: {TOKEN}, user: root, token_env: WHM_TOKEN}}")
    assert TOKEN not in message
    assert "auth.method: expected one of whm_token | cpanel_token | cpanel_password" in message


def test_conventional_variable_names_are_still_named(tmp_path: Path) -> None:
    message = inventory_error(tmp_path, "{method: whm_token, user: root, token_env: WHM_TOKEN}")
    assert message.endswith("servers[0].auth.token_env: environment variable WHM_TOKEN is not set")


def test_an_existing_secret_file_is_named_when_it_is_empty(tmp_path: Path) -> None:
    (tmp_path / "whm.token").write_text("\n")
    message = inventory_error(tmp_path, "{method: whm_token, user: root, token_file: whm.token}")
    assert message.endswith(f"secret file {tmp_path / 'whm.token'} is empty")


def test_a_webhook_url_given_instead_of_its_variable_is_not_echoed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAMFLEET_TEST_UNSET_HOOK", raising=False)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "servers:\n  - name: a\n    host: a.example.com\n"
        "    auth: {method: whm_token, user: root, token_env: CLAMFLEET_TEST_TOKEN}\n"
    )
    monkeypatch.setenv("CLAMFLEET_TEST_TOKEN", "x")
    hook = "hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXX"  # pasted without its scheme
    out = tmp_path / "out"
    code = main(["run", str(inventory), "--notify-webhook", hook, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 3
    assert hook not in err and "XXXXXXXXXXXX" not in err
    assert "--notify-webhook: the environment variable named here is not set" in err
    code = main(["run", str(inventory), "--notify-webhook", "CLAMFLEET_TEST_UNSET_HOOK"])
    assert code == 3
    assert "environment variable CLAMFLEET_TEST_UNSET_HOOK is not set" in capsys.readouterr().err


# -- property: whatever secret is pasted into whichever field, the error never shows it ---------

TOKENS = st.text(alphabet=string.ascii_uppercase + string.digits, min_size=32, max_size=32).filter(
    lambda t: any(c.isdigit() for c in t)
)
# Passwords: printable ASCII with at least a lower-case letter, a digit and a symbol.
PASSWORDS = st.text(
    alphabet=string.ascii_letters + string.digits + string.punctuation + " ", min_size=12
).filter(
    lambda p: (
        any(c.islower() for c in p)
        and any(c.isdigit() for c in p)
        and any(c in string.punctuation for c in p)
        and p.strip() == p
    )
)
FIELDS = {
    "token_env": "whm_token",
    "token_file": "whm_token",
    "password_env": "cpanel_password",
    "password_file": "cpanel_password",
    "method": None,
    "user": None,
}


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=st.one_of(TOKENS, PASSWORDS), field=st.sampled_from(sorted(FIELDS)))
def test_no_pasted_secret_ever_appears_in_an_inventory_error(
    tmp_path: Path, secret: str, field: str
) -> None:
    quoted = json.dumps(secret)  # a JSON string is a valid YAML double-quoted scalar
    method = FIELDS[field]
    if field == "method":
        auth = f"{{method: {quoted}, user: root, token_env: WHM_TOKEN}}"
    elif field == "user":  # the user is a name, but a `user: [secret]` slip is still not shown
        auth = f"{{method: whm_token, user: [{quoted}], token_env: WHM_TOKEN}}"
    else:
        auth = f"{{method: {method}, user: alice, {field}: {quoted}}}"
    message = inventory_error(tmp_path, auth)
    assert secret not in message
    assert "auth" in message  # the error still says where


@given(name=st.one_of(TOKENS, PASSWORDS))
def test_secret_like_strings_never_pass_as_printable_variable_names(name: str) -> None:
    assert shown_env_name(name) is None


def test_a_tilde_path_for_an_unknown_user_is_a_one_line_error_not_a_crash(tmp_path: Path) -> None:
    auth = "{method: cpanel_password, user: alice, password_file: '~0000000000a'}"
    message = inventory_error(tmp_path, auth)
    assert "0000000000a" not in message
    assert message.endswith(
        "servers[0].auth.password_file: its leading ~ names no home directory on this machine"
    )
