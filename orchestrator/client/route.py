"""The route to a server's UAPI, chosen once per server by its credentials.

WhmRoute      a WHM token (port 2087): UAPI as the account through WHM API 1 `uapi_cpanel`;
              `disinfect_files` inside the account's own cPanel session (cpsess), because
              `uapi_cpanel` passes flat parameters only (cpanel-api.md 5.3)
ExecuteRoute  the account's own token or password (port 2083): `/execute/ClamScanner/...`
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from orchestrator.client.channel import Channel
from orchestrator.client.parse import Answer, check_status, parse_whm, uapi_data
from orchestrator.client.retry import RetryPolicy, with_retries
from orchestrator.config import AuthMethod
from orchestrator.errors import AuthError, ProtocolError, TargetError

MODULE = "ClamScanner"
DISINFECT = "disinfect_files"


class Route(Protocol):
    """How a ClamScanner function reaches one account of the server."""

    #: Whether answers come through WHM `uapi_cpanel` (`parse.uapi_data` unwraps them).
    whm: bool

    async def answer(
        self, account: str, function: str, params: Mapping[str, str] | None, *, post: bool
    ) -> Answer:
        """The whole answer, its envelope intact (HTTP status and JSON already checked)."""
        ...

    async def uapi(
        self, account: str, function: str, params: Mapping[str, str] | None, *, post: bool
    ) -> Any:
        """The function's `data`, or a typed error; `post` sends a form POST (state changes)."""
        ...

    async def disinfect(
        self, account: str, body: bytes, sending: Callable[[], None] | None = None
    ) -> Any:
        """`disinfect_files` with the JSON `body`; its `data`. `sending` is called right before
        the POST itself goes out (after any session login), and only then."""
        ...


def route_for(channel: Channel, retry: RetryPolicy) -> Route:
    """The route the server's credentials allow (decided once, when its client is made)."""
    if channel.server.auth.method is AuthMethod.WHM_TOKEN:
        return WhmRoute(channel, retry)
    return ExecuteRoute(channel)


class ExecuteRoute:
    """The account's own credentials: `/execute/ClamScanner/<function>`."""

    whm = False

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def answer(
        self, account: str, function: str, params: Mapping[str, str] | None, *, post: bool
    ) -> Answer:
        url = self._channel.endpoint(f"/execute/{MODULE}/{function}")
        return await self._channel.call(url, params, function, post=post)

    async def uapi(
        self, account: str, function: str, params: Mapping[str, str] | None, *, post: bool
    ) -> Any:
        answer = await self.answer(account, function, params, post=post)
        return uapi_data(answer, self._channel.server.name, function, whm=False)

    async def disinfect(
        self, account: str, body: bytes, sending: Callable[[], None] | None = None
    ) -> Any:
        url = self._channel.endpoint(f"/execute/{MODULE}/{DISINFECT}")
        return await self._channel.post_json(url, body, function=DISINFECT, sending=sending)


