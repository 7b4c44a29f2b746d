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
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from fleet import SIZES, Size, work_dir  # noqa: E402
from measure import Row, run_once  # noqa: E402
from tables import median_row, render_table  # noqa: E402


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
    with work_dir(args.work_dir) as work:
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
