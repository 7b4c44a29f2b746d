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
  for `Faults.stale_seconds` (README "What a run does", step 3); never a null or a running one.
- time_started is strictly increasing per account, so two scans in one second differ.
- `systemloadavg` answers numbers (current docs); with a `ServerSpec.load` the load follows
  running scans and the background with the kernel's smoothing, and scans slow down when the
  server is oversubscribed (simulator/load.py); without one it reports the running scans.
- A one-time login URL works once; the state file is never `queued` (cPanel deletes it right
  after queueing, hence the transient `none`).
- A real night (outage.py, faults.py, load.py): cpsrvd restarts (`refused`: the port closes,
  then listens again on the same port) or a 503 proxy, at a time, on a function's request or
  as an upcp run; scans and disinfection tasks go on meanwhile. A throttling proxy answers
  start_scan 429/503 without running it; busy servers; systemloadavg readings that fail.
- What ClamScanner reports (`current_file`, `infected_files`, `list_infected_files` `file` and
  `virus_type`) goes through cPanel's encoder (`'` as `&#39;`); disinfection log records and
  error texts are not encoded.

The referee (`referee.py`) records every request that breaks a rule a client can break; see
`referee.RULES`, `SimulatedFleet.violations()`. Where cpanel-api.md is silent it takes the
reading that is safer for the client, i.e. the stricter one:
- "Complete" is what the status file says, not its stale view right after start_scan: a
  stalled scan is never complete, nor is a status that a refused start_scan has just reset.
- A second start_scan for a target within one run counts once one took, accepted or not.
- After a finished disinfection the infected list is gone: any path named is unlisted.
- Queueing a disinfection while the previous one is queued or running is a violation (4: "no
  guard was found ... avoid doing this").
- Starting a scan while the account's disinfection is queued or running is a violation (3.5:
  the task's end deletes the infected list, which is then the new scan's: a false "clean").
- A refused login is a 403 for bad credentials or a cPHulk block. cPHulk blocks by IP, so from
  then on every request of that run to that server counts, for any account or credentials.
  The 403 a suspended account's own credentials get is not one (cPHulk does not count it);
  the client cannot know before it, so only that run's later requests for the account count.
- Suspended and excluded accounts: requests that act on the account (UAPI by any route,
  create_user_session, the session login); never listaccts or other WHM calls.
- Rates are per run (one client, one promise), counted at arrival in 0.95 s windows (jitter);
  a rate below 1/s is checked as 1/s. Every inventory entry on one simulated server shares
  its limits (one owner, one host): the host's rate and scan cap are the smallest its entries
  give (promises.py). Limits are learned from the inventory the fleet writes (or
  `learn_inventory_file` for an edited one, `set_rules`/`set_fleet_rate`, or `simulate
  --requests-per-second/--max-concurrent-scans`); a fleet that wrote none checks no rate,
  scan cap, exclusion or suspension.
- Outages (outage.py): a hammering client is judged in `503` mode only; a refused connection
  never reaches the simulator (the kernel refuses it), so a refused outage is silence.
- A request a fault knob answered instead of the server (5xx, reset, login page) still counts
  for rates and after a refused login; the scan and disinfection rules judge calls that ran.
"""

from orchestrator.simulator.account import AccountView
from orchestrator.simulator.clock import Clock, ManualClock, SystemClock
from orchestrator.simulator.fleet import SimulatedFleet
from orchestrator.simulator.generate import generate_fleet
from orchestrator.simulator.load import LoadSpec
from orchestrator.simulator.outage import Outage
from orchestrator.simulator.referee import RULES, ServerRules, Violation
from orchestrator.simulator.runtime import RequestRecord
from orchestrator.simulator.spec import AccountSpec, Faults, FleetSpec, ServerSpec, SimFile
from orchestrator.simulator.thread import SimulatorThread, serve

__all__ = [
    "RULES",
    "AccountSpec",
    "AccountView",
    "Clock",
    "Faults",
    "FleetSpec",
    "LoadSpec",
    "ManualClock",
    "Outage",
    "RequestRecord",
    "ServerRules",
    "ServerSpec",
    "SimFile",
    "SimulatedFleet",
    "SimulatorThread",
    "SystemClock",
    "Violation",
    "generate_fleet",
    "serve",
]
