"""Transcripts of HTTP exchanges with every secret removed (`validate --check-api --record`).

`Exchange` is one request and its answer as the transport saw them (transport.py hands one to
its recorder, when one is attached); `Redactor` turns exchanges into JSON-ready values a user
can attach to a bug report. Pure: no I/O.

What is removed, in this order (known values first, so that no pattern cuts a secret into
pieces that whole-value matching would then miss):

1. every known secret (the inventory's tokens and passwords) in each form it takes on the
   wire: as is, URL-encoded, JSON-escaped, HTML-escaped, in base64 (Basic auth);
2. credential headers whole (`Authorization`, `Cookie`; `Set-Cookie` keeps its name and
   attributes, not its value);
3. cPanel's session ids: `/cpsessNNNN` in paths and bodies, `session=` values in query
   strings, forms and cookies, and the values of JSON keys that name a token, password,
   secret, session or cookie (`cp_security_token`, `session`, `url` of create_user_session is
   caught by the two patterns before);
4. with `redact_hosts`, the inventory's host names and the domains and addresses listaccts
   reports, each replaced by a stable stand-in (`host-1.invalid`), and the server names.

Values shorter than MIN_SECRET characters are not searched for as text (they would erase
ordinary words); they only ever travel in the Authorization header, which goes whole.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

REDACTED = "[REDACTED]"
MIN_SECRET = 4

_CREDENTIAL_HEADERS = frozenset(("authorization", "proxy-authorization", "cookie"))
_SECRET_WORDS = ("token", "pass", "secret", "session", "cookie", "authorization")
_CPSESS = re.compile(r"cpsess\d+")
_SESSION_VALUE = re.compile(r"((?:^|[^A-Za-z0-9_])[A-Za-z_]*session=)[^&\s\"'<>;,]+")
_DOMAIN_KEYS = frozenset(("domain", "ip", "email"))


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and what came back: no aiohttp type in it, secrets still in it."""

    server: str
    function: str
    method: str
    url: str
    request_headers: tuple[tuple[str, str], ...]
    request_body: bytes | None
    status: int | None = None  # None: no answer (connection failed, reset, timed out)
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: bytes = b""
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Credential:
    """A secret to remove, with the user it goes with (Basic auth encodes both together)."""

    user: str
    secret: str


def secret_forms(credential: Credential) -> set[str]:
    """Every text form the secret can take in a request, an answer or an error."""
    secret = credential.secret
    if len(secret) < MIN_SECRET:
        return set()
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        html.escape(secret),
        html.escape(secret, quote=False),
    }
    for raw in (secret, f"{credential.user}:{secret}"):
        encoded = base64.b64encode(raw.encode()).decode()
        forms |= {encoded, encoded.rstrip("=")}
    return {f for f in forms if len(f) >= MIN_SECRET}


