"""Raw-HTTP helpers for the simulator tests: no clamfleet client code, only aiohttp."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from orchestrator.simulator import (
    AccountSpec,
    Faults,
    FleetSpec,
    ManualClock,
    ServerSpec,
    SimFile,
    SimulatedFleet,
)

WEB = SimFile("public_html/index.php", 5000)
SHELL = SimFile("public_html/up&load/it's.php", 700, "Php.Webshell-1")
MBOX = SimFile("mail/inbox", 9000, None, [None, "Html.Phishing.Bank-2", None])
HOMEFILE = SimFile("tmp/eicar.com", 68, "Eicar-Signature")


def fleet_of(*accounts: AccountSpec, faults: Faults | None = None) -> FleetSpec:
    server = ServerSpec("sim01", accounts=accounts, faults=faults or Faults())
    return FleetSpec(servers=(server,), scan_seconds=10.0)


def alice(**kw: Any) -> AccountSpec:
    files = kw.pop("files", (WEB, SHELL, MBOX, HOMEFILE))
    return AccountSpec("alice", files=files, **kw)


@dataclass
class Api:
    fleet: SimulatedFleet
    http: aiohttp.ClientSession
    clock: ManualClock
    server: str = "sim01"

    @property
    def url(self) -> str:
        return self.fleet.base_url(self.server)

    @property
    def spec(self) -> ServerSpec:
        return self.fleet.spec.server(self.server)

    def token_header(self, user: str) -> dict[str, str]:
        account = self.spec.account(user)
        assert account is not None
        return {"Authorization": f"cpanel {user}:{account.cpanel_token}"}

    @property
    def whm_header(self) -> dict[str, str]:
        return {"Authorization": f"whm root:{self.spec.whm_token}"}

    async def raw(self, method: str, path: str, **kw: Any) -> tuple[int, str, str]:
        async with self.http.request(method, self.url + path, allow_redirects=False, **kw) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.text()

    async def uapi(self, user: str, fn: str, **params: str) -> dict[str, Any]:
        status, ctype, body = await self.raw(
            "GET", f"/execute/ClamScanner/{fn}", params=params, headers=self.token_header(user)
        )
        assert (status, ctype.split(";")[0]) == (200, "application/json"), body
        result: dict[str, Any] = json.loads(body)
        return result

    async def whm(self, fn: str, **params: str) -> dict[str, Any]:
        status, _, body = await self.raw(
            "GET", f"/json-api/{fn}", params={"api.version": "1", **params}, headers=self.whm_header
        )
        assert status == 200, body
        result: dict[str, Any] = json.loads(body)
        return result

    async def via_whm(self, user: str, fn: str, **params: str) -> dict[str, Any]:
        return await self.whm(
            "uapi_cpanel",
            **{"cpanel.user": user, "cpanel.module": "ClamScanner", "cpanel.function": fn},
            **params,
        )

    async def disinfect(self, user: str, actions: dict[str, str]) -> dict[str, Any]:
        headers = {**self.token_header(user), "Content-Type": "application/json"}
        status, _, body = await self.raw(
            "POST",
            "/execute/ClamScanner/disinfect_files",
            data=json.dumps({"actions": actions}),
            headers=headers,
        )
        assert status == 200
        result: dict[str, Any] = json.loads(body)
        return result

    async def scan_to_completion(self, user: str, scan_type: str = "home") -> dict[str, Any]:
        assert (await self.uapi(user, "start_scan", scan_type=scan_type))["status"] == 1
        self.clock.advance(1000)
        status = await self.uapi(user, "get_scan_status")
        assert status["data"]["scan_complete"] == 1
        return status


@asynccontextmanager
async def running(spec: FleetSpec, *, tls: bool = False) -> AsyncIterator[Api]:
    clock = ManualClock()
    async with SimulatedFleet(spec, tls=tls, clock=clock) as fleet, aiohttp.ClientSession() as s:
        yield Api(fleet, s, clock)
