"""The embedded cPanel fleet simulator: the stand-in for real cPanel servers in tests, the demo
and the benchmark. It follows `cpanel-api.md` (sections 2, 3, 5, 6): both ways in (`/execute`
and WHM API 1), their envelopes, cPHulk, sessions, scans computed lazily from a clock,
disinfection tasks, and deterministic fault knobs. Binds 127.0.0.1 only.
"""

from orchestrator.simulator.account import AccountView
from orchestrator.simulator.clock import Clock, ManualClock, SystemClock
from orchestrator.simulator.fleet import SimulatedFleet
from orchestrator.simulator.generate import generate_fleet
from orchestrator.simulator.runtime import RequestRecord
from orchestrator.simulator.spec import AccountSpec, Faults, FleetSpec, ServerSpec, SimFile
from orchestrator.simulator.thread import SimulatorThread, serve

__all__ = [
    "AccountSpec",
    "AccountView",
    "Clock",
    "Faults",
    "FleetSpec",
    "ManualClock",
    "RequestRecord",
    "ServerSpec",
    "SimFile",
    "SimulatedFleet",
    "SimulatorThread",
    "SystemClock",
    "generate_fleet",
    "serve",
]
