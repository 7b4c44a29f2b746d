"""Benchmark of load-aware pacing: fixed caps 1, 2, 4, 8 against adaptive (`load.max`).

    .venv/bin/python bench/pacing.py                 # offline policy model + end to end
    .venv/bin/python bench/pacing.py --offline-only  # the policy model only (~1 s)

The scenario: six servers of 2 to 16 cores with background loads from 0.2 to 6 (one of them
with a spike at minute 20), accounts in proportion to the cores (bigger servers host more),
10-minute scans. The ceiling is 80 % of each server's cores; adaptive runs use it as
`load.max` with `max_concurrent_scans: 16` as the cap.

Two ways to run a policy, one table each:
- offline: the pure `LoadController` against the simulator's `LoadModel` in simulated time,
  with a minimal stand-in for the runner (read when due, start while `may_start`). No HTTP, no
  clock: it measures the control law itself, deterministically, and runs in about a second.
- end to end: the simulator (load modelling on, time compressed K times) in this process, the
  orchestrator (`python -m orchestrator run`) in a child process, a sampler thread reading
  every server's load average each simulated 5 s. An adaptive run needs the runner's pacing
  wiring; without it the report has no `run.pacing` and the row says "not wired".

Columns: fleet wall time (simulated s), its ratio to the best fixed cap that stayed under the
ceiling, server-seconds over the ceiling and their share of all server time (servers x wall),
API calls per target (every request the simulator saw, systemloadavg included, / targets) and
load readings per target. Numbers belong in RESULTS.md, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fleet import work_dir  # noqa: E402

from orchestrator.model import LoadReading  # noqa: E402
from orchestrator.simulator import FleetSpec, LoadSpec, SimulatorThread, generate_fleet  # noqa: E402
from orchestrator.simulator.load import LoadModel  # noqa: E402
from orchestrator.workflow.pacing import LoadController  # noqa: E402

#: (cores, background, profile): the spike server jumps from 3 to 5.5 at minute 20 for 10 min.
SERVERS: tuple[tuple[int, float, tuple[tuple[float, float], ...]], ...] = (
    (2, 0.2, ()),
    (4, 1.0, ()),
    (8, 2.0, ()),
    (12, 3.0, ((1200.0, 5.5), (1800.0, 3.0))),
    (16, 6.0, ()),
    (16, 0.5, ()),
)
ACCOUNTS_PER_CORE = 2
SCAN_SECONDS = 600.0  # simulated, mean (sizes vary: up to ~2x)
CEILING_SHARE = 0.8
FIXED_CAPS = (1, 2, 4, 8)
ADAPTIVE_CAP = 16
CHECK_INTERVAL = 30.0  # simulated seconds: the inventory default
TICK = 5.0


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    cap: int
    adaptive: bool


POLICIES = (*(Policy(f"fixed {c}", c, False) for c in FIXED_CAPS), Policy("adaptive", 16, True))


@dataclass(slots=True)
class Row:
    policy: str
    wall_s: float  # simulated seconds
    over_s: float  # server-seconds with the 1-minute load above the ceiling
    servers: int
    targets: int
    calls: int  # every API call (end to end) or load readings only (offline)
    readings: int
    note: str = ""

    @property
    def over_share(self) -> float:
        return self.over_s / (self.servers * self.wall_s) if self.wall_s else 0.0


# ---------------------------------------------------------------------------------------------
# the scenario


def scenario(time_scale: float = 1.0) -> FleetSpec:
    """The fleet: per server its LoadSpec, accounts in proportion to its cores."""
    servers = []
    for i, (cores, background, profile) in enumerate(SERVERS):
        count = cores * ACCOUNTS_PER_CORE
        part = generate_fleet(
            servers=1, accounts=count, infected_ratio=0.0, seed=10 + i,
            scan_seconds=SCAN_SECONDS / time_scale,
        )  # fmt: skip
        spec = LoadSpec(cores=cores, background=background, profile=profile)
        servers.append(replace(part.servers[0], name=f"c{cores:02d}-{i + 1}", load=spec))
    return FleetSpec(
        servers=tuple(servers), scan_seconds=SCAN_SECONDS / time_scale, seed=1,
        time_scale=time_scale,
    )  # fmt: skip


def ceiling(spec: LoadSpec) -> float:
    return CEILING_SHARE * spec.cores


# ---------------------------------------------------------------------------------------------
# offline: the control law against the load model, in simulated seconds


def offline(policy: Policy, fleet: FleetSpec, step: float = 1.0) -> Row:
    over = 0.0
    wall = 0.0
    readings = 0
    targets = 0
    for server in fleet.servers:
        assert server.load is not None
        model = LoadModel(server.load, 0.0)
        cap = policy.cap
        ctl = LoadController(ceiling(server.load) if policy.adaptive else None, cap, CHECK_INTERVAL)
        todo = [fleet.scan_seconds_of(a) for a in server.accounts]
        targets += len(todo)
        t = 0.0
        next_tick = TICK
        while todo or model.running(t):
            running = model.running(t)
            if ctl.check_due(t, waiting=bool(todo)):
                one, five, fifteen = model.loadavg(t)
                ctl.observe(LoadReading(one, five, fifteen), t, running)
                readings += 1
            while todo and ctl.may_start(running):
                model.start_scan(f"a{len(todo)}", t, todo.pop())
                running += 1
            t += step
            if t >= next_tick:
                if model.loadavg(t)[0] > ceiling(server.load):
                    over += TICK
                next_tick += TICK
        wall = max(wall, t)
    return Row(policy.name, wall, over, len(fleet.servers), targets, readings, readings)


# ---------------------------------------------------------------------------------------------
# end to end: the orchestrator process against the simulator


def inventory_keys(policy: Policy, fleet: FleetSpec) -> dict[str, dict[str, object]]:
    keys: dict[str, dict[str, object]] = {}
    for server in fleet.servers:
        assert server.load is not None
        entry: dict[str, object] = {"max_concurrent_scans": policy.cap}
        if policy.adaptive:
            entry["load"] = {
                "max": ceiling(server.load),
                "check_interval": CHECK_INTERVAL / fleet.time_scale,
                # the simulated averages move K times faster than the kernel's 60 s
                "time_constant": 60.0 / fleet.time_scale,
            }
        keys[server.name] = entry
    return keys


class Sampler:
    """Every server's 1-minute load each simulated 5 s, while the run lasts."""

    def __init__(self, sim: SimulatorThread, fleet: FleetSpec) -> None:
        self.sim, self.fleet = sim, fleet
        self.over_ticks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        period = TICK / self.fleet.time_scale
        while not self._stop.wait(period):
            for server in self.fleet.servers:
                assert server.load is not None
                if self.sim.loadavg(server.name)[0] > ceiling(server.load):
                    self.over_ticks += 1