class Redactor:
    """Turns exchanges into JSON-ready dicts without secrets (and, asked, without host names)."""

    def __init__(
        self,
        credentials: Iterable[Credential],
        *,
        hosts: Iterable[str] = (),
        server_names: Iterable[str] = (),
        redact_hosts: bool = False,
    ) -> None:
        forms: set[str] = set()
        for credential in credentials:
            forms |= secret_forms(credential)
        self._forms = sorted(forms, key=len, reverse=True)  # longest first: no leftovers
        self._redact_hosts = redact_hosts
        self._hosts: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None
        self._names: dict[str, str] = {}
        for host in hosts:
            self._stand_in(host)
        for name in server_names:
            self._names.setdefault(name, f"server-{len(self._names) + 1}")

    # -- what a transcript shows --------------------------------------------------------------

    def server_name(self, name: str) -> str:
        return self._names.get(name, name) if self._redact_hosts else name

    def learn(self, exchanges: Iterable[Exchange]) -> None:
        """With `redact_hosts`: the domains and addresses listaccts answered become hosts too."""
        if not self._redact_hosts:
            return
        for exchange in exchanges:
            if exchange.function == "listaccts":
                for value in _values_of(_json_or_none(exchange.response_body), _DOMAIN_KEYS):
                    self._stand_in(value.rpartition("@")[2])

    def exchange(self, exchange: Exchange) -> dict[str, Any]:
        """One exchange as a transcript entry (`learn` every exchange first)."""
        request = {
            "method": exchange.method,
            "url": self.url(exchange.url),
            "headers": self.headers(exchange.request_headers),
            "body": self.body(exchange.request_body, _form(exchange.request_headers)),
        }
        answer = None
        if exchange.status is not None:
            answer = {
                "status": exchange.status,
                "headers": self.headers(exchange.response_headers),
                "body": self.body(exchange.response_body, _form(exchange.response_headers)),
            }
        return {
            "server": self.server_name(exchange.server),
            "function": exchange.function,
            "seconds": round(exchange.seconds, 3),
            "request": request,
            "response": answer,
            "error": self.text(exchange.error) if exchange.error is not None else None,
        }

    # -- the pieces ---------------------------------------------------------------------------

    def text(self, text: str) -> str:
        """Known secrets, session ids and (asked) host names out of any text."""
        text = self._known(text)
        text = _CPSESS.sub(f"cpsess{REDACTED}", text)
        text = _SESSION_VALUE.sub(lambda m: m[1] + REDACTED, text)
        if self._redact_hosts and self._hosts:
            text = self._host_pattern().sub(lambda m: self._hosts[m[0].lower()], text)
        return self._known(text)  # a replacement cannot have rebuilt one, but cheap to be sure

    def url(self, url: str) -> str:
        parts = urlsplit(self._known(url))
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if self._sensitive(k, v) else v) for k, v in pairs])
        return self.text(urlunsplit(parts._replace(query=query)))

    def headers(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in headers:
            lowered = name.lower()
            if lowered in _CREDENTIAL_HEADERS:
                scheme = value.split(" ", 1)[0] if lowered.endswith("authorization") else ""
                shown = f"{scheme} {REDACTED}" if scheme and " " in value else REDACTED
            elif lowered == "set-cookie":
                cookie, semicolon, attributes = value.partition(";")
                shown = f"{cookie.partition('=')[0]}={REDACTED}{semicolon}{attributes}"
            else:
                shown = value
            out[name] = self.text(shown) if name not in out else out[name] + ", " + self.text(shown)
        return out

    def body(self, body: bytes | None, form: bool = False) -> str | None:
        """A body as text: JSON re-written with sensitive values out (types and key order kept),
        a form likewise, anything else (HTML, truncated JSON) by the text rules alone."""
        if body is None:
            return None
        text = self._known(body.decode("utf-8", "replace"))
        parsed = _json_or_none(text.encode())
        if isinstance(parsed, dict | list):
            text = json.dumps(self._walk(parsed), ensure_ascii=False, separators=(",", ":"))
        elif form:
            pairs = parse_qsl(text, keep_blank_values=True)
            text = urlencode([(k, REDACTED if self._sensitive(k, v) else v) for k, v in pairs])
        return self.text(text)

    def _walk(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self._walk(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v, key) for v in value]
        if isinstance(value, str) and self._sensitive(key, value):
            return REDACTED
        return value

    def _sensitive(self, key: str, value: str) -> bool:
        lowered = key.lower()
        return any(word in lowered for word in _SECRET_WORDS) or self._known(value) != value

    def _known(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def _stand_in(self, host: str) -> None:
        host = host.strip().strip("[]").lower()
        if host and host not in self._hosts:
            self._hosts[host] = f"host-{len(self._hosts) + 1}.invalid"
            self._pattern = None

    def _host_pattern(self) -> re.Pattern[str]:
        """One alternation of every host, longest first (a domain before its parent)."""
        if self._pattern is None:
            hosts = sorted(self._hosts, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, hosts)), re.IGNORECASE)
        return self._pattern


def _form(headers: Iterable[tuple[str, str]]) -> bool:
    return any(
        k.lower() == "content-type" and v.startswith("application/x-www-form-urlencoded")
        for k, v in headers
    )


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _values_of(value: Any, keys: frozenset[str]) -> Iterable[str]:
    """Every string (or string in a list) under one of `keys`, anywhere in a JSON value."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in keys:
                items = item if isinstance(item, list) else [item]
                yield from (str(i) for i in items if isinstance(i, str) and i)
            else:
                yield from _values_of(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from _values_of(item, keys)
