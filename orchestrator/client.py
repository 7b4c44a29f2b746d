"""UAPI / WHM API 1 client over aiohttp: the only module that imports aiohttp.

Layers, bottom up:
    Http           one ClientSession per run, one SSL context per trust configuration
    ServerClient   one per server: auth header, route (WHM `uapi_cpanel` or `/execute`), rate
                   limit before every attempt, retries for idempotent calls only
    parse_*        pure envelope parsing (`parse.py`), shared with tests

Every aiohttp exception (and aiohttp's own TimeoutError) is translated into the error tree of
`errors.py` in `_translated`, with `from None`: aiohttp's exceptions and their reprs can carry the
request headers, i.e. the token, and a chained traceback would print them.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import aiohttp
import stamina
import structlog
from yarl import URL

from orchestrator import __version__
from orchestrator.config import AuthMethod, Server, TlsConfig
from orchestrator.errors import (
    AuthError,
    ProtocolError,
    RequestTimeout,
    TargetError,
    TlsError,
    TransportError,
)
from orchestrator.events import DisinfectionStatusReply, StatusData
from orchestrator.health import Hosts
from orchestrator.model import Action, ScanType
from orchestrator.pacing import LoadReading
from orchestrator.parse import (
    Account,
    Answer,
    check_answer,
    check_status,
    is_login_page,
    parse_accounts,
    parse_disinfection,
    parse_infected,
    parse_load,
    parse_scan_paths,
    parse_status,
    parse_task_id,
    parse_uapi,
    parse_whm,
)

MODULE = "ClamScanner"

log = structlog.get_logger("clamfleet")


class Acquire(Protocol):
    """The rate limiter seen from the client: wait for the right to send one request."""

    async def acquire(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of idempotent requests: capped in attempts and in total time, with jitter."""

    attempts: int = 5
    total: float = 120.0
    initial: float = 0.5
    max: float = 15.0
    jitter: float = 0.5


def user_agent(run_id: str | None) -> str:
    """`clamfleet/<version> (run <run-id>)`: a server's referee tells runs apart by it."""
    base = f"clamfleet/{__version__}"
    return f"{base} (run {run_id})" if run_id else base


class Http:
    """The run's one ClientSession, its SSL contexts and its hosts' refusal budgets (health.py).
    Use as an async context manager."""

    def __init__(
        self,
        *,
        request_timeout: float,
        limit: int = 0,
        limit_per_host: int = 4,
        hosts: Hosts | None = None,
        run_id: str | None = None,
    ) -> None:
        self._user_agent = user_agent(run_id)
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout, sock_connect=min(request_timeout, 15.0)
        )
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        self._ssl: dict[tuple[bool, str | None], ssl.SSLContext | bool] = {}
        #: Shared by every ServerClient of the run: cPHulk counts refusals per host, not entry.
        self.hosts = hosts or Hosts()

    async def __aenter__(self) -> Http:
        connector = aiohttp.TCPConnector(
            limit=self._limit, limit_per_host=self._limit_per_host, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),  # session cookies are handled explicitly
            raise_for_status=False,
            headers={"User-Agent": self._user_agent},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Http used outside its context")
        return self._session

    def ssl_for(self, tls: TlsConfig) -> ssl.SSLContext | bool:
        """One SSL context per trust configuration, built once (building one costs ~ms)."""
        key = (tls.verify, str(tls.ca_file) if tls.ca_file else None)
        if key not in self._ssl:
            if not tls.verify:
                self._ssl[key] = False
            else:
                self._ssl[key] = ssl.create_default_context(cafile=key[1])
        return self._ssl[key]


@dataclass(frozen=True, slots=True)
class _Raw:
    status: int
    content_type: str
    body: bytes
    retry_after: float | None
    cookies: Mapping[str, str]


