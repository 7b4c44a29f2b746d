"""validate --check-api --record: whatever the tokens and passwords are, no transcript holds one,
nor a session id or cookie the server handed out (property test over the real stack: the
simulator on 127.0.0.1, the transport's recorder, the redaction, the files)."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import string
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_plus

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from orchestrator.cli.probe import ProbeOptions, check_api
from orchestrator.client import RetryPolicy
from orchestrator.config.inventory import load_inventory
from orchestrator.simulator import AccountSpec, FleetSpec, ServerSpec, SimulatorThread
from tests.support import FAST_SERVER, FAST_SETTINGS, infected_account

QUICK = RetryPolicy(attempts=2, total=2.0, initial=0.01, max=0.02, jitter=0.0)
#: Brackets left out: "[REDACTED]" itself must not spell a secret.
TOKEN_CHARS = "".join(c for c in string.ascii_letters + string.digits + string.punctuation)
TOKEN_CHARS = TOKEN_CHARS.replace("[", "").replace("]", "")
#: A digit in each: an all-letter secret could be a word of the transcript's frame ("response").
tokens = st.text(alphabet=TOKEN_CHARS, min_size=8, max_size=48).filter(
    lambda t: any(c.isdigit() for c in t)
)
passwords = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters="[]"
    ),
    min_size=8,
    max_size=32,
).filter(lambda p: p == p.strip() and not p.isalpha())
SESSION_LEAKS = (
    re.compile(r"cpsess\d"),
    re.compile(r"session=(?!\[REDACTED\])"),
    re.compile(r"[0-9a-f]{32}"),  # the simulator's session names: user:<128 random bits>
)


def leaked(secret: str, user: str, text: str) -> list[str]:
    """Every way `secret` can be read back out of a transcript's text."""
    views = {
        "as is": text,
        "url-decoded": unquote(text),
        "form-decoded": unquote_plus(text),
        "html-decoded": html.unescape(text),
    }
    found = [name for name, view in views.items() if secret in view]
    strings = list(_strings(json.loads(text)))
    found += ["in a JSON string" for s in strings if secret in s or secret in unquote(s)]
    for raw in (secret, f"{user}:{secret}"):
        if base64.b64encode(raw.encode()).decode().rstrip("=") in text:
            found.append("base64")
    return found


def _strings(value: Any) -> Any:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _record(spec: FleetSpec, auth: str, folder: Path, **options: Any) -> list[str]:
    with SimulatorThread(spec) as fleet:
        inventory_path = folder / f"inventory-{auth}.yaml"
        keys = {**FAST_SERVER, "scan_types": ["public_html"]}
        env = fleet.write_inventory(
            inventory_path, auth=auth, settings=FAST_SETTINGS, extra_server_keys=keys
        )
        inventory = load_inventory(inventory_path, env=env)
        out = folder / f"record-{auth}"
        probe = ProbeOptions(record=out, **options)
        check_api(inventory, probe, out=io.StringIO(), retry=QUICK)
    return [p.read_text() for p in sorted(out.iterdir())]


@pytest.mark.expect_violations("scan-overlap", "scan-restarted")  # the canary's second start
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # each example starts a fleet: no
    # shrinking (minutes); the failing example is printed as generated
)
@given(whm_token=tokens, cpanel_token=tokens, password=passwords)
def test_no_transcript_holds_a_secret_session_or_cookie(
    whm_token: str, cpanel_token: str, password: str
) -> None:
    canary = infected_account(
        "canary", scan_seconds=0.3, cpanel_token=cpanel_token, password=password
    )
    bob = AccountSpec("bob")
    server = ServerSpec("sim01", (canary, bob), whm_token=whm_token)
    spec = FleetSpec((server,), scan_seconds=0.2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        texts = _record(spec, "whm", folder, canary="canary", scan_canary=True)
        texts += _record(spec, "cpanel_password", folder)
        texts += _record(spec, "cpanel_token", folder)
    assert len(texts) == 5  # one per inventory entry: WHM, and each account's own login twice
    secrets = [("root", whm_token), ("canary", cpanel_token), ("canary", password)]
    secrets += [("bob", bob.cpanel_token), ("bob", bob.password)]
    for text in texts:
        for user, secret in secrets:
            assert leaked(secret, user, text) == [], (secret, text[:2000])
        for pattern in SESSION_LEAKS:
            assert pattern.search(text) is None, pattern.pattern
    whm_text = texts[0]
    assert '"Authorization": "whm [REDACTED]"' in whm_text
    assert "cpsession=[REDACTED]" in whm_text  # the session login's Set-Cookie
    assert '"Cookie": "[REDACTED]"' in whm_text
