"""SimulatedFleet: every simulated server on its own 127.0.0.1 port, in the current loop.

A server's port is its `Face` (simulator/face.py); a watcher task applies refused-mode outages
(simulator/outage.py) to it, closing and reopening the same port on the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
from aiohttp import web

from orchestrator.simulator import inventory, promises
from orchestrator.simulator.account import AccountView
from orchestrator.simulator.app import make_app
from orchestrator.simulator.clock import Clock, SystemClock
from orchestrator.simulator.face import HOST, Face
from orchestrator.simulator.outage import WATCH_SECONDS, Outage
from orchestrator.simulator.promises import DEFAULT_FLEET_RPS, fleet_rate, host_rules
from orchestrator.simulator.referee import FleetWindow, ServerRules, Violation
from orchestrator.simulator.runtime import RequestRecord, ServerRuntime
from orchestrator.simulator.spec import Faults, FleetSpec

SHUTDOWN_SECONDS = 0.5


class SimulatedFleet:
    """`async with SimulatedFleet(spec) as fleet:`; the servers run in the caller's loop."""

    def __init__(
        self, spec: FleetSpec, tls: bool = False, clock: Clock | None = None,
        shared_scan_cap: bool | None = None,
    ) -> None:  # fmt: skip
        """`shared_scan_cap`: judge a host's entries' scan caps as one (promises.py; None:
        `promises.SHARED_SCAN_CAP`)."""
        self.spec = spec
        self.shared_scan_cap = (
            promises.SHARED_SCAN_CAP if shared_scan_cap is None else shared_scan_cap
        )
        self.tls = tls
        self.clock: Clock = clock or SystemClock()
        self.ca_file: Path | None = None
        self.env: dict[str, str] = inventory.all_secrets(spec)
        self._runtimes: dict[str, ServerRuntime] = {}
        self._runners: dict[str, web.AppRunner] = {}
        self._faces: dict[str, Face] = {}
        self._watcher: asyncio.Task[None] | None = None
        #: ports that failed to listen again after a refused outage (retried every tick)
        self.face_errors: list[str] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._window = FleetWindow()
        self._rules: dict[str, ServerRules] = {}

    async def __aenter__(self) -> SimulatedFleet:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        context = self._tls_context() if self.tls else None
        for server in self.spec.servers:
            runtime = ServerRuntime(server, self.spec, self.clock, self._window)
            runtime.referee.rules = self._rules.get(server.name, ServerRules())
            runner = web.AppRunner(
                make_app(runtime), access_log=None, handle_signals=False,
                shutdown_timeout=SHUTDOWN_SECONDS,
            )  # fmt: skip
            await runner.setup()
            self._runners[server.name] = runner
            face = Face(runner, context)
            port = await face.open()
            self._faces[server.name] = face
            runtime.refuse_now = face.refuse
            runtime.base_url = f"{'https' if context else 'http'}://{HOST}:{port}"
            self._runtimes[server.name] = runtime
        self._watcher = asyncio.create_task(self._watch(), name="clamfleet-sim-outages")

    async def _watch(self) -> None:
        while True:
            await self.apply_outages()
            await asyncio.sleep(WATCH_SECONDS)

    async def apply_outages(self) -> None:
        """Close or reopen each port as its refused-mode outages say now (the watcher does
        this every WATCH_SECONDS; a test that moved a ManualClock calls it to be exact)."""
        for name, face in list(self._faces.items()):
            rt = self._runtimes[name]
            if not rt.faults.outages and not face.down:
                continue
            wanted = rt.outage_wanted()
            try:
                if wanted is not None and not face.down:
                    await face.refuse()
                elif wanted is None and face.down:
                    await face.reopen()
            except OSError as exc:  # stays down; tried again next tick
                self.face_errors.append(f"{name}: port {face.port}: {exc}")

    def _tls_context(self) -> ssl.SSLContext:
        self._tmp = tempfile.TemporaryDirectory(prefix="clamfleet-sim-tls-")
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(HOST, "localhost").configure_cert(context)
        self.ca_file = Path(self._tmp.name) / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        return context

    async def stop_server(self, name: str) -> None:
        """Take one server down: its port refuses connections from now on."""
        face = self._faces.pop(name, None)
        if face is not None:
            face.close()
        runner = self._runners.pop(name, None)
        if runner is not None:
            await runner.cleanup()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        while self._runners:
            await self.stop_server(next(iter(self._runners)))
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- inspection and control (thread-safe) --------------------------------------------------

    def _rt(self, name: str) -> ServerRuntime:
        return self._runtimes[name]

    def base_url(self, name: str) -> str:
        return self._rt(name).base_url

    def urls(self) -> dict[str, str]:
        return {name: rt.base_url for name, rt in self._runtimes.items()}

    def write_inventory(
        self,
        path: Path | str,
        auth: str = "whm",
        settings: Mapping[str, Any] | None = None,
        extra_server_keys: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        """Write a YAML inventory for this fleet; return the env vars it references."""
        document, env = inventory.inventory_document(
            self.spec, self.urls(), auth=auth, ca_file=self.ca_file, settings=settings,
            extra_server_keys=extra_server_keys,
        )  # fmt: skip
        inventory.write(Path(path), document)
        self.learn_document(document)
        return env

    def learn_inventory(self, settings: Mapping[str, Any], server_keys: Mapping[str, Any]) -> None:
        """Teach the referee the limits an inventory promises (defaults for missing keys):
        `settings` as its `settings:`, `server_keys` as every server entry's own keys."""
        rules = ServerRules.combine([server_keys])
        for server in self.spec.servers:
            self.set_rules(server.name, rules)
        self.set_fleet_rate(float(settings.get("requests_per_second", DEFAULT_FLEET_RPS)))

    def learn_document(self, document: Mapping[str, Any]) -> None:
        """Teach the referee an inventory document's promises, each host's entries combined
        (simulator/promises.py). `write_inventory` does it; a test that edits the inventory
        it wrote calls it (or `learn_inventory_file`) again with the edited one."""
        shared = self.shared_scan_cap
        for name, rules in host_rules(document, self.urls(), shared_scan_cap=shared).items():
            self.set_rules(name, rules)
        self.set_fleet_rate(fleet_rate(document))

    def learn_inventory_file(self, path: Path | str) -> None:
        self.learn_document(inventory.read(Path(path)))

    def set_rules(self, name: str, rules: ServerRules) -> None:
        """The referee's rules for one server: its request rate, exclusions, suspended ones."""
        self.spec.server(name)  # KeyError for an unknown name
        self._rules[name] = rules
        if (rt := self._runtimes.get(name)) is not None:
            with rt.lock:
                rt.referee.rules = rules

    def rules(self, name: str) -> ServerRules:
        """What the referee holds the server (host) to, as learned."""
        rt = self._rt(name)
        with rt.lock:
            return rt.referee.rules

    def set_fleet_rate(self, requests_per_second: float | None) -> None:
        """settings.requests_per_second, checked across every server (None: not checked)."""
        self._window.limit = requests_per_second

    def violations(self, name: str | None = None) -> list[Violation]:
        """Rules broken so far (at one server, or at all of them), in arrival order per server."""
        names = [name] if name is not None else list(self._runtimes)
        return [v for n in names for v in self._rt(n).violations()]

    def set_faults(self, name: str, faults: Faults) -> None:
        self._rt(name).set_faults(faults)

    def faults(self, name: str) -> Faults:
        return self._rt(name).faults

    def outages(self, name: str) -> list[Outage]:
        """The server's outage windows begun so far (simulator clock; a running one with its
        planned end), in order: start, end, mode ("refused" | "503"), cause."""
        return self._rt(name).outages()

    def port_down(self, name: str) -> bool:
        """Whether the server's port refuses connections now (a refused outage, stop_server)."""
        face = self._faces.get(name)
        return face is None or face.down

    def request_log(self, name: str) -> list[RequestRecord]:
        return self._rt(name).requests()

    def calls(
        self,
        name: str,
        function: str | None = None,
        account: str | None = None,
        route: str | None = None,
    ) -> int:
        """Requests the server received (dropped and refused ones included), filtered."""
        return sum(
            1
            for r in self.request_log(name)
            if (function is None or r.function == function)
            and (account is None or r.account == account)
            and (route is None or r.route == route)
        )

    def account_state(self, name: str, user: str) -> AccountView:
        rt = self._rt(name)
        with rt.lock:
            return rt.accounts[user].view(rt.now())

    def loadavg(self, name: str) -> tuple[float, float, float]:
        """The server's 1, 5 and 15 minute load averages now."""
        rt = self._rt(name)
        with rt.lock:
            return rt.loadavg(rt.now())

    def scans_started(self, name: str) -> dict[tuple[str, str, str], list[tuple[str, str]]]:
        """(run id, account, scan type) -> what the scan that run's start_scan created found
        ((relpath, virus), in walk order): the latest scan per key; never a scan started by
        cPanel's UI (`start_scan_as_ui`). Run id as the referee reads it from the User-Agent."""
        return self._rt(name).scans_started()

    def start_scan_as_ui(self, name: str, user: str, scan_type: str = "home") -> str | None:
        """Start a scan as someone in cPanel's UI would (not a request: no referee, no log).
        Returns cPanel's error (a scan already runs, clamd is down...) or None."""
        return self._rt(name).start_as_ui(user, scan_type)

    def fail_start_as_ui(self, name: str, user: str, scan_type: str = "home") -> str | None:
        """A start_scan from cPanel's UI refused while clamd was down: it leaves the status file
        reset (`scan_complete: 0`, zero counters) with no scan behind it. Returns the error."""
        return self._rt(name).start_as_ui(user, scan_type, clamd_down=True)

    def open_sessions(self, name: str) -> int:
        """cPanel sessions created on the server (create_user_session) and not logged out."""
        rt = self._rt(name)
        with rt.lock:
            return rt.sessions.open_sessions

    def running_scans(self, name: str) -> int:
        """Scans whose child is alive on the server now."""
        rt = self._rt(name)
        with rt.lock:
            now = rt.now()
            return sum(1 for a in rt.accounts.values() if a.scan_running(now))