class ServerClient:
    """All calls to one server, through the route its credentials allow."""

    def __init__(
        self,
        http: Http,
        server: Server,
        limiter: Acquire,
        retry: RetryPolicy | None = None,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        self._http = http
        self._server = server
        self._limiter = limiter
        self._retry = retry or RetryPolicy()
        self._on_request = on_request
        self._ssl = http.ssl_for(server.tls)
        self._whm = server.auth.method is AuthMethod.WHM_TOKEN
        self._auth_header = _auth_header(server)
        self._endpoints: dict[str, URL] = {}
        self._logins = http.hosts.logins(server.base_url)

    # -- ClamScanner -------------------------------------------------------------------------

    async def get_scan_status(self, account: str) -> StatusData | None:
        return parse_status(await self._idempotent(account, "get_scan_status"))

    async def start_scan(self, account: str, scan_type: ScanType) -> None:
        await self._once(account, "start_scan", {"scan_type": str(scan_type)})

    async def list_infected(self, account: str) -> tuple[tuple[str, str], ...]:
        return parse_infected(await self._idempotent(account, "list_infected_files"))

    async def get_scan_paths(self, account: str) -> tuple[str, ...]:
        return parse_scan_paths(await self._idempotent(account, "get_scan_paths"))

    async def check_disinfection(
        self, account: str, last_id: int | None
    ) -> DisinfectionStatusReply:
        params = {"last_id": str(last_id)} if last_id else None
        data = await self._idempotent(account, "check_disinfection_status", params)
        return parse_disinfection(data)

    async def disinfect(self, account: str, actions: Mapping[str, Action]) -> str:
        """POST JSON `{"actions": {...}}`; through WHM, inside a cPanel session of the account."""
        body = json.dumps({"actions": {p: str(a) for p, a in actions.items()}}).encode()
        if self._whm:
            data = await self._disinfect_in_session(account, body)
        else:
            url = self._endpoint(f"/execute/{MODULE}/disinfect_files")
            data = await self._post_json(url, body, {"Authorization": self._auth_header})
        return parse_task_id(data)

    # -- WHM ---------------------------------------------------------------------------------

    async def list_accounts(self) -> tuple[Account, ...]:
        params = {"api.version": "1", "want": "user,domain,suspended,diskused"}
        url = self._endpoint("/json-api/listaccts")
        answer = await self._with_retries("listaccts", lambda: self._call(url, params, "listaccts"))
        return parse_accounts(parse_whm(answer, "listaccts"))

    async def system_load(self) -> LoadReading | None:
        """WHM `systemloadavg` (a read: retried like one). None for cPanel-login servers, which
        cannot read it; failures raise like any other call (the caller falls back to the cap)."""
        if not self._whm:
            return None
        url = self._endpoint("/json-api/systemloadavg")
        params = {"api.version": "1"}
        answer = await self._with_retries(
            "systemloadavg", lambda: self._call(url, params, "systemloadavg")
        )
        return parse_load(parse_whm(answer, "systemloadavg"))

    # -- plumbing ----------------------------------------------------------------------------

    async def _idempotent(
        self, account: str, function: str, params: Mapping[str, str] | None = None
    ) -> Any:
        return await self._with_retries(function, lambda: self._uapi(account, function, params))

    async def _once(
        self, account: str, function: str, params: Mapping[str, str] | None = None
    ) -> Any:
        """A state-changing call: sent once, as a form POST.

        POST, as cPanel's own client sends every call, and because aiohttp silently re-sends
        an idempotent-method request (GET) when a reused keep-alive connection turns out
        closed: a `start_scan` GET whose connection dropped could reach cPanel twice.
        """
        return await self._uapi(account, function, params, post=True)

    async def _with_retries(self, function: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Call; on a transient failure, hand over to stamina's capped, jittered backoff.

        The first attempt is made directly: stamina's machinery costs tens of microseconds of
        CPU per call even when nothing fails, and nearly every call succeeds first time. Its
        failure is replayed as stamina's first attempt, so the attempt count, the backoff
        (Retry-After included) and stamina's test mode are exactly as if it had made it.
        A request that is finally given up on is a warning: the night's log must say which
        call failed how often, and why, without debug logging on.
        """
        try:
            return await call()
        except TargetError as exc:
            if self._retry_wait(exc) is False:  # (a float, even 0.0, is a Retry-After wait)
                raise
            replay: TargetError | None = exc
        policy = self._retry
        attempts = 0
        try:
            async for attempt in stamina.retry_context(
                on=self._retry_wait,
                attempts=policy.attempts,
                timeout=policy.total,
                wait_initial=policy.initial,
                wait_max=policy.max,
                wait_jitter=policy.jitter,
            ):
                with attempt:
                    attempts += 1
                    if replay is not None:
                        failed, replay = replay, None
                        raise failed
                    return await call()
        except TargetError as exc:
            log.warning(
                "request.gave_up",
                server=self._server.name,
                function=function,
                attempts=attempts,
                error_kind=str(exc.kind),
                error=str(exc),
                http_status=exc.http_status,
            )
            raise
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _retry_wait(self, exc: Exception) -> bool | float:
        """Retry transient faults only; wait what Retry-After asks, up to the policy's longest
        backoff. Auth and TLS failures never retry."""
        if not isinstance(exc, TargetError) or not exc.transient:
            return False
        if exc.retry_after is not None:
            return float(min(exc.retry_after, self._retry.max))
        return True

    async def _uapi(
        self,
        account: str,
        function: str,
        params: Mapping[str, str] | None,
        *,
        post: bool = False,
    ) -> Any:
        if self._whm:
            query = {
                "api.version": "1",
                "cpanel.user": account,
                "cpanel.module": MODULE,
                "cpanel.function": function,
                **(params or {}),
            }
            url = self._endpoint("/json-api/uapi_cpanel")
            answer = parse_whm(await self._call(url, query, function, post=post), function)
            uapi = (
                answer.get("data", {}).get("uapi") if isinstance(answer.get("data"), dict) else None
            )
            return parse_uapi(uapi, self._server.name, function)
        url = self._endpoint(f"/execute/{MODULE}/{function}")
        answer = await self._call(url, params, function, post=post)
        return parse_uapi(answer, self._server.name, function)

    async def _call(
        self, url: str | URL, params: Mapping[str, str] | None, function: str, *, post: bool = False
    ) -> Answer:
        if post:
            headers = {**self._headers(), "Content-Type": "application/x-www-form-urlencoded"}
            body = urlencode(params or {}).encode()
            raw = await self._send("POST", url, function, headers=headers, data=body)
        else:
            raw = await self._send("GET", url, function, params=params, headers=self._headers())
        return check_answer(
            raw.status, raw.content_type, raw.body, self._server.name, function, raw.retry_after
        )

    async def _post_json(self, url: str | URL, body: bytes, headers: Mapping[str, str]) -> Any:
        # Exactly `application/json`: cPanel compares the header verbatim (cpanel-api.md 3.5).
        headers = {**headers, "Content-Type": "application/json"}
        function = "disinfect_files"
        raw = await self._send("POST", url, function, headers=headers, data=body)
        answer = check_answer(
            raw.status, raw.content_type, raw.body, self._server.name, function, raw.retry_after
        )
        return parse_uapi(answer, self._server.name, function)

    async def _disinfect_in_session(self, account: str, body: bytes) -> Any:
        """WHM tokens cannot pass nested JSON through `uapi_cpanel`; use the account's session.

        create_user_session gives a one-time login URL; logging in sets the `cpsession` cookie;
        the JSON POST then goes to `/cpsessNNN/execute/...` as the account itself.
        """
        try:
            # A new session (and its one-time login URL) per attempt: nothing is disinfected
            # before the POST, so this part is safe to retry.
            post_url, cookie = await self._with_retries(
                "create_user_session", lambda: self._open_session(account)
            )
        except TargetError as exc:
            exc.maybe_sent = False  # disinfect_files itself was never sent
            raise
        return await self._post_json(post_url, body, {"Cookie": cookie})

    async def _open_session(self, account: str) -> tuple[str, str]:
        """create_user_session, then its login URL: (disinfect_files URL, session cookie)."""
        name = self._server.name
        params = {"api.version": "1", "user": account, "service": "cpaneld"}
        url = self._endpoint("/json-api/create_user_session")
        answer = await self._call(url, params, "create_user_session")
        data = parse_whm(answer, "create_user_session").get("data")
        if not isinstance(data, dict) or not data.get("url") or not data.get("cp_security_token"):
            raise ProtocolError("create_user_session returned no login URL", server=name)
        origin = self._session_origin(str(data["url"]))
        login = await self._send(
            "GET",
            origin + urlsplit(str(data["url"])).path,
            "login",
            params=_query(str(data["url"])),
        )
        check_status(login.status, name, "login", login.retry_after)
        if login.status not in (200, 301, 302, 303):
            raise ProtocolError(f"HTTP {login.status} from the session login", server=name)
        if not login.cookies:
            raise AuthError("cPanel session login set no session", server=name, function="login")
        cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
        token = str(data["cp_security_token"]).rstrip("/")
        return f"{origin}{token}/execute/{MODULE}/disinfect_files", cookie

    def _session_origin(self, login_url: str) -> str:
        """Scheme and port from cPanel's login URL, host from the inventory.

        cPanel may put the server's public IP into the URL; the inventory's host is the one the
        TLS settings were written for, and a run never sends credentials anywhere else.
        """
        ours, theirs = urlsplit(self._server.base_url), urlsplit(login_url)
        scheme = theirs.scheme or ours.scheme
        port = theirs.port or ours.port
        host = ours.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": self._auth_header}

    async def _send(
        self,
        method: str,
        url: str | URL,
        function: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> _Raw:
        """One request, within the host's refusal budget (health.py): nothing is sent to a host
        that refused a login this run, and credentials not yet accepted go one at a time."""
        logins, name = self._logins, self._server.name
        logins.check(name, function)
        if logins.proven(name):
            raw = await self._exchange(method, url, function, params, headers, data)
            logins.answered(name, function, raw.status, _login_page(raw))
            return raw
        async with logins.turn:
            logins.check(name, function)  # refused while this request waited its turn?
            try:
                raw = await self._exchange(method, url, function, params, headers, data)
            except TlsError:
                raise  # the host answered, with a certificate this entry does not trust
            except TransportError:
                logins.unanswered()
                raise
            logins.answered(name, function, raw.status, _login_page(raw))
            return raw

    async def _exchange(
        self,
        method: str,
        url: str | URL,
        function: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        data: bytes | None,
    ) -> _Raw:
        await self._limiter.acquire()
        if self._on_request is not None:
            self._on_request()
        try:
            async with self._http.session.request(
                method,
                url,
                params=params,
                headers=headers,
                data=data,
                ssl=self._ssl,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                cookies = {k: m.value for k, m in resp.cookies.items()}
                return _Raw(
                    resp.status,
                    resp.headers.get("Content-Type", ""),
                    body,
                    _retry_after(resp.headers.get("Retry-After")),
                    cookies,
                )
        except (aiohttp.ClientError, ssl.SSLError, TimeoutError) as exc:
            raise _translated(exc, self._server.name, function) from None

    def _endpoint(self, path: str) -> URL:
        """The server's URL for a fixed API path, parsed once (yarl parsing costs per request)."""
        url = self._endpoints.get(path)
        if url is None:
            url = self._endpoints[path] = URL(f"{self._server.base_url}{path}")
        return url


def _translated(exc: BaseException, server: str, function: str) -> TargetError:
    """The one place aiohttp's exceptions become ours, without their reprs (which can carry the
    request's headers, i.e. the token)."""
    if isinstance(
        exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError
    ):
        return TlsError(f"TLS failure: {_describe(exc)}", server=server, function=function)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportError(
            f"cannot connect: {_describe(exc)}", server=server, function=function, maybe_sent=False
        )
    if isinstance(exc, TimeoutError):
        return RequestTimeout("request timed out", server=server, function=function)
    return TransportError(f"connection failed: {_describe(exc)}", server=server, function=function)


def _login_page(raw: _Raw) -> bool:
    return 200 <= raw.status < 300 and is_login_page(raw.content_type, raw.body)


def _auth_header(server: Server) -> str:
    auth = server.auth
    secret = auth.secret.reveal()
    if auth.method is AuthMethod.WHM_TOKEN:
        return f"whm {auth.user}:{secret}"
    if auth.method is AuthMethod.CPANEL_TOKEN:
        return f"cpanel {auth.user}:{secret}"
    pair = base64.b64encode(f"{auth.user}:{secret}".encode()).decode()
    return f"Basic {pair}"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _query(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _describe(exc: BaseException) -> str:
    """A short cause without headers: the OS error text, or the exception's class name."""
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, BaseException) and str(os_error):
        return str(os_error)[:200]
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None)
    if reason:
        return str(reason)[:200]
    return type(exc).__name__


async def post_webhook(
    url: str, payload: Mapping[str, Any], limit_seconds: float = 10.0
) -> str | None:
    """POST a JSON notification; return None, or a short reason it failed. Never raises.

    The URL is a secret (Slack-style URLs embed a token), so it never appears in the reason.
    """
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit_seconds)) as session,
            session.post(url, json=dict(payload)) as resp,
        ):
            if resp.status >= 300:
                return f"webhook answered HTTP {resp.status}"
            return None
    except TimeoutError:
        return "webhook timed out"
    except (aiohttp.ClientError, ValueError) as exc:
        return f"webhook failed: {type(exc).__name__}"
