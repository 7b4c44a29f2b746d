"""The redaction of recorded exchanges: a secret put anywhere an exchange can carry it (headers,
query strings, JSON, forms, HTML, error texts), in any wire form, never survives."""

from __future__ import annotations

import base64
import html
import json
import string
from urllib.parse import quote, unquote, unquote_plus, urlencode

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from yarl import URL

from orchestrator.client.transcript import REDACTED, Credential, Exchange, Redactor

secrets = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="[]"),
    min_size=4,
    max_size=40,
).filter(lambda s: s.strip() == s and s not in REDACTED)
FORM = "application/x-www-form-urlencoded"
users = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8)


def exchanges(user: str, secret: str) -> list[Exchange]:
    """Every place an exchange can hold a secret, each in the form it would take there."""
    basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
    url = str(URL("https://web01.example.com:2083/execute/X/y").update_query({"q": secret}))
    return [
        Exchange(
            "web01", "f", "GET", url, (("Authorization", f"whm {user}:{secret}"),), None, 200,
            (("Content-Type", "application/json"),), json.dumps({"data": {"x": secret}}).encode(),
        ),
        Exchange(
            "web01", "f", "POST", "https://web01.example.com:2083/login",
            (("Authorization", f"Basic {basic}"), ("Content-Type", FORM)),
            urlencode({"user": user, "note": secret}).encode(), 200,
            (("Content-Type", "text/html"),), f"<p>{html.escape(secret)}</p>".encode(),
        ),
        Exchange(
            "web01", "g", "POST", f"https://web01.example.com:2083/x?{quote(secret)}",
            (("Cookie", f"cpsession={secret}"),),
            json.dumps({"actions": {secret: "ignore"}}, ensure_ascii=False).encode(), 200,
            (("Set-Cookie", f"cpsession={quote(secret)}; path=/"),),
            json.dumps({"s": secret}).replace("/", "\\/").encode(),
        ),
        Exchange(
            "web01", "h", "GET", "https://web01.example.com:2083/", (), None,
            error=f"cannot connect: {secret}",
        ),
    ]  # fmt: skip


def readable(secret: str, text: str) -> bool:
    decoded = [text, unquote(text), unquote_plus(text), html.unescape(text)]
    strings = [json.loads(f'"{chunk}"') for chunk in _json_strings(text)]
    return any(secret in view for view in decoded + strings)


def _json_strings(text: str) -> list[str]:
    """The string literals of a JSON text, still escaped (decoded by the caller)."""
    out, inside, start, escaped = [], False, 0, False
    for i, char in enumerate(text):
        if inside and escaped:
            escaped = False
        elif inside and char == "\\":
            escaped = True
        elif char == '"':
            if inside:
                out.append(text[start:i])
            inside, start = not inside, i + 1
    return out


@settings(max_examples=300)
@given(user=users, secret=secrets)
def test_no_form_of_a_secret_survives_redaction(user: str, secret: str) -> None:
    # A secret spelled by the transcript's own frame ("null", "headers") cannot be told apart.
    frame = Redactor([Credential(user, "\x01\x02\x03\x04")])
    for exchange in exchanges(user, "\x01\x02\x03\x04"):
        assume(not readable(secret, json.dumps(frame.exchange(exchange), ensure_ascii=False)))
    redactor = Redactor([Credential(user, secret)])
    for exchange in exchanges(user, secret):
        text = json.dumps(redactor.exchange(exchange), ensure_ascii=False)
        assert not readable(secret, text), text


@given(secret=secrets)
def test_credential_headers_go_whole_even_when_the_secret_is_unknown(secret: str) -> None:
    redactor = Redactor([])
    basic = base64.b64encode(f"alice:{secret}".encode()).decode()
    shown = redactor.headers(
        [("Authorization", f"Basic {basic}"), ("Cookie", f"cpsession={secret}")]
    )
    assert shown == {"Authorization": f"Basic {REDACTED}", "Cookie": REDACTED}


def test_session_ids_and_tokens_go_by_their_shape() -> None:
    redactor = Redactor([])
    body = {
        "data": {
            "cp_security_token": "/cpsess1234567890",
            "session": "alice:0123456789abcdef",
            "url": "https://h:2083/cpsess1234567890/login/?session=alice:0123456789abcdef",
            "expires": 1700000000,
        }
    }
    shown = redactor.body(json.dumps(body).encode())
    assert shown is not None
    parsed = json.loads(shown)["data"]
    assert parsed["cp_security_token"] == REDACTED and parsed["session"] == REDACTED
    assert parsed["url"] == f"https://h:2083/cpsess{REDACTED}/login/?session={REDACTED}"
    assert parsed["expires"] == 1700000000  # types kept: a number stays a number
    assert redactor.url("https://h:2083/cpsess99/execute/A/b?x=1") == (
        f"https://h:2083/cpsess{REDACTED}/execute/A/b?x=1"
    )
    assert redactor.headers([("Set-Cookie", "cpsession=alice%3Aabc; HttpOnly; Path=/")]) == {
        "Set-Cookie": f"cpsession={REDACTED}; HttpOnly; Path=/"
    }


def test_answers_keep_their_shape() -> None:
    redactor = Redactor([Credential("root", "SECRETTOKEN")])
    body = b'{"data":{"time_started":"1608593571","n":135},"status":1}'
    assert redactor.body(body) == '{"data":{"time_started":"1608593571","n":135},"status":1}'
    assert redactor.body(b'{"data": {"trunc') == '{"data": {"trunc'  # not JSON: as it came


def test_redact_hosts_replaces_hosts_learned_domains_and_server_names() -> None:
    entry = {"user": "bob", "domain": "shop.example.org", "email": "bob@mail.example.net"}
    listaccts = {"data": {"acct": [entry | {"ip": "203.0.113.7"}]}}
    exchange = Exchange(
        "web01", "listaccts", "GET", "https://WEB01.example.com:2087/json-api/listaccts",
        (("Host", "web01.example.com:2087"),), None, 200, (),
        json.dumps(listaccts).encode(),
    )  # fmt: skip
    redactor = Redactor([], hosts=["web01.example.com"], server_names=["web01"], redact_hosts=True)
    redactor.learn([exchange])
    shown = json.dumps(redactor.exchange(exchange))
    for hidden in ("web01", "WEB01", "shop.example.org", "mail.example.net", "203.0.113.7"):
        assert hidden not in shown
    assert "host-1.invalid:2087" in shown
    assert redactor.server_name("web01") == "server-1"


def test_without_redact_hosts_hosts_stay() -> None:
    redactor = Redactor([], hosts=["web01.example.com"], server_names=["web01"])
    assert redactor.url("https://web01.example.com:2087/x") == "https://web01.example.com:2087/x"
    assert redactor.server_name("web01") == "web01"
