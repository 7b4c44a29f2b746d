"""One benchmark run measured: the orchestrator and the baseline as their own processes (wall
time, CPU and peak RSS from their rusage), the scan durations, and the lower bound."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from bound import MIN_CALLS_PER_TARGET, Bound, Limits, fleet_bound  # noqa: E402
from fleet import (  # noqa: E402
    MIB,
    Simulator,
    Size,
    fleet_spec,
    scaled_inventory,
)

BASELINE_RUNS = 3  # back-to-back baseline runs per repeat; the row takes their median


@dataclass(slots=True)
class Measured:
    wall_s: float
    cpu_s: float
    maxrss_kib: int
    returncode: int


def run_measured(
    argv: Sequence[str], env: Mapping[str, str], stdout: Path, stderr: Path, timeout: float
) -> Measured:
    """Run one child; its wall time, CPU (user+sys) and peak RSS from its own rusage."""
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=dict(env), stdout=out, stderr=err, cwd=ROOT)
        try:
            deadline = started + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{argv[2:4]} still running after {timeout:g}s")
                time.sleep(0.02)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(ChildProcessError):
                os.wait4(proc.pid, 0)
            raise
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, proc.returncode)


def scan_durations(
    spec: Any, scan_types: Sequence[str] = ("home",)
) -> dict[str, list[list[float]]]:
    """Real seconds each scan of each scanned account takes, per server and account (from the
    spec: the simulator's own duration model)."""
    from orchestrator.simulator.account import AccountState

    return {
        server.name: [
            [AccountState(a, spec.scan_seconds_of(a)).scan_duration(t) for t in scan_types]
            for a in server.accounts
            if not a.suspended
        ]
        for server in spec.servers
    }


def lower_bound(size: Size, durations: Mapping[str, Sequence[Sequence[float]]]) -> Bound:
    k = size.time_scale
    limits = Limits(
        max_concurrent_scans=size.max_concurrent_scans,
        server_rps=size.server_rps * k,
        global_rps=size.fleet_rps * k,
        max_concurrent_servers=size.server_slots,
        min_calls=MIN_CALLS_PER_TARGET,
    )
    flat = {
        name: [d for account in accounts for d in account] for name, accounts in durations.items()
    }
    chains = {name: [sum(account) for account in accounts] for name, accounts in durations.items()}
    return fleet_bound(flat, limits, chains)


# ---------------------------------------------------------------------------------------------
# One run


@dataclass(slots=True)
class Row:
    run: int
    targets: int
    servers: int
    wall_s: float
    bound_s: float
    wall_over_bound: float
    cpu_s_per_1k_calls: float
    calls_per_target: float
    peak_rss_mib: float
    base_wall_s: float
    base_cpu_s_per_1k_calls: float
    base_peak_rss_mib: float
    cpu_ratio: float
    # not in the table's main columns
    calls: int = 0
    orch_cpu_s: float = 0.0
    base_cpu_s: float = 0.0
    exit_code: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    bound_term: str = ""
    bound_terms: dict[str, float] = field(default_factory=dict)
    sim_calls: int | None = None
    # --paced: the baseline again, its requests spread over the orchestrator's wall time
    paced_cpu_s_per_1k_calls: float = 0.0
    paced_cpu_ratio: float = 0.0
    # protocol violations the simulator's referee recorded for the orchestrator's run
    violations: int = 0
    violation_rules: dict[str, int] = field(default_factory=dict)


def run_once(
    size: Size,
    index: int,
    work: Path,
    timeout: float,
    paced: bool = False,
) -> Row:
    run_dir = work / f"run-{index}"
    run_dir.mkdir(parents=True, exist_ok=True)
    sim_inventory = run_dir / "inventory.sim.yaml"
    inventory = run_dir / "inventory.yaml"
    out = run_dir / "report"
    spec = fleet_spec(size)
    durations = scan_durations(spec, size.scan_types)
    bound = lower_bound(size, durations)
    with Simulator(size, sim_inventory, run_dir / "simulator.log") as sim:
        data = scaled_inventory(sim_inventory, inventory, size)
        env = {**os.environ, **sim.env, "PYTHONUNBUFFERED": "1"}
        orch = run_measured(
            [sys.executable, "-m", "orchestrator", "run", str(inventory), "--out", str(out),
             "--no-progress", "--log-level", "warning"],
            env, run_dir / "orchestrator.out", run_dir / "orchestrator.err", timeout,
        )  # fmt: skip
        if orch.returncode not in (0, 1):
            raise RuntimeError(
                f"orchestrator exited {orch.returncode}; see {run_dir}/orchestrator.err"
            )
        report = json.loads((out / "report.json").read_text())
        targets = report["targets"]
        statuses: dict[str, int] = {}
        for t in targets:
            statuses[t["status"]] = statuses.get(t["status"], 0) + 1
        servers = len({t["server"] for t in targets})
        # The workflow's calls per target, plus one `listaccts` per server.
        calls = sum(int(t.get("api_calls") or 0) for t in targets) + servers
        job = _baseline_job(data, spec, calls)
        # The back-to-back baseline lasts seconds, so one draw is at the mercy of a noisy
        # moment on a shared machine: take the median (by CPU) of a few.
        bases = [
            run_baseline(job, run_dir, f"baseline-{i}", env, timeout)
            for i in range(1, BASELINE_RUNS + 1)
        ]
        base = sorted(bases, key=lambda m: m.cpu_s)[len(bases) // 2]
        paced_per_1k = 0.0
        if paced:
            slow = run_baseline({**job, "pace_s": orch.wall_s}, run_dir, "paced", env, timeout)
            paced_per_1k = slow.cpu_s / calls * 1000
        violations = sim.violations(report["run"]["id"])
    orch_per_1k = orch.cpu_s / calls * 1000
    base_per_1k = base.cpu_s / calls * 1000
    return Row(
        run=index,
        targets=len(targets),
        servers=servers,
        wall_s=orch.wall_s,
        bound_s=bound.seconds,
        wall_over_bound=orch.wall_s / bound.seconds,
        cpu_s_per_1k_calls=orch_per_1k,
        calls_per_target=calls / max(len(targets), 1),
        peak_rss_mib=orch.maxrss_kib / MIB,
        base_wall_s=base.wall_s,
        base_cpu_s_per_1k_calls=base_per_1k,
        base_peak_rss_mib=base.maxrss_kib / MIB,
        cpu_ratio=orch_per_1k / base_per_1k,
        calls=calls,
        orch_cpu_s=orch.cpu_s,
        base_cpu_s=base.cpu_s,
        exit_code=orch.returncode,
        statuses=statuses,
        bound_term=bound.term,
        bound_terms=bound.terms,
        paced_cpu_s_per_1k_calls=paced_per_1k,
        paced_cpu_ratio=orch_per_1k / paced_per_1k if paced_per_1k else 0.0,
        violations=sum(violations.values()),
        violation_rules=violations,
    )


def run_baseline(
    job: Mapping[str, Any], run_dir: Path, name: str, env: Mapping[str, str], timeout: float
) -> Measured:
    """bench/baseline.py on `job` (written to NAME.json), measured like the orchestrator."""
    path = run_dir / f"{name}.json"
    path.write_text(json.dumps(job))
    measured = run_measured(
        [sys.executable, str(BENCH / "baseline.py"), str(path)],
        env, run_dir / f"{name}.out", run_dir / f"{name}.err", timeout,
    )  # fmt: skip
    if measured.returncode != 0:
        raise RuntimeError(f"{name} exited {measured.returncode}; see {run_dir}/{name}.err")
    return measured


def _baseline_job(inventory: Mapping[str, Any], spec: Any, calls: int) -> dict[str, Any]:
    defaults = inventory.get("defaults") or {}
    servers = []
    for server in inventory.get("servers") or []:
        auth = {**(defaults.get("auth") or {}), **(server.get("auth") or {})}
        url = server.get("url") or f"http://{server['host']}:{server.get('port', 2087)}"
        accounts = [a.user for a in spec.server(server["name"]).accounts if not a.suspended]
        servers.append(
            {"url": url, "user": auth.get("user", "root"), "token_env": auth["token_env"],
             "accounts": accounts}
        )  # fmt: skip
    try:
        import uvloop  # noqa: F401
    except ImportError:
        loop = "asyncio"
    else:
        loop = "uvloop"  # the orchestrator runs on uvloop when it is installed: same loop
    return {"requests": calls, "per_host": 4, "loop": loop, "servers": servers}
