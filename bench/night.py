"""The night benchmark: a fleet where a fifth of the servers go through an upcp-like restart.

    .venv/bin/python bench/night.py [--servers 10] [--accounts 8] [--scan-seconds 60]
                                    [--upcp-seconds 240] [--upcp-at 20] [--json FILE]

Two runs of the same fleet, back to back, each made as bench/run.py makes one (the simulator and
the orchestrator in their own processes, on loopback): a quiet night, then the same night where
every fifth server (sim01, sim06, ...) goes through `upcp` (`simulate --fault
NAME:upcp_seconds=S`: 2-4 cpsrvd restarts of 5-40 s spread over S seconds, simulator/outage.py)
from `--upcp-at` seconds after the simulator started; the first of them refuse connections while
down (cpsrvd stopped), the next answer 503 (a proxy in front), in turn. At K=1 (no time scale):
the breaker's cool-downs are real seconds, and a scaled clock would shrink the restarts but not
the lag it adds to notice the end of each.

Printed: both runs' rows (wall time, calls per target, statuses, protocol violations), the night's
outage time (the simulator's planned restarts, `upcp_profile`: their sum over the upcp servers,
and the longest server's), the time the orchestrator saw those servers down (report
`run.outages`), the failed targets (the issue's target: 0) and the extra wall time of the upcp
night over the quiet one. The machine may be shared: the quiet run is the reference, made the
same way a minute earlier.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from fleet import Size, work_dir  # noqa: E402
from measure import Row, run_once  # noqa: E402

from orchestrator.simulator.outage import upcp_profile  # noqa: E402

NIGHT = Size(
    "night", servers=10, accounts=8, scan_seconds=60, time_scale=1, max_concurrent_scans=4,
    repeat=1, server_rps=5.0,
)  # fmt: skip


def upcp_servers(size: Size) -> list[str]:
    """A fifth of the servers: sim01, sim06, sim11, ..."""
    return [f"sim{i:02d}" for i in range(1, size.servers + 1) if (i - 1) % 5 == 0]


def upcp_faults(size: Size, span: float, at: float) -> tuple[str, ...]:
    out: list[str] = []
    for n, name in enumerate(upcp_servers(size)):
        mode = "refused" if n % 2 == 0 else "503"
        out += [f"{name}:upcp_seconds={span:g}", f"{name}:outage_at={at:g}",
                f"{name}:outage_mode={mode}"]  # fmt: skip
    return tuple(out)


def planned_outages(size: Size, span: float) -> dict[str, float]:
    """Seconds each upcp server is down, as the simulator plans it (same seed, same draws)."""
    return {
        name: sum(seconds for _, seconds in upcp_profile(size.seed, name, span, 1.0))
        for name in upcp_servers(size)
    }


def observed(run_dir: Path) -> tuple[dict[str, float], int]:
    """(seconds down per server as the report says, failed targets)."""
    report: dict[str, Any] = json.loads((run_dir / "report" / "report.json").read_text())
    outages = {
        name: sum(float(d["down_s"]) for d in stretches)
        for name, stretches in (report["run"].get("outages") or {}).items()
    }
    failed = sum(1 for t in report["targets"] if t["status"] == "failed")
    return outages, failed


def describe(label: str, row: Row) -> str:
    return (
        f"{label}: wall {row.wall_s:.1f}s, {row.calls_per_target:.2f} calls/target, "
        f"exit {row.exit_code} {row.statuses}, violations {row.violations} "
        f"{row.violation_rules or ''}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--servers", type=int, default=NIGHT.servers)
    p.add_argument("--accounts", type=int, default=NIGHT.accounts)
    p.add_argument("--scan-seconds", type=float, default=NIGHT.scan_seconds)
    p.add_argument("--max-concurrent-scans", type=int, default=NIGHT.max_concurrent_scans)
    p.add_argument("--upcp-seconds", type=float, default=240.0, help="each upcp run's span")
    p.add_argument("--upcp-at", type=float, default=20.0, help="seconds after the sim starts")
    p.add_argument("--seed", type=int, default=NIGHT.seed)
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--work-dir", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    quiet = replace(
        NIGHT, servers=args.servers, accounts=args.accounts, scan_seconds=args.scan_seconds,
        max_concurrent_scans=args.max_concurrent_scans, seed=args.seed,
    )  # fmt: skip
    night = replace(quiet, faults=upcp_faults(quiet, args.upcp_seconds, args.upcp_at))
    planned = planned_outages(quiet, args.upcp_seconds)
    print(
        f"night: {quiet.servers} servers x {quiet.accounts} accounts, scans {quiet.scan_seconds:g}"
        f" s (mean), max_concurrent_scans {quiet.max_concurrent_scans}; upcp on "
        f"{', '.join(planned)} over {args.upcp_seconds:g} s from {args.upcp_at:g} s",
        flush=True,
    )
    with work_dir(args.work_dir) as work:
        rows = {}
        for label, size in (("quiet", quiet), ("upcp", night)):
            rows[label] = run_once(size, 1, work / label, args.timeout)
            print(describe(label, rows[label]), flush=True)
        seen, failed = observed(work / "upcp" / "run-1")
    extra = rows["upcp"].wall_s - rows["quiet"].wall_s
    total, longest = sum(planned.values()), max(planned.values(), default=0.0)
    print(
        f"outage time planned: {total:.1f} s in all, {longest:.1f} s on the longest server "
        f"({', '.join(f'{k} {v:.1f}' for k, v in planned.items())})\n"
        f"outage time seen by clamfleet (run.outages): {sum(seen.values()):.1f} s "
        f"({', '.join(f'{k} {v:.1f}' for k, v in seen.items())})\n"
        f"failed targets: {failed}\n"
        f"extra wall time: {extra:.1f} s ({extra / total:.2f} of the total outage time, "
        f"{extra / longest if longest else 0:.2f} of the longest server's)"
    )
    if args.json:
        summary = {"planned": planned, "seen": seen, "failed": failed, "extra_wall_s": extra}
        doc = {"rows": {k: asdict(v) for k, v in rows.items()}, **summary}
        args.json.write_text(json.dumps(doc, indent=2))
    return 1 if failed or any(r.violations for r in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
