"""SimulatorThread (the fleet in a background thread's own loop) and `serve` (for the CLI)."""

from __future__ import annotations

import asyncio
import shlex
import signal
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio

from orchestrator.simulator.account import AccountView
from orchestrator.simulator.clock import Clock
from orchestrator.simulator.fleet import SimulatedFleet
from orchestrator.simulator.outage import Outage
from orchestrator.simulator.referee import ServerRules, Violation, summary_lines
from orchestrator.simulator.runtime import RequestRecord
from orchestrator.simulator.spec import Faults, FleetSpec

START_TIMEOUT = 30.0


class SimulatorThread:
    """`with SimulatorThread(spec) as fleet:` for sync code; the same inspection API."""

    def __init__(
        self, spec: FleetSpec, tls: bool = False, clock: Clock | None = None,
        shared_scan_cap: bool | None = None,
    ) -> None:  # fmt: skip
        self.spec = spec
        self._args = (spec, tls, clock, shared_scan_cap)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="clamfleet-simulator", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._fleet: SimulatedFleet | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> SimulatorThread:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise TimeoutError("the simulator did not start")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to __enter__ when it happened at start-up
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with SimulatedFleet(*self._args) as fleet:
            self._fleet = fleet
            self._ready.set()
            await self._stop.wait()

    @property
    def fleet(self) -> SimulatedFleet:
        if self._fleet is None:
            raise RuntimeError("the simulator is not running")
        return self._fleet

    @property
    def ca_file(self) -> Path | None:
        return self.fleet.ca_file

    @property
    def env(self) -> dict[str, str]:
        return self.fleet.env

    def base_url(self, name: str) -> str:
        return self.fleet.base_url(name)

    def write_inventory(
        self,
        path: Path | str,
        auth: str = "whm",
        settings: Mapping[str, Any] | None = None,
        extra_server_keys: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        return self.fleet.write_inventory(path, auth, settings, extra_server_keys)

    def set_faults(self, name: str, faults: Faults) -> None:
        self.fleet.set_faults(name, faults)

    def calls(
        self, name: str, function: str | None = None, account: str | None = None,
        route: str | None = None,
    ) -> int:  # fmt: skip
        return self.fleet.calls(name, function, account, route)

    def request_log(self, name: str) -> list[RequestRecord]:
        return self.fleet.request_log(name)

    def account_state(self, name: str, user: str) -> AccountView:
        return self.fleet.account_state(name, user)

    def violations(self, name: str | None = None) -> list[Violation]:
        """The referee's record (also after the simulator stopped)."""
        return self.fleet.violations(name)

    def set_rules(self, name: str, rules: ServerRules) -> None:
        self.fleet.set_rules(name, rules)

    def learn_inventory_file(self, path: Path | str) -> None:
        """Teach the referee an (edited) inventory's promises, each host's entries combined."""
        self.fleet.learn_inventory_file(path)

    def outages(self, name: str) -> list[Outage]:
        return self.fleet.outages(name)

    def port_down(self, name: str) -> bool:
        return self.fleet.port_down(name)

    def apply_outages(self) -> None:
        """Apply refused-mode outages to the ports now (blocking; the watcher does it too)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.fleet.apply_outages(), self._loop).result(30)

    def set_fleet_rate(self, requests_per_second: float | None) -> None:
        self.fleet.set_fleet_rate(requests_per_second)

    def loadavg(self, name: str) -> tuple[float, float, float]:
        return self.fleet.loadavg(name)

    def running_scans(self, name: str) -> int:
        return self.fleet.running_scans(name)

    def open_sessions(self, name: str) -> int:
        return self.fleet.open_sessions(name)

    def scans_started(self, name: str) -> dict[tuple[str, str, str], list[tuple[str, str]]]:
        return self.fleet.scans_started(name)

    def start_scan_as_ui(self, name: str, user: str, scan_type: str = "home") -> str | None:
        return self.fleet.start_scan_as_ui(name, user, scan_type)

    def fail_start_as_ui(self, name: str, user: str, scan_type: str = "home") -> str | None:
        return self.fleet.fail_start_as_ui(name, user, scan_type)

    def stop_server(self, name: str) -> None:
        """Take one server down (blocking until its port is closed)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.fleet.stop_server(name), self._loop).result(30)


async def serve(
    spec: FleetSpec,
    tls: bool = False,
    write_inventory: Path | None = None,
    auth: str = "whm",
    announce: Callable[[str], None] = print,
    clock: Clock | None = None,
    settings: Mapping[str, Any] | None = None,
    server_keys: Mapping[str, Any] | None = None,
) -> list[Violation]:
    """Run the fleet until SIGINT/SIGTERM (or cancelled); announce URLs, the inventory and
    `export` lines, and at the end every protocol violation. Returns the violations.

    `settings` / `server_keys` go into the inventory written, and teach the referee its limits;
    a host's entries share one scan cap, the smallest (promises.py), whatever SHARED_SCAN_CAP.
    """
    # The handlers go in before anything is announced: a SIGTERM right after the announcement
    # must still print the record, not kill the process.
    with _stop_signals() as signals:
        async with SimulatedFleet(spec, tls=tls, clock=clock, shared_scan_cap=True) as fleet:
            for name, url in fleet.urls().items():
                announce(f"{name} {url}")
            if fleet.ca_file is not None:
                announce(f"CA certificate: {fleet.ca_file}")
            env = fleet.env
            if write_inventory is not None:
                env = fleet.write_inventory(write_inventory, auth, settings, server_keys)
                announce(f"inventory: {write_inventory}")
            elif settings is not None or server_keys is not None:
                fleet.learn_inventory(settings or {}, server_keys or {})
            for key, value in env.items():
                announce(f"export {key}={shlex.quote(value)}")
            try:
                if signals is None:
                    await anyio.sleep_forever()
                else:
                    async for _ in signals:
                        break
            finally:  # also when cancelled: the record is the point of a referee
                violations = fleet.violations()
                for line in summary_lines(violations):
                    announce(line)
    return violations


def _stop_signals() -> AbstractContextManager[AsyncIterator[int] | None]:
    """SIGINT/SIGTERM as an async iterator; None off the main thread (no signals there)."""
    if threading.current_thread() is not threading.main_thread():
        return nullcontext(None)
    return anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
