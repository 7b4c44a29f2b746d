"""The embedded cPanel fleet simulator: the stand-in for real cPanel servers in tests, the demo
and the benchmark. It follows `cpanel-api.md` (sections 2, 3, 5, 6): both ways in (`/execute`
and WHM API 1), their envelopes, cPHulk, sessions, scans computed lazily from a clock,
disinfection tasks, and deterministic fault knobs. Binds 127.0.0.1 only.

Where cpanel-api.md leaves a behaviour open, the simulator picks one and says so here:
- A suspended account's own credentials on `/execute` get the 403 (not counted by cPHulk);
  `uapi_cpanel` still works for it; `create_user_session` refuses it.
- A request without `api.version=1` on `/json-api/` fails at WHM level (result 0).
- An mbox with several infected messages is reported once, with its first message's virus.
- A stalled scan is a dead scanner child: its status freezes near 40% with scan_complete 0, and
  a new start_scan is accepted again (the PID is gone), as section 3.3 describes.
- `get_scan_status` right after a successful start_scan shows the previous *completed* status
  for `Faults.stale_seconds` (design.md section 7); never a null or a running one.
- time_started is strictly increasing per account, so two scans in one second differ.
- `systemloadavg` answers numbers (current docs); with a `ServerSpec.load` the load follows
  running scans and the background with the kernel's smoothing, and scans slow down when the
  server is oversubscribed (simulator/load.py); without one it reports the running scans.
- A one-time login URL works once; the state file is never `queued` (cPanel deletes it right
  after queueing, hence the transient `none`).
"""

from orchestrator.simulator.account import AccountView
from orchestrator.simulator.clock import Clock, ManualClock, SystemClock
from orchestrator.simulator.fleet import SimulatedFleet
from orchestrator.simulator.generate import generate_fleet
from orchestrator.simulator.load import LoadSpec
from orchestrator.simulator.runtime import RequestRecord
from orchestrator.simulator.spec import AccountSpec, Faults, FleetSpec, ServerSpec, SimFile
from orchestrator.simulator.thread import SimulatorThread, serve

__all__ = [
    "AccountSpec",
    "AccountView",
    "Clock",
    "Faults",
    "FleetSpec",
    "LoadSpec",
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
