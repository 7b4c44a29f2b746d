"""One server's channel: every request to it, within its rate limit and its host's budget.

A `Channel` knows the server's credentials (the Authorization header), its parsed endpoints,
its host's refusal budget (health.py) and its host's breaker (breaker.py: the gate every
request passes, which holds it while the host is away), and turns an answer into cPanel's
envelope or a typed error (parse.py). It knows nothing of which route a function takes: that
is route.py.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

from orchestrator.client.breaker import OUTAGE_STATUSES, Breaker
from orchestrator.client.parse import Answer, check_answer, is_login_page, parse_uapi
from orchestrator.client.transport import Http, Raw, Url, parse_url
from orchestrator.config import AuthMethod, Server
from orchestrator.errors import TlsError, TransportError, http_status_text


class Acquire(Protocol):
    """The rate limiter seen from the client: wait for the right to send one request."""

    async def acquire(self) -> None: ...


class Channel:
    """Requests to one server: rate-limited, counted, and sent within its host's budget."""

    def __init__(
        self,
        http: Http,
        server: Server,
        limiter: Acquire,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        self.server = server
        self._http = http
        self._limiter = limiter
        self._on_request = on_request
        self._ssl = http.ssl_for(server.tls)
        self._auth_header = auth_header(server)
        self._endpoints: dict[str, Url] = {}
        self._logins = http.hosts.logins(server.base_url)
        self.breaker: Breaker = http.hosts.breaker(server.base_url)

    def endpoint(self, path: str) -> Url:
        """The server's URL for a fixed API path, parsed once."""
        url = self._endpoints.get(path)
        if url is None:
            url = self._endpoints[path] = parse_url(f"{self.server.base_url}{path}")
        return url

    async def call(
        self,
        url: str | Url,
        params: Mapping[str, str] | None,
        function: str,
        *,
        post: bool = False,
    ) -> Answer:
        """One API call with the server's credentials: a GET, or (`post`) a form POST."""
        headers = {"Authorization": self._auth_header}
        if post:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(params or {}).encode()
            raw = await self.send("POST", url, function, headers=headers, data=body)
        else:
            raw = await self.send("GET", url, function, params=params, headers=headers)
        return self._checked(raw, function)

    async def post_json(
        self,
        url: str | Url,
        body: bytes,
        *,
        cookie: str | None = None,
        function: str,
        sending: Callable[[], None] | None = None,
    ) -> Any:
        """A JSON POST to a UAPI function: with the server's credentials, or a session cookie.

        `sending` is called right before the request goes out (after the rate limiter and the
        host's login turn), never when it does not: what makes "never sent" certain."""
        headers = {"Authorization": self._auth_header} if cookie is None else {"Cookie": cookie}
        # Exactly `application/json`: cPanel compares the header verbatim (cpanel-api.md 3.5).
        headers["Content-Type"] = "application/json"
        raw = await self.send("POST", url, function, headers=headers, data=body, sending=sending)
        return parse_uapi(self._checked(raw, function), self.server.name, function)

    async def session_get(self, url: str | Url, *, cookie: str, function: str) -> Answer:
        """A GET inside a cPanel session (its cookie, no Authorization): the whole answer."""
        raw = await self.send_in_session("GET", url, function, headers={"Cookie": cookie})
        return self._checked(raw, function)

    async def send(
        self,
        method: str,
        url: str | Url,
        function: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        sending: Callable[[], None] | None = None,
    ) -> Raw:
        """One request: through the host's breaker gate (held while the host is away: one
        probe per cool-down goes through), the rate limiter, and the host's refusal budget
        (health.py): nothing is sent to a host that refused a login this run, and credentials
        not yet accepted go one at a time (the turn). `sending`: called right before it goes
        out (see `post_json`)."""
        logins, name = self._logins, self.server.name
        logins.check(name, function)
        probe, turn = await self._through_gate(function, login=True)
        try:
            raw = await self._exchange(method, url, function, params, headers, data, probe, sending)
            logins.answered(name, function, raw.status, _login_page(raw))
            return raw
        finally:
            if turn:
                logins.give_turn()

    async def send_in_session(
        self,
        method: str,
        url: str | Url,
        function: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Raw:
        """A request inside a cPanel session (its cookie, not the server's credentials), after
        the session's login: its answer says nothing of the credentials, so it is never counted
        as a login (a logout may well answer with the login page). Through the breaker's gate
        and the rate limiter like any other."""
        self._logins.check(self.server.name, function)
        probe, _ = await self._through_gate(function, login=False)
        return await self._exchange(method, url, function, params, headers, None, probe)

    async def _through_gate(self, function: str, *, login: bool) -> tuple[bool, bool]:
        """Wait until this request may leave: (whether it is the breaker's probe, whether it
        holds the host's login turn, to give back once answered). Nothing waits at the gate
        holding the turn; if the breaker opened while this request waited for the limiter or
        the turn, it goes back to the gate: nothing is sent into an outage but the probe."""
        logins, breaker, name = self._logins, self.breaker, self.server.name
        while True:
            probe = await breaker.admit(name, function)
            turn = False
            try:
                if login and not logins.proven(name):  # one unproven login at a time, in rate
                    turn = await logins.take_turn(name, function)
                    await self._limiter.acquire()
                else:
                    await self._slot_after_logins(function)
            except BaseException:
                if turn:
                    logins.give_turn()
                breaker.release(probe=probe)
                raise
            if probe or breaker.clear():
                return probe, turn
            if turn:
                logins.give_turn()

    async def _slot_after_logins(self, function: str) -> None:
        """A rate slot for accepted credentials (or a session), booked for *now*, once any other
        entry's first login in flight to this host has been answered, and never after a refusal.
        A wait between booking and sending would let requests that waited together leave
        together, over the host's rate: a login that took the turn meanwhile is waited for
        first, and a new slot booked."""
        logins, name = self._logins, self.server.name
        while True:
            if logins.turn.locked():  # another entry's first login is on its way: its answer
                async with logins.turn:
                    pass
            await self._limiter.acquire()
            if not logins.turn.locked():
                logins.check(name, function)  # refused meanwhile: nothing is sent
                return

    async def _exchange(
        self,
        method: str,
        url: str | Url,
        function: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        probe: bool,
        sending: Callable[[], None] | None = None,
    ) -> Raw:
        """Send it, and tell the breaker how the host answered (or that it did not)."""
        breaker, name = self.breaker, self.server.name
        if self._on_request is not None:
            self._on_request()
        if sending is not None:
            sending()
        try:
            raw = await self._http.send(
                method,
                url,
                ssl_setting=self._ssl,
                where=(name, function),
                params=params,
                headers=headers,
                data=data,
            )
        except TlsError:
            breaker.answered(name, probe=probe)  # the host is there (its certificate is not)
            raise
        except TransportError as exc:
            breaker.failed(name, exc, probe=probe)
            raise
        except BaseException:
            breaker.release(probe=probe)
            raise
        if raw.status in OUTAGE_STATUSES:
            failure = TransportError(
                f"{function}: {http_status_text(raw.status)}",
                server=name,
                function=function,
                http_status=raw.status,
                retry_after=raw.retry_after,
            )
            breaker.failed(name, failure, probe=probe)
        else:
            breaker.answered(name, probe=probe)
        return raw

    def _checked(self, raw: Raw, function: str) -> Answer:
        return check_answer(
            raw.status, raw.content_type, raw.body, self.server.name, function, raw.retry_after
        )


def auth_header(server: Server) -> str:
    """The Authorization header of the server's credentials (never logged: it holds the secret)."""
    auth = server.auth
    secret = auth.secret.reveal()
    if auth.method is AuthMethod.WHM_TOKEN:
        return f"whm {auth.user}:{secret}"
    if auth.method is AuthMethod.CPANEL_TOKEN:
        return f"cpanel {auth.user}:{secret}"
    pair = base64.b64encode(f"{auth.user}:{secret}".encode()).decode()
    return f"Basic {pair}"


def _login_page(raw: Raw) -> bool:
    return 200 <= raw.status < 300 and is_login_page(raw.content_type, raw.body)
