"""The transport: the run's one ClientSession, its SSL contexts, and sending one request.

The only module of clamfleet's client side that imports aiohttp (and yarl). Every aiohttp
exception, and aiohttp's own TimeoutError, is translated into the error tree of `errors.py` in
`translated`, with `from None`: aiohttp's exceptions and their reprs can carry the request
headers, i.e. the token, and a chained traceback would print them.
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from orchestrator import __version__
from orchestrator.client.health import Hosts
from orchestrator.client.transcript import Exchange
from orchestrator.config import TlsConfig
from orchestrator.errors import RequestTimeout, TargetError, TlsError, TransportError

#: A parsed URL: what the layers above pass back to `send` without importing yarl themselves.
Url = URL

#: How a request is verified: an SSL context, or False for `tls.verify: false`.
SslSetting = ssl.SSLContext | bool

#: Called with every exchange, secrets still in it (validate --check-api --record redacts).
Recorder = Callable[[Exchange], None]


def user_agent(run_id: str | None, client: str | None = None) -> str:
    """`clamfleet/<version> (run <run-id>; client <tag>)`: a server's referee tells runs apart
    by the run id (kept across --resume) and one process of a run from the next by the client
    tag (a resumed process knows nothing of the outage its predecessor met)."""
    base = f"clamfleet/{__version__}"
    if not run_id:
        return base
    return f"{base} (run {run_id}; client {client})" if client else f"{base} (run {run_id})"


def parse_url(text: str) -> Url:
    """A URL parsed once, to be sent many times (yarl parsing costs per request)."""
    return URL(text)


@dataclass(frozen=True, slots=True)
class Raw:
    """One HTTP answer as the layers above read it: no aiohttp type in it."""

    status: int
    content_type: str
    body: bytes
    retry_after: float | None
    cookies: Mapping[str, str]


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
        recorder: Recorder | None = None,
    ) -> None:
        self._recorder = recorder
        self._user_agent = user_agent(run_id, secrets.token_hex(4))
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout, sock_connect=min(request_timeout, 15.0)
        )
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        self._ssl: dict[tuple[bool, str | None], SslSetting] = {}
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

    def ssl_for(self, tls: TlsConfig) -> SslSetting:
        """One SSL context per trust configuration, built once (building one costs ~ms)."""
        key = (tls.verify, str(tls.ca_file) if tls.ca_file else None)
        if key not in self._ssl:
            if not tls.verify:
                self._ssl[key] = False
            else:
                self._ssl[key] = ssl.create_default_context(cafile=key[1])
        return self._ssl[key]

    async def send(
        self,
        method: str,
        url: str | Url,
        *,
        ssl_setting: SslSetting,
        where: tuple[str, str],
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> Raw:
        """One request, no redirect followed; `where` (server, function) names its errors."""
        started = time.monotonic()
        try:
            async with self.session.request(
                method,
                url,
                params=params,
                headers=headers,
                data=data,
                ssl=ssl_setting,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                if self._recorder is not None:
                    self._recorder(
                        Exchange(
                            *where, method, str(resp.url), tuple(resp.request_info.headers.items()),
                            data, resp.status, tuple(resp.headers.items()), body,
                            seconds=time.monotonic() - started,
                        )
                    )  # fmt: skip
                return Raw(
                    resp.status,
                    resp.headers.get("Content-Type", ""),
                    body,
                    retry_after_seconds(resp.headers.get("Retry-After")),
                    {k: m.value for k, m in resp.cookies.items()},
                )
        except (aiohttp.ClientError, ssl.SSLError, TimeoutError) as exc:
            error = translated(exc, *where)
            if self._recorder is not None:
                sent = URL(url).update_query(params) if params else URL(url)
                self._recorder(
                    Exchange(
                        *where, method, str(sent), tuple((headers or {}).items()), data,
                        error=str(error), seconds=time.monotonic() - started,
                    )
                )  # fmt: skip
            raise error from None


def translated(exc: BaseException, server: str, function: str) -> TargetError:
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


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (never negative); None if absent or not a number."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


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
