"""Offline poll-schedule experiment: how late does the workflow notice a scan has completed?

    .venv/bin/python bench/polls.py [--size full] [--long N] [--short N] [--seed N] [--cpu-ms MS]

No network and no sleeping: a fake clock, simulated seconds (K=1). Each target is the pure
workflow (`workflow.begin` / `workflow.step`) driven against one simulated account
(`AccountState`, the simulator's own server-side model: a counting pass, then the files scanned
one at a time in walk order, time proportional to bytes plus a per-file overhead). Every request
goes through the simulator's UAPI handler and the client's envelope parser (`parse.parse_uapi`,
`parse.parse_status`), so the workflow sees what it would see over HTTP. A `Wait(s)` moves the
target's clock on by s. Policy: report only (the benchmark's), so no disinfection.

Two ways to run the same targets:

* isolated: every request is answered the instant it is made. What the schedule itself does:
  the lateness rows below;
* fleet (`--cpu-ms`, 0 to skip): the benchmark's contention, as a discrete-event model. A
  request waits for its server's pacer (`requests_per_second` per server, FIFO), then for one
  CPU (`--cpu-ms` real milliseconds per call, FIFO, times K in simulated seconds), and is read
  and answered when it leaves it. The default, 1 ms, is calibrated: `run.py` measures 0.44 ms
  of orchestrator CPU per call, the simulator shares the 2 cores, and at 1 ms the previous
  schedule gave 8.20 calls per target and wall/bound 1.126 here against the 8.08 and 1.131
  `run.py` measured. On 2 cores the first minutes are CPU-bound (10,000 prechecks and starts,
  and the early polls of the counting pass), so early polls are pushed later and merge: calls
  per target here are comparable with `run.py`'s, the isolated ones are not. Its `wall/bound`
  is the last target's end over `bound.py`'s lower bound (no process start-up, no report
  writing); it hinges on a single scan, so read it as a rough guide.

Populations: the benchmark's fleet (`run.py --size`'s generator, seed and scan length: `full`
is 10,000 targets with simulated scans of 145..1439 s), each account at its own duration; and
(isolated only) `--long N` of its accounts rescaled to durations uniform in 1000..1440 s, their
own file mix: the scans that set the wall time; and `--short N` rescaled to 1..3 s (tiny
accounts, or `public_ftp` of most accounts), where the poll floor (`poll_min`, 2 s) dominates:
for those it also prints the durations a report would show (completion noticed minus
start_scan answered) as p10 / p50 / p90, the "clusters" a real run of such scans shows.

Printed per duration band: lateness (when the status poll that sees `scan_complete` is answered,
minus the scan's true end) as median / p90 / p99 / max in seconds and as a share of the scan's
duration, and the mean status polls (after start_scan) and total API calls per target (precheck,
start_scan, the polls and list_infected_files; `run.py` adds one `listaccts` per server, 0.02 per
target at full).
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from bound import Limits, fleet_bound  # noqa: E402
from fleet import SIZES, Size  # noqa: E402

from orchestrator import workflow  # noqa: E402
from orchestrator.client.parse import parse_infected, parse_status, parse_uapi  # noqa: E402
from orchestrator.model import Action, Outcome, ScanType, Target  # noqa: E402
from orchestrator.simulator import AccountSpec, Faults, generate_fleet  # noqa: E402
from orchestrator.simulator.account import AccountState  # noqa: E402
from orchestrator.simulator.uapi import call  # noqa: E402
from orchestrator.workflow.events import (  # noqa: E402
    ActionsPlanned,
    Command,
    Finish,
    GetScanStatus,
    InfectedListReply,
    ListInfected,
    PlanActions,
    PlannedFile,
    Reply,
    ScanStarted,
    ScanStatusReply,
    StartScan,
    Tick,
    Wait,
)

LONG_RANGE = (1000.0, 1440.0)
SHORT_RANGE = (1.0, 3.0)
BANDS = ((0.0, 300.0), (300.0, 600.0), (600.0, 1000.0), (1000.0, math.inf))
NO_FAULTS = Faults()
#: CPU per API call (real ms) in the fleet model, calibrated against `run.py --size full`.
CPU_MS = 1.0


@dataclass(frozen=True, slots=True)
class Sample:
    duration: float  # the scan's true length (simulated seconds)
    late: float  # when completion was noticed, minus the true end
    polls: int  # get_scan_status calls after start_scan
    calls: int  # every API call of the target
    finished: float  # when the target's last request was answered
    started: float  # when its start_scan was answered (the scan's start)

    @property
    def ratio(self) -> float:
        return self.late / self.duration


def config(size: Size) -> workflow.WorkflowConfig:
    """The inventory settings the benchmark gives the orchestrator, at K=1."""
    return workflow.WorkflowConfig(
        poll_min=size.poll_min,
        poll_max=size.poll_max,
        scan_timeout=size.scan_timeout,
        stall_timeout=size.stall_timeout,
        disinfection_timeout=size.disinfection_timeout,
    )


def _uapi(account: AccountState, function: str, now: float, **args: Any) -> Any:
    return parse_uapi(call(account, function, args, now, NO_FAULTS), "sim", function)


def _answer(account: AccountState, command: Command, now: float) -> Reply:
    match command:
        case GetScanStatus():
            return ScanStatusReply(parse_status(_uapi(account, "get_scan_status", now)))
        case StartScan(scan_type=scan_type):
            _uapi(account, "start_scan", now, scan_type=scan_type.value)
            return ScanStarted()
        case ListInfected():
            return InfectedListReply(parse_infected(_uapi(account, "list_infected_files", now)))
    raise AssertionError(f"not expected with a report-only policy: {command!r}")


def _report_only(files: tuple[tuple[str, str], ...]) -> ActionsPlanned:
    return ActionsPlanned(
        tuple(PlannedFile(p, v, Action.REPORT, False, Outcome.NOT_REQUESTED) for p, v in files)
    )


class Driven:
    """One target: the workflow and the simulated account it talks to."""

    __slots__ = ("account", "command", "noticed", "polls", "server", "state")

    def __init__(
        self, spec: AccountSpec, duration: float, server: int, cfg: workflow.WorkflowConfig
    ) -> None:
        self.account = AccountState(spec, duration)
        self.server = server
        self.state, self.command = workflow.begin(Target("sim", spec.user, ScanType.HOME), cfg, 0)
        self.polls = 0
        self.noticed = math.nan

    def answer(self, now: float) -> Command:
        """The current request, answered at `now`; then any local steps: the next Wait,
        request or Finish."""
        command = self.command
        if isinstance(command, GetScanStatus) and self.account.run is not None:
            self.polls += 1
        if isinstance(command, ListInfected):
            self.noticed = now
        self.state, command = workflow.step(self.state, _answer(self.account, command, now), now)
        while isinstance(command, PlanActions):
            self.state, command = workflow.step(self.state, _report_only(command.files), now)
        self.command = command
        return command

    def wake(self, now: float) -> Command:
        self.state, self.command = workflow.step(self.state, Tick(), now)
        return self.command

    def sample(self, finished: float) -> Sample:
        assert isinstance(self.command, Finish)
        assert self.command.verdict.error is None, self.command.verdict.error
        run = self.account.run
        assert run is not None
        end = run.started_at + run.duration
        late = self.noticed - end
        return Sample(
            run.duration, late, self.polls, self.state.api_calls, finished, run.started_at
        )


def isolated(target: Driven) -> Sample:
    """Every request answered at once: the schedule alone."""
    now = 0.0
    command = target.command
    while not isinstance(command, Finish):
        if isinstance(command, Wait):
            now += command.seconds
            command = target.wake(now)
        else:
            command = target.answer(now)
    return target.sample(now)


ARRIVE, SEND, WAKE = 0, 1, 2


def fleet(targets: Sequence[Driven], server_interval: float, cpu_seconds: float) -> list[Sample]:
    """All targets at once through per-server FIFO pacers and one FIFO CPU (event-driven)."""
    heap: list[tuple[float, int, int, int]] = []  # (time, seq, kind, target index)
    seq = 0
    servers = {t.server for t in targets}
    # one listaccts per server goes first
    server_next = dict.fromkeys(servers, server_interval)
    cpu_free = len(servers) * cpu_seconds
    for i in range(len(targets)):
        heap.append((0.0, i, ARRIVE, i))
    seq = len(targets)
    heapq.heapify(heap)
    samples: list[Sample | None] = [None] * len(targets)
    while heap:
        now, _, kind, i = heapq.heappop(heap)
        target = targets[i]
        if kind == WAKE:
            target.wake(now)
            kind = ARRIVE
        if kind == ARRIVE:  # behind its server's pacer
            send = max(now, server_next[target.server])
            server_next[target.server] = send + server_interval
            heapq.heappush(heap, (send, seq, SEND, i))
            seq += 1
            continue
        cpu_free = max(now, cpu_free) + cpu_seconds  # behind the CPU, then answered
        command = target.answer(cpu_free)
        if isinstance(command, Finish):
            samples[i] = target.sample(cpu_free)
        else:
            wake = cpu_free + command.seconds if isinstance(command, Wait) else cpu_free
            heapq.heappush(heap, (wake, seq, WAKE if isinstance(command, Wait) else ARRIVE, i))
            seq += 1
    assert all(s is not None for s in samples)
    return [s for s in samples if s is not None]


def fleet_accounts(size: Size) -> list[tuple[int, AccountSpec]]:
    """The benchmark's fleet at K=1 (scan_seconds: each account's simulated duration)."""
    spec = generate_fleet(
        servers=size.servers,
        accounts=size.accounts,
        infected_ratio=size.infected_ratio,
        seed=size.seed,
        scan_seconds=size.scan_seconds,
    )
    return [(s, a) for s, server in enumerate(spec.servers) for a in server.accounts]


def _duration(spec: AccountSpec, size: Size) -> float:
    return float(spec.scan_seconds if spec.scan_seconds is not None else size.scan_seconds)


def _rank(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile of sorted `values`."""
    return values[max(0, math.ceil(q * len(values)) - 1)]