class WhmRoute:
    """A WHM token: UAPI as each account through `uapi_cpanel`, disinfection in its session."""

    whm = True

    def __init__(self, channel: Channel, retry: RetryPolicy) -> None:
        self._channel = channel
        self._retry = retry

    async def answer(
        self, account: str, function: str, params: Mapping[str, str] | None, *, post: bool
    ) -> Answer:
        query = {
            "api.version": "1",
            "cpanel.user": account,
            "cpanel.module": MODULE,
            "cpanel.function": function,
            **(params or {}),
        }
        url = self._channel.endpoint("/json-api/uapi_cpanel")
        return await self._channel.call(url, query, function, post=post)

    async def uapi(
        self, account: str, function: str, params: Mapping[str, str] | None, *, post: bool
    ) -> Any:
        answer = await self.answer(account, function, params, post=post)
        return uapi_data(answer, self._channel.server.name, function, whm=True)

    async def disinfect(
        self, account: str, body: bytes, sending: Callable[[], None] | None = None
    ) -> Any:
        """create_user_session gives a one-time login URL; logging in sets the `cpsession`
        cookie; the JSON POST then goes to `/cpsessNNN/execute/...` as the account itself."""
        try:
            session = await self.open_session(account)
        except TargetError as exc:
            raise exc.never_sent() from None  # disinfect_files itself was never sent
        post_url = f"{session.base}/execute/{MODULE}/{DISINFECT}"
        return await self._channel.post_json(
            post_url, body, cookie=session.cookie, function=DISINFECT, sending=sending
        )

    async def open_session(self, account: str) -> Session:
        """A logged-in cPanel session of the account (create_user_session, then its login)."""
        # A new session (and its one-time login URL) per attempt: nothing is disinfected
        # before the POST, so this part is safe to retry.
        return await with_retries(
            self._retry,
            lambda: self._open_session(account),
            server=self._channel.server.name,
            function="create_user_session",
            breaker=self._channel.breaker,
        )

    async def session_answer(self, account: str, function: str) -> Answer:
        """A ClamScanner read (a GET) inside the account's cPanel session: the whole answer.
        The session route of `disinfect`, checked without disinfecting (validate --check-api);
        the session is logged out afterwards."""
        session = await self.open_session(account)
        try:
            url = f"{session.base}/execute/{MODULE}/{function}"
            return await self._channel.session_get(url, cookie=session.cookie, function=function)
        finally:
            await self.end_session(session)

    async def end_session(self, session: Session) -> bool:
        """Log the session out: cPanel destroys a session when it logs out (else it expires
        after 15 idle minutes, cpanel-api.md 5.2). [INF] cpsrvd's `/logout/` path under the
        session's token, with its cookie. Whether it was answered without an error status."""
        answer = await self._channel.send_in_session(
            "GET",
            f"{session.base}/logout/",
            "logout",
            params={"locale": "en"},
            headers={"Cookie": session.cookie},
        )
        return answer.status < 400

    async def _open_session(self, account: str) -> Session:
        """create_user_session, then its login URL: the session's base URL and cookie."""
        channel, name = self._channel, self._channel.server.name
        params = {"api.version": "1", "user": account, "service": "cpaneld"}
        url = channel.endpoint("/json-api/create_user_session")
        answer = await channel.call(url, params, "create_user_session")
        data = parse_whm(answer, "create_user_session").get("data")
        if not isinstance(data, dict) or not data.get("url") or not data.get("cp_security_token"):
            raise ProtocolError("create_user_session returned no login URL", server=name)
        login_url = str(data["url"])
        origin = session_origin(channel.server.base_url, login_url)
        login = await channel.send(
            "GET", origin + urlsplit(login_url).path, "login", params=_query(login_url)
        )
        check_status(login.status, name, "login", login.retry_after)
        if login.status not in (200, 301, 302, 303):
            raise ProtocolError(f"HTTP {login.status} from the session login", server=name)
        if not login.cookies:
            raise AuthError("cPanel session login set no session", server=name, function="login")
        cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
        token = str(data["cp_security_token"]).rstrip("/")
        return Session(f"{origin}{token}", cookie)


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in cPanel session: `base` is `https://host:2083/cpsessNNN` (the token is a
    credential while the session lives: never logged), `cookie` its Cookie header."""

    base: str
    cookie: str

    def __repr__(self) -> str:
        return "Session(<secret>)"


def session_origin(base_url: str, login_url: str) -> str:
    """Scheme and port from cPanel's login URL, host from the inventory.

    cPanel may put the server's public IP into the URL; the inventory's host is the one the
    TLS settings were written for, and a run never sends credentials anywhere else.
    """
    ours, theirs = urlsplit(base_url), urlsplit(login_url)
    scheme = theirs.scheme or ours.scheme
    port = theirs.port or ours.port
    host = ours.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