def end_to_end(policy: Policy, fleet: FleetSpec, work: Path, timeout: float) -> Row:
    run_dir = work / policy.name.replace(" ", "-")
    run_dir.mkdir(parents=True, exist_ok=True)
    k = fleet.time_scale
    settings = {
        "poll_interval": {"min": 2 / k, "max": 30 / k},
        "timeouts": {"request": 5, "scan": 21600 / k, "stall": 1800 / k, "disinfection": 60},
        "requests_per_second": 100 * k,
    }
    with SimulatorThread(fleet) as sim:
        inventory = run_dir / "inventory.yaml"
        env = sim.write_inventory(inventory, auth="whm", settings=settings)
        _server_keys(inventory, inventory_keys(policy, fleet), rps=5 * k)
        sim.learn_inventory_file(inventory)  # the referee holds the run to the edited limits
        out = str(run_dir / "report")
        argv = [sys.executable, "-m", "orchestrator", "run", str(inventory), "--out", out,
                "--no-progress", "--log-level", "warning"]  # fmt: skip
        with Sampler(sim, fleet) as sampler:
            started = time.perf_counter()
            proc = subprocess.run(
                argv, env={**os.environ, **env}, cwd=ROOT, capture_output=True, timeout=timeout,
                check=False,
            )  # fmt: skip
            wall = (time.perf_counter() - started) * k
        (run_dir / "orchestrator.err").write_bytes(proc.stderr)
        calls = sum(len(sim.request_log(s.name)) for s in fleet.servers)
        readings = sum(sim.calls(s.name, "systemloadavg") for s in fleet.servers)
    if proc.returncode not in (0, 1, 2):
        raise RuntimeError(f"orchestrator exited {proc.returncode}; see {run_dir}")
    report = json.loads((run_dir / "report" / "report.json").read_text())
    note = ""
    if policy.adaptive and not report["run"].get("pacing"):
        note = f"not wired: ran as fixed {policy.cap}"
    return Row(
        policy.name, wall, sampler.over_ticks * TICK, len(fleet.servers),
        len(report["targets"]), calls, readings, note,
    )  # fmt: skip


def _server_keys(path: Path, keys: dict[str, dict[str, object]], rps: float) -> None:
    import yaml

    data = yaml.safe_load(path.read_text())
    for server in data["servers"]:
        server.update(keys[server["name"]])
        server["requests_per_second"] = rps
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# ---------------------------------------------------------------------------------------------
# the table


def table(title: str, rows: Sequence[Row]) -> str:
    safe = [r for r in rows if r.policy.startswith("fixed") and r.over_s == 0]
    best = min((r.wall_s for r in safe), default=None)
    head = ("policy", "wall s", "vs best safe fixed", "server-s over", "% over", "calls/target",
            "readings/target", "note")  # fmt: skip
    lines = [title, " | ".join(head)]
    for r in rows:
        ratio = f"{r.wall_s / best:.2f}" if best else "-"
        lines.append(
            " | ".join((
                r.policy, f"{r.wall_s:.0f}", ratio, f"{r.over_s:.0f}",
                f"{100 * r.over_share:.2f}", f"{r.calls / max(r.targets, 1):.2f}",
                f"{r.readings / max(r.targets, 1):.2f}", r.note,
            ))
        )  # fmt: skip
    if best is None:
        lines.append("(no fixed cap stayed under the ceiling)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offline-only", action="store_true")
    parser.add_argument("--time-scale", type=float, default=120.0, help="K for end to end")
    parser.add_argument("--policies", default=",".join(p.name for p in POLICIES))
    parser.add_argument("--timeout", type=float, default=900.0, help="per end-to-end run, s")
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    chosen = [p for p in POLICIES if p.name in {n.strip() for n in args.policies.split(",")}]
    results: dict[str, list[dict[str, object]]] = {}
    rows = [offline(p, scenario()) for p in chosen]
    print(table("offline (control law x load model; calls = load readings only)", rows), flush=True)
    results["offline"] = [_as_dict(r) for r in rows]
    if not args.offline_only:
        fleet = scenario(args.time_scale)
        with work_dir(args.work_dir) as work:
            rows = [end_to_end(p, fleet, work, args.timeout) for p in chosen]
        print()
        print(table(f"end to end (K={args.time_scale:g})", rows))
        results["end_to_end"] = [_as_dict(r) for r in rows]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _as_dict(row: Row) -> dict[str, object]:
    return {
        "policy": row.policy, "wall_s": row.wall_s, "over_s": row.over_s,
        "over_share": row.over_share, "targets": row.targets, "calls": row.calls,
        "readings": row.readings, "note": row.note,
    }  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