HEADER = [
    "scans (s)", "n", "late p50 s", "p90", "p99", "max",
    "late p50 %", "p90", "p99", "max", "polls", "calls",
]  # fmt: skip


def row(label: str, samples: Sequence[Sample]) -> list[str]:
    if not samples:
        return [label, "0", *[""] * (len(HEADER) - 2)]
    late = sorted(s.late for s in samples)
    ratio = sorted(s.ratio for s in samples)
    n = len(samples)
    return [
        label,
        str(n),
        *(f"{_rank(late, q):.1f}" for q in (0.5, 0.9, 0.99, 1.0)),
        *(f"{100 * _rank(ratio, q):.1f}" for q in (0.5, 0.9, 0.99, 1.0)),
        f"{sum(s.polls for s in samples) / n:.2f}",
        f"{sum(s.calls for s in samples) / n:.2f}",
    ]


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in (HEADER, *rows)) for i in range(len(HEADER))]
    lines = [" | ".join(x.rjust(w) for x, w in zip(HEADER, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(x.rjust(w) for x, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def banded(label: str, samples: Sequence[Sample]) -> list[list[str]]:
    rows = []
    for lo, hi in BANDS:
        name = f">= {lo:g}" if math.isinf(hi) else f"{lo:g}-{hi:g}"
        rows.append(row(f"{label} {name}", [s for s in samples if lo <= s.duration < hi]))
    rows.append(row(f"{label} all", samples))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--size", choices=sorted(SIZES), default="full")
    p.add_argument("--long", type=int, default=2000, help="rescaled long scans (1000-1440 s)")
    p.add_argument("--short", type=int, default=2000, help="rescaled short scans (1-3 s)")
    p.add_argument("--seed", type=int, default=1, help="seed of the long/short scans' durations")
    p.add_argument(
        "--cpu-ms", type=float, default=CPU_MS, help="fleet model: real CPU ms per call (0: skip)"
    )
    args = p.parse_args(argv)
    size = SIZES[args.size]
    cfg = config(size)
    t0 = time.perf_counter()
    accounts = [(s, a) for s, a in fleet_accounts(size) if not a.suspended]
    alone = [isolated(Driven(a, _duration(a, size), s, cfg)) for s, a in accounts]
    rng = random.Random(f"bench-polls/{args.seed}")  # an experiment, not crypto
    picks = rng.sample(accounts, min(args.long, len(accounts)))
    longs = [isolated(Driven(a, rng.uniform(*LONG_RANGE), s, cfg)) for s, a in picks]
    picks = rng.sample(accounts, min(args.short, len(accounts)))
    shorts = [isolated(Driven(a, rng.uniform(*SHORT_RANGE), s, cfg)) for s, a in picks]

    durations = [s.duration for s in alone]
    print(
        f"size {size.name}: {len(alone)} targets, simulated scans {min(durations):.0f}.."
        f"{max(durations):.0f} s (mean {sum(durations) / len(durations):.0f}); "
        f"poll {cfg.poll_min:g}-{cfg.poll_max:g} s; plus {len(longs)} of them rescaled to "
        f"{LONG_RANGE[0]:g}..{LONG_RANGE[1]:g} s"
    )
    rows = [*banded("isolated", alone), row("isolated long 1000-1440", longs)]
    rows += [row(f"isolated short {lo:g}-{hi:g}", [s for s in shorts if lo <= s.duration < hi])
             for lo, hi in ((1.0, 2.0), (2.0, 3.0))]  # fmt: skip
    rows.append(row("isolated short 1-3", shorts))
    contended: list[Sample] = []
    if args.cpu_ms > 0:
        cpu = args.cpu_ms / 1000 * size.time_scale  # simulated seconds per call
        targets = [Driven(a, _duration(a, size), s, cfg) for s, a in accounts]
        contended = fleet(targets, 1 / size.server_rps, max(cpu, 1 / size.fleet_rps))
        rows += banded("fleet", contended)
    print(table(rows))
    if shorts:
        shown = sorted(s.duration + s.late for s in shorts)  # noticed - started: duration_s
        print(
            "short 1-3 s: durations a report shows (noticed - started) p10/p50/p90 "
            + " / ".join(f"{_rank(shown, q):.1f}" for q in (0.1, 0.5, 0.9))
            + f" s; notice delay p50 {_rank(sorted(s.late for s in shorts), 0.5):.2f} s;"
            f" calls/target {sum(s.calls for s in shorts) / len(shorts):.2f}"
        )
    if contended:
        by_server: dict[str, list[float]] = {}
        for s, a in accounts:
            by_server.setdefault(str(s), []).append(_duration(a, size))
        limits = Limits(size.max_concurrent_scans, size.server_rps, size.fleet_rps, size.servers)
        bound = fleet_bound(by_server, limits).seconds
        wall = max(s.finished for s in contended)
        print(
            "fleet: the last targets (scan s, started at s, noticed late s, ended at s): "
            + "; ".join(
                f"{s.duration:.0f}, {s.started:.0f}, {s.late:.0f}, {s.finished:.0f}"
                for s in sorted(contended, key=lambda s: -s.finished)[:4]
            )
        )
        print(
            f"fleet: CPU {args.cpu_ms:g} ms per call; wall {wall:.0f} s, bound {bound:.0f} s, "
            f"wall/bound {wall / bound:.3f}; calls/target incl. listaccts "
            f"{(sum(s.calls for s in contended) + size.servers) / len(contended):.2f}"
        )
    print(
        f"({time.perf_counter() - t0:.1f} s; lateness from the true end, % of the scan's "
        "duration; polls: status calls after start_scan)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
