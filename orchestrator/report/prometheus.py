"""clamfleet.prom: a Prometheus textfile for node_exporter's textfile collector.

What it holds grows with the number of servers, not of targets: fleet totals (targets by
status, deferred apart from skipped; infected files, and files by outcome so that `unknown` and
`error` can alert) and the same per server, with each server's last successful scan time and,
for load-paced servers, the peak load and the time spent over `load.max`. Per-target series
(server/account/scan_type labels, six per target: 60,000 series for a 10,000-target fleet)
only with `per_target=True` (`--prometheus-per-target`). Fleet-level gauges carry the shard, so
the files of several shards in one collector directory never define the same series twice (a
server is in one shard only). No sample timestamps: the textfile collector refuses them.

Infected-file series count findings: accepted files (`clamfleet_accepted_files`) and the canary
are apart. `clamfleet_unverified_targets` counts clean targets whose canary was not detected,
and `clamfleet_server_canary_detected` (servers with a canary) is 0 when its clean verdicts are
unproven: alert on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from orchestrator.model import Outcome, Status, TargetResult
from orchestrator.report.attention import deferred
from orchestrator.report.model import Report, account_files, incomplete
from orchestrator.report.verification import checks_by_server


@dataclass(frozen=True, slots=True)
class Gauge:
    name: str
    help: str
    value: Callable[[TargetResult], float | None]


def _scanned_files(t: TargetResult) -> float | None:
    return None if t.scan is None else t.scan.scanned_file_count


def _scanned_bytes(t: TargetResult) -> float | None:
    return None if t.scan is None else t.scan.scanned_file_size


def _last_success(t: TargetResult) -> float | None:
    if t.status is Status.FAILED or t.finished_at is None:
        return None
    return t.finished_at.timestamp()


#: Per-target gauges (only with per_target=True), named `clamfleet_target_*` so that none shares
#: a name, and so a `sum()`, with the fleet and per-server totals.
TARGET_GAUGES = (
    Gauge(
        "clamfleet_target_infected_files",
        "Infected files found in the target (accepted ones and the canary aside).",
        lambda t: len(t.findings),
    ),
    Gauge("clamfleet_target_scanned_files", "Files the target's scan examined.", _scanned_files),
    Gauge("clamfleet_target_scanned_bytes", "Bytes the target's scan examined.", _scanned_bytes),
    Gauge(
        "clamfleet_target_scan_duration_seconds",
        "Wall time spent on the target.",
        lambda t: t.duration_s,
    ),
    Gauge(
        "clamfleet_target_failed",
        "1 if the target could not be fully scanned (failed or deferred), else 0.",
        lambda t: 1 if incomplete(t) else 0,
    ),
    Gauge(
        "clamfleet_target_last_success_timestamp_seconds",
        "Unix time the target last finished without failing.",
        _last_success,
    ),
)
#: Every status, always written (0 included): an alert on `> 0` needs the series to exist.
#: `deferred` (skipped because the window closed first: never scanned, exit code 2) apart from
#: `skipped` (suspended or excluded: by design).
DEFERRED = "deferred"
STATUSES = (*(str(s) for s in Status), DEFERRED)
#: Every outcome, likewise: `clamfleet_files{outcome="unknown"} > 0` is an alert.
OUTCOMES = tuple(str(o) for o in Outcome)
#: Statuses of a target that was scanned to the end.
SCANNED = frozenset({Status.CLEAN, Status.INFECTED})


def status_label(t: TargetResult) -> str:
    return DEFERRED if deferred(t) else str(t.status)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _header(name: str, text: str) -> Iterator[str]:
    yield f"# HELP {name} {escape_help(text)}"
    yield f"# TYPE {name} gauge"


def _target_lines(report: Report, gauge: Gauge) -> Iterator[str]:
    yield from _header(gauge.name, gauge.help)
    for t in report.targets:
        value = gauge.value(t)
        if value is not None:
            labels = _labels(server=t.server, account=t.account, scan_type=str(t.scan_type))
            yield f"{gauge.name}{labels} {format_value(value)}"


def _fleet_lines(report: Report) -> Iterator[str]:
    summary = report.summary
    shard = report.run.shard
    counts = Counter(status_label(t) for t in report.targets)
    yield from _header("clamfleet_targets", "Targets of the run by status.")
    for status in STATUSES:
        yield f"clamfleet_targets{_labels(shard=shard, status=status)} {counts[status]}"
    yield from _header("clamfleet_infected_files", "Infected files found in the run.")
    yield f"clamfleet_infected_files{_labels(shard=shard)} {summary.infected_files}"
    yield from _header(
        "clamfleet_files",
        "Infected files by outcome (unknown and error need a person).",
    )
    for outcome in OUTCOMES:  # once per account, as summary.outcomes
        count = summary.outcomes.get(outcome, 0)
        yield f"clamfleet_files{_labels(shard=shard, outcome=outcome)} {count}"
    yield from _header(
        "clamfleet_accepted_files", "Infected files an accepted-findings entry in force matched."
    )
    yield f"clamfleet_accepted_files{_labels(shard=shard)} {summary.accepted}"
    yield from _header(
        "clamfleet_unverified_targets",
        "Clean targets whose server's canary was not detected: their verdicts are unproven.",
    )
    yield f"clamfleet_unverified_targets{_labels(shard=shard)} {summary.unverified}"


def _server_lines(report: Report) -> Iterator[str]:
    by_status: dict[str, Counter[str]] = {}
    for t in report.targets:  # servers in report order (inventory order)
        by_status.setdefault(t.server, Counter())[status_label(t)] += 1
    # once per account, as summary.infected_files: the per-server series add up to the total
    files = Counter(server for server, _, _, _ in account_files(report.targets))
    yield from _header("clamfleet_server_targets", "Targets of the server by status.")
    for server, counts in by_status.items():
        for status in STATUSES:
            labels = _labels(server=server, status=status)
            yield f"clamfleet_server_targets{labels} {counts[status]}"
    yield from _header("clamfleet_server_infected_files", "Infected files found on the server.")
    for server in by_status:
        yield f"clamfleet_server_infected_files{_labels(server=server)} {files[server]}"
    checks = checks_by_server(report.run.canaries, report.targets)
    if checks:
        yield from _header(
            "clamfleet_server_canary_detected",
            "1 if the server's canary was detected this run, 0 if not (clean verdicts unproven).",
        )
    for server, check in checks.items():
        yield f"clamfleet_server_canary_detected{_labels(server=server)} {int(check.detected)}"
    yield from _last_success_lines(report)
    yield from _pacing_lines(report)


def _last_success_lines(report: Report) -> Iterator[str]:
    """Per server with something to scan: when its last scan of this run finished, 0 when none
    did (so `time() - x > 2*86400` fires for a server that failed all night, and no `absent()`
    is needed). A server whose targets were all skipped by design (suspended, excluded) has no
    sample."""
    last: dict[str, float] = {}
    for t in report.targets:
        if t.status is Status.SKIPPED and not deferred(t):
            continue
        seen = last.setdefault(t.server, 0.0)
        if t.status in SCANNED and t.finished_at is not None:
            last[t.server] = max(seen, t.finished_at.timestamp())
    name = "clamfleet_server_last_success_timestamp_seconds"
    yield from _header(name, "Unix time the server's last scan of the run finished (0: none).")
    for server, moment in last.items():
        yield f"{name}{_labels(server=server)} {format_value(moment)}"


def _pacing_lines(report: Report) -> Iterator[str]:
    """Load-aware pacing (run.pacing): per paced server, `load.max`, the peak 1-minute load
    and the seconds spent over max. Servers without load.max have none."""
    pacing = report.run.pacing
    if not pacing:
        return
    gauges = (
        ("clamfleet_server_load_max", "The server's load.max (1-minute load).", "max_load"),
        ("clamfleet_server_load_peak", "Peak 1-minute load read during the run.", "peak_load"),
        (
            "clamfleet_server_load_over_max_seconds",
            "Seconds the 1-minute load spent above load.max during the run.",
            "seconds_over",
        ),
    )
    for name, text, attr in gauges:
        yield from _header(name, text)
        for server, p in pacing.items():
            value = getattr(p, attr)
            if value is not None:
                yield f"{name}{_labels(server=server)} {format_value(value)}"


def _run_lines(report: Report) -> Iterator[str]:
    shard = _labels(shard=report.run.shard)
    yield from _header(
        "clamfleet_run_exit_code", "Exit code of the run (0 clean, 1 infected, 2 incomplete)."
    )
    yield f"clamfleet_run_exit_code{shard} {report.summary.exit_code}"
    yield from _header("clamfleet_run_finished_timestamp_seconds", "Unix time the run finished.")
    finished = report.run.finished_at or report.run.started_at
    yield f"clamfleet_run_finished_timestamp_seconds{shard} {format_value(finished.timestamp())}"


def prometheus_text(report: Report, *, per_target: bool = False) -> str:
    lines = [*_fleet_lines(report), *_server_lines(report)]
    if per_target:
        lines += [line for gauge in TARGET_GAUGES for line in _target_lines(report, gauge)]
    lines += _run_lines(report)
    return "\n".join(lines) + "\n"
