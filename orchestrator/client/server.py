"""`ServerClient`: every call clamfleet makes to one server, on top of its route and channel.

Reads (status, infected list, scan paths, disinfection status, listaccts, systemloadavg) are
retried by the retry policy, and wait through an outage of the host (breaker.py); state
changes (`start_scan`, `disinfect_files`) are sent once (the gate holds them too while the host
is away): what follows a failed one is the workflow's decision.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from orchestrator.client.channel import Acquire, Channel
from orchestrator.client.parse import (
    Account,
    parse_accounts,
    parse_disinfection,
    parse_infected,
    parse_load,
    parse_scan_paths,
    parse_status,
    parse_task_id,
    parse_whm,
)
from orchestrator.client.retry import RetryPolicy, with_retries
from orchestrator.client.route import route_for
from orchestrator.client.transport import Http
from orchestrator.config import AuthMethod, Server
from orchestrator.model import Action, DisinfectionStatusReply, LoadReading, ScanType, StatusData


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
        self._server = server
        self._retry = retry or RetryPolicy()
        self._channel = Channel(http, server, limiter, on_request)
        self._route = route_for(self._channel, self._retry)
        self._whm = server.auth.method is AuthMethod.WHM_TOKEN

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
        """POST JSON `{"actions": {...}}`, once; through WHM, inside a cPanel session."""
        body = json.dumps({"actions": {p: str(a) for p, a in actions.items()}}).encode()
        return parse_task_id(await self._route.disinfect(account, body))

    # -- WHM ---------------------------------------------------------------------------------

    async def list_accounts(self) -> tuple[Account, ...]:
        params = {"api.version": "1", "want": "user,domain,suspended,diskused"}
        return parse_accounts(await self._whm_read("listaccts", params))

    async def system_load(self) -> LoadReading | None:
        """WHM `systemloadavg` (a read: retried like one). None for cPanel-login servers, which
        cannot read it; failures raise like any other call (the caller falls back to the cap)."""
        if not self._whm:
            return None
        return parse_load(await self._whm_read("systemloadavg", {"api.version": "1"}))

    # -- plumbing ----------------------------------------------------------------------------

    async def _whm_read(self, function: str, params: Mapping[str, str]) -> Any:
        url = self._channel.endpoint(f"/json-api/{function}")
        answer = await self._retried(function, lambda: self._channel.call(url, params, function))
        return parse_whm(answer, function)

    async def _idempotent(
        self, account: str, function: str, params: Mapping[str, str] | None = None
    ) -> Any:
        call = partial(self._route.uapi, account, function, params, post=False)
        return await self._retried(function, call)

    async def _once(
        self, account: str, function: str, params: Mapping[str, str] | None = None
    ) -> Any:
        """A state-changing call: sent once, as a form POST.

        POST, as cPanel's own client sends every call, and because aiohttp silently re-sends
        an idempotent-method request (GET) when a reused keep-alive connection turns out
        closed: a `start_scan` GET whose connection dropped could reach cPanel twice.
        """
        return await self._route.uapi(account, function, params, post=True)

    async def _retried(self, function: str, call: Callable[[], Awaitable[Any]]) -> Any:
        return await with_retries(
            self._retry,
            call,
            server=self._server.name,
            function=function,
            breaker=self._channel.breaker,
        )
