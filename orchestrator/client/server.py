"""`ServerClient`: every call clamfleet makes to one server, on top of its route and channel.

Reads (status, infected list, scan paths, disinfection status, listaccts) are retried by the
retry policy, and wait through an outage of the host (breaker.py); state changes (`start_scan`,
`disinfect_files`) are sent once (the gate holds them too while the host is away): what follows
a failed one is the workflow's decision. A load reading (`systemloadavg`) is sent once too: a
failed one is simply the next check's business.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from orchestrator.client.channel import Acquire, Channel
from orchestrator.client.parse import (
    Account,
    Answer,
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
from orchestrator.client.route import WhmRoute, route_for
from orchestrator.client.transport import Http
from orchestrator.config import AuthMethod, Server
from orchestrator.errors import TargetError
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

    async def disinfect(
        self,
        account: str,
        actions: Mapping[str, Action],
        *,
        sending: Callable[[], None] | None = None,
    ) -> str:
        """POST JSON `{"actions": {...}}`, once; through WHM, inside a cPanel session.

        `sending` is called right before the POST goes out, and never if it does not (a session
        login that failed, a host that refused a login): the journal's "maybe sent" mark."""
        body = json.dumps({"actions": {p: str(a) for p, a in actions.items()}}).encode()
        return parse_task_id(await self._route.disinfect(account, body, sending))

    async def try_session(self, account: str) -> bool | None:
        """Open the cPanel session a WHM token's disinfect_files needs (create_user_session,
        its login), then log it out: what a pre-flight checks before a policy that sends
        actions. None: this route needs no session (the account's own credentials); else
        whether the logout was answered (a session left open expires after 15 idle minutes).
        Opening it raises like any call."""
        route = self._route
        if not isinstance(route, WhmRoute):
            return None
        session = await route.open_session(account)
        try:
            return await route.end_session(session)
        except TargetError:
            return False

    # -- WHM ---------------------------------------------------------------------------------

    async def list_accounts(self) -> tuple[Account, ...]:
        params = {"api.version": "1", "want": "user,domain,suspended,diskused"}
        return parse_accounts(await self._whm_read("listaccts", params))

    async def system_load(self) -> LoadReading | None:
        """WHM `systemloadavg`, one attempt: a reading retried for seconds describes a moment
        already past, and a server too busy to answer is the last one to hammer. None for
        cPanel-login servers, which cannot read it; a failure raises like any other call (the
        caller keeps the last good limit until the next check)."""
        if not self._whm:
            return None
        url = self._channel.endpoint("/json-api/systemloadavg")
        answer = await self._channel.call(url, {"api.version": "1"}, "systemloadavg")
        return parse_load(parse_whm(answer, "systemloadavg"))

    # -- whole answers, envelope intact (validate --check-api) --------------------------------

    @property
    def via_whm(self) -> bool:
        """Whether ClamScanner answers come through WHM `uapi_cpanel` (`parse.uapi_data`)."""
        return self._route.whm

    async def read_answer(
        self, account: str, function: str, params: Mapping[str, str] | None = None
    ) -> Answer:
        """A ClamScanner read's whole answer, retried like every read."""
        call = partial(self._route.answer, account, function, params, post=False)
        answer: Answer = await self._retried(function, call)
        return answer

    async def whm_answer(self, function: str, params: Mapping[str, str]) -> Answer:
        """A WHM API 1 read's whole answer (`metadata` not yet checked), retried."""
        url = self._channel.endpoint(f"/json-api/{function}")
        answer: Answer = await self._retried(
            function, lambda: self._channel.call(url, params, function)
        )
        return answer

    async def session_answer(self, account: str, function: str) -> Answer:
        """A ClamScanner read inside the account's cPanel session (the route `disinfect` takes
        through WHM); only for WHM-token servers."""
        if not isinstance(self._route, WhmRoute):
            raise TypeError("a cPanel session is opened through WHM only")
        return await self._route.session_answer(account, function)

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
