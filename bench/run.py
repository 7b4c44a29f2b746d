"""clamfleet benchmark: the simulator and the orchestrator in separate processes on loopback.

    .venv/bin/python bench/run.py --size quick|small|full [--repeat N] [--json FILE]

Each repeat:

1. starts `python -m orchestrator simulate ... --write-inventory F` (its own process), waits for
   it to announce its servers and the `export VAR=...` token lines;
2. rewrites the inventory's settings for the size and time scale (see below);
3. runs `python -m orchestrator run F --out D --no-progress --log-level warning` (its own
   process, tokens in its environment), timing its wall time and reading its CPU time
   (user+sys) and peak RSS from `os.wait4`'s rusage of that one child;
4. runs `bench/baseline.py` (a plain aiohttp client, its own process) with as many GET requests
   as the orchestrator made, against the same simulator, measured the same way, three times
   (the row keeps the run with the median CPU: it lasts seconds, one draw is noisy); with
   `--paced` once more, its requests spread over the orchestrator's wall time;
5. stops the simulator (always, in `finally`).

Time scale K: a scan of S simulated seconds takes S/K real seconds (`--scan-seconds S/K` to the
simulator), every time setting of the inventory is divided by K (poll interval, scan, stall and
disinfection timeouts) and every request rate multiplied by K, so the orchestrator makes exactly
the calls it would make at K=1. The request timeout is the exception: it bounds real network
latency, so it is divided by K but never below REQUEST_TIMEOUT_FLOOR seconds.

The printed table has one row per repeat and the median of each column. `bound.py` explains the
lower bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from bound import MIN_CALLS_PER_TARGET, Bound, Limits, fleet_bound  # noqa: E402

REQUEST_TIMEOUT_FLOOR = 5.0
BASELINE_RUNS = 3  # back-to-back baseline runs per repeat; the row takes their median
SIM_READY_TIMEOUT = 120.0
MIB = 1024.0


@dataclass(frozen=True, slots=True)
class Size:
    """One benchmark size. Times are *simulated* seconds, rates *simulated* requests/s."""

    name: str
    servers: int
    accounts: int
    scan_seconds: float  # the simulator's --scan-seconds at K=1
    time_scale: float  # K
    max_concurrent_scans: int  # per server
    repeat: int
    server_rps: float = 5.0  # the inventory default: a promise to each server's owner
    global_rps: float = 0.0  # 0: servers x server_rps (never tighter than the servers together)
    max_concurrent_servers: int = 0  # 0: every server at once
    poll_min: float = 2.0  # cPanel's own UI polls every 2 s
    poll_max: float = 30.0
    scan_timeout: float = 21600.0
    stall_timeout: float = 1800.0
    disinfection_timeout: float = 3600.0
    request_timeout: float = 30.0
    infected_ratio: float = 0.1
    seed: int = 1
    scan_types: tuple[str, ...] = ("home",)

    @property
    def targets(self) -> int:
        return self.servers * self.accounts * len(self.scan_types)

    @property
    def fleet_rps(self) -> float:
        return self.global_rps or self.servers * self.server_rps

    @property
    def server_slots(self) -> int:
        return self.max_concurrent_servers or self.servers


SIZES: dict[str, Size] = {
    # A smoke run: seconds. 60-s simulated scans at K=30 last 2 s.
    "quick": Size("quick", servers=3, accounts=4, scan_seconds=60, time_scale=30,
                  max_concurrent_scans=2, repeat=1),
    # 500 targets, 10-minute simulated scans (the mean; up to 2x) at K=10 (60 s real).
    "small": Size("small", servers=20, accounts=25, scan_seconds=600, time_scale=10,
                  max_concurrent_scans=25, repeat=3),
    # 10,000 targets over 200 servers, 10-minute simulated scans at K=10 (60 s real, mean).
    "full": Size("full", servers=200, accounts=50, scan_seconds=600, time_scale=10,
                 max_concurrent_scans=50, repeat=3),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Processes


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


_EXPORT = re.compile(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_VIOLATIONS = re.compile(r"^violations run=(\S+) rule=(\S+) count=(\d+)$")


class Simulator:
    """`python -m orchestrator simulate` as a child process; stopped on exit, always."""

    def __init__(self, size: Size, inventory: Path, log: Path) -> None:
        self.argv = [
            sys.executable, "-m", "orchestrator", "simulate",
            "--servers", str(size.servers), "--accounts", str(size.accounts),
            "--infected-ratio", str(size.infected_ratio), "--seed", str(size.seed),
            "--scan-seconds", repr(size.scan_seconds / size.time_scale),
            "--write-inventory", str(inventory),
            # the limits the scaled inventory promises: the simulator's referee enforces them
            "--requests-per-second", repr(size.server_rps * size.time_scale),
            "--fleet-requests-per-second", repr(size.fleet_rps * size.time_scale),
            "--max-concurrent-scans", str(size.max_concurrent_scans),
        ]  # fmt: skip
        self.inventory = inventory
        self.log = log
        self.env: dict[str, str] = {}
        self.urls: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False

    def __enter__(self) -> Simulator:
        self._proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT
        )
        threading.Thread(target=self._drain, daemon=True).start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _drain(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        with self.log.open("wb") as log:
            for raw in self._proc.stdout:
                log.write(raw)
                log.flush()
                with self._cond:
                    self._lines.append(raw.decode(errors="replace").rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _wait_ready(self) -> None:
        """Ready once the inventory is written and the token lines are out (and quiet 0.3 s)."""
        deadline = time.monotonic() + SIM_READY_TIMEOUT
        seen = 0
        last_line = time.monotonic()
        while True:
            with self._cond:
                self._cond.wait(timeout=0.1)
                fresh, seen = self._lines[seen:], len(self._lines)
                eof = self._eof
            for line in fresh:
                last_line = time.monotonic()
                if m := _EXPORT.match(line):
                    value = m.group(2).strip()
                    self.env[m.group(1)] = shlex.split(value)[0] if value else ""
                self.urls += re.findall(r"https?://127\.0\.0\.1:\d+", line)
            if eof:
                raise RuntimeError(f"simulator exited early; see {self.log}")
            quiet = time.monotonic() - last_line > 0.3
            if self.env and self.inventory.exists() and quiet:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"simulator not ready after {SIM_READY_TIMEOUT:g}s; {self.log}")

    def violations(self, run_id: str) -> dict[str, int]:
        """Protocol violations by rule that the simulator printed for one run, once stopped.

        Only the orchestrator's run counts: the baseline client is unpaced on purpose.
        """
        self.stop()
        with self._cond:
            self._cond.wait_for(lambda: self._eof, timeout=30)
            lines = list(self._lines)
        found: dict[str, int] = {}
        for line in lines:
            if (m := _VIOLATIONS.match(line)) and m.group(1) == run_id:
                found[m.group(2)] = found.get(m.group(2), 0) + int(m.group(3))
        return found

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
# Inventory, scan durations and the bound


def scaled_inventory(source: Path, dest: Path, size: Size) -> dict[str, Any]:
    """The simulator's inventory with the size's limits, every time /K and every rate *K."""
    k = size.time_scale
    data: dict[str, Any] = yaml.safe_load(source.read_text())
    limit_keys = ("max_concurrent_scans", "requests_per_second")
    defaults = data.setdefault("defaults", {})
    defaults["max_concurrent_scans"] = size.max_concurrent_scans
    defaults["scan_types"] = list(size.scan_types)
    defaults["requests_per_second"] = size.server_rps * k
    for group in (data.get("groups") or {}).values():
        for key in limit_keys:
            group.pop(key, None)
    for server in data.get("servers") or []:
        for key in limit_keys:
            server.pop(key, None)
    data["settings"] = {
        **(data.get("settings") or {}),
        "max_concurrent_servers": size.server_slots,
        "requests_per_second": size.fleet_rps * k,
        "poll_interval": {"min": size.poll_min / k, "max": size.poll_max / k},
        "timeouts": {
            "request": max(size.request_timeout / k, REQUEST_TIMEOUT_FLOOR),
            "scan": size.scan_timeout / k,
            "stall": size.stall_timeout / k,
            "disinfection": size.disinfection_timeout / k,
        },
    }
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return data


def fleet_spec(size: Size) -> Any:
    """The same fleet the simulator process generates (deterministic per seed)."""
    from orchestrator.simulator import generate_fleet

    return generate_fleet(
        servers=size.servers,
        accounts=size.accounts,
        infected_ratio=size.infected_ratio,
        seed=size.seed,
        scan_seconds=size.scan_seconds / size.time_scale,
    )


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


# ---------------------------------------------------------------------------------------------
# Table

COLUMNS: list[tuple[str, str, str]] = [
    # (header, Row attribute, format)
    ("targets", "targets", "{:.0f}"),
    ("servers", "servers", "{:.0f}"),
    ("wall s", "wall_s", "{:.2f}"),
    ("bound s", "bound_s", "{:.2f}"),
    ("wall/bound", "wall_over_bound", "{:.3f}"),
    ("CPU s/1k calls", "cpu_s_per_1k_calls", "{:.3f}"),
    ("calls/target", "calls_per_target", "{:.2f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.1f}"),
    ("base wall s", "base_wall_s", "{:.2f}"),
    ("base CPU s/1k", "base_cpu_s_per_1k_calls", "{:.3f}"),
    ("base RSS MiB", "base_peak_rss_mib", "{:.1f}"),
    ("CPU ratio", "cpu_ratio", "{:.2f}"),
    ("violations", "violations", "{:.0f}"),
]
PACED_COLUMNS: list[tuple[str, str, str]] = [
    ("paced CPU s/1k", "paced_cpu_s_per_1k_calls", "{:.3f}"),
    ("CPU ratio paced", "paced_cpu_ratio", "{:.2f}"),
]


def columns(rows: Sequence[Row]) -> list[tuple[str, str, str]]:
    """The table's columns; the paced baseline's only when it ran (--paced)."""
    paced = any(r.paced_cpu_s_per_1k_calls for r in rows)
    return COLUMNS + PACED_COLUMNS if paced else COLUMNS


def median_row(rows: Sequence[Row]) -> dict[str, float]:
    cols = columns(rows)
    return {attr: statistics.median(getattr(r, attr) for r in rows) for _, attr, _ in cols}


def render_table(rows: Sequence[Row]) -> str:
    cols = columns(rows)
    header = ["run", *(h for h, _, _ in cols)]
    body = [[str(r.run), *(f.format(getattr(r, a)) for _, a, f in cols)] for r in rows]
    med = median_row(rows)
    body.append(["median", *(f.format(med[a]) for _, a, f in cols)])
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
    lines = [" | ".join(x.rjust(w) for x, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(x.rjust(w) for x, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--size", choices=sorted(SIZES), default="quick")
    p.add_argument("--repeat", type=int, help="runs to take the median of (default per size)")
    p.add_argument("--time-scale", type=float, help="K: simulated seconds per real second")
    p.add_argument("--servers", type=int)
    p.add_argument("--accounts", type=int, help="accounts per server")
    p.add_argument("--scan-seconds", type=float, help="simulated scan seconds (at K=1)")
    p.add_argument("--max-concurrent-scans", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--scan-types",
        help="comma-separated scan types per account (default: home); an account's types run "
        "one after another (cPanel keeps one scan per account), and the bound says so",
    )
    p.add_argument("--json", type=Path, help="also write the rows and medians here")
    p.add_argument("--work-dir", type=Path, help="keep runs' files here (default: a temp dir)")
    p.add_argument("--timeout", type=float, default=3600.0, help="per-process limit, seconds")
    p.add_argument(
        "--paced",
        action="store_true",
        help="also run the baseline with its requests spread over the orchestrator's wall time",
    )
    return p


def _size_from(args: argparse.Namespace) -> Size:
    size = SIZES[args.size]
    overrides = {
        "repeat": args.repeat,
        "time_scale": args.time_scale,
        "servers": args.servers,
        "accounts": args.accounts,
        "scan_seconds": args.scan_seconds,
        "max_concurrent_scans": args.max_concurrent_scans,
        "seed": args.seed,
        "scan_types": tuple(args.scan_types.split(",")) if args.scan_types else None,
    }
    return replace(size, **{k: v for k, v in overrides.items() if v is not None})


@contextlib.contextmanager
def _work_dir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="clamfleet-bench-") as tmp:
        yield Path(tmp)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    size = _size_from(args)
    k = size.time_scale
    print(f"command: {' '.join(shlex.quote(a) for a in [sys.executable, *sys.argv])}")
    print(
        f"size {size.name}: {size.servers} servers x {size.accounts} accounts x "
        f"{','.join(size.scan_types)} = {size.targets} "
        f"targets; scans {size.scan_seconds:g} simulated s at K={k:g} "
        f"({size.scan_seconds / k:g} s real); max_concurrent_scans {size.max_concurrent_scans}; "
        f"{size.server_rps:g} req/s per server, {size.fleet_rps:g} global (simulated); "
        f"poll {size.poll_min:g}-{size.poll_max:g} s (simulated); {os.cpu_count()} CPUs",
        flush=True,
    )
    rows: list[Row] = []
    with _work_dir(args.work_dir) as work:
        for i in range(1, size.repeat + 1):
            row = run_once(size, i, work, args.timeout, args.paced)
            rows.append(row)
            print(
                f"run {i}: wall {row.wall_s:.2f}s bound {row.bound_s:.2f}s ({row.bound_term}) "
                f"calls {row.calls} exit {row.exit_code} {row.statuses} "
                f"protocol violations {row.violations} {row.violation_rules or ''}",
                flush=True,
            )
    print()
    print(render_table(rows))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"size": asdict(size), "rows": [asdict(r) for r in rows],
                 "median": median_row(rows), "command": sys.argv},
                indent=2,
            )
        )  # fmt: skip
    if broken := sum(r.violations for r in rows):
        print(f"FAIL: the orchestrator broke cPanel's rules {broken} times (simulator.log)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
