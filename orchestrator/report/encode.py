"""Report -> the report.json document (README "Report"), keys in the contract's order.

Additive keys beyond the contract: `run.servers`, `run.fleet_id`, `run.rerun_of`,
`run.shard_servers` (always present), `run.pacing` (only when some server was load-paced),
`run.window` (only when the run had a finish-by window), `run.outages` (only when some
server's host went down), and,
only when a baseline was applied, `summary.delta`, each infected file's `delta` and a top-level
`resolved` list; only with a history, each infected file's `first_seen` and `nights_seen` and a
top-level `history` (the last nights' trend). Accepted findings and canaries: `summary.accepted`,
`summary.unverified`, each target's `verified` and each file's `accepted` (always present); a
file's `expired_acceptance` and `canary` (only when set); `run.canaries` (only when a server has
one) and `run.accepted` (only when an accepted-findings file was given).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.model import (
    Acceptance,
    AcceptedInfo,
    CanaryInfo,
    Downtime,
    ErrorInfo,
    InfectedFile,
    RunInfo,
    RunWindow,
    ScanStats,
    ServerPacing,
    TargetResult,
)
from orchestrator.report.model import SCHEMA, Delta, Report, ResolvedFile, Summary, utc_second
from orchestrator.report.trend import NightPoint, ServerPoint, Trend


def format_time(moment: datetime) -> str:
    """`2026-11-28T02:00:00Z`: UTC, to the second."""
    return utc_second(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_optional_time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def report_to_dict(report: Report) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "run": run_to_dict(report.run),
        "summary": summary_to_dict(report.summary),
        "targets": [target_to_dict(t) for t in report.targets],
    }
    if report.compared:
        doc["resolved"] = [resolved_to_dict(r) for r in report.resolved]
    if report.history is not None:
        doc["history"] = trend_to_dict(report.history)
    return doc


def run_to_dict(run: RunInfo) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": run.id,
        "tool_version": run.tool_version,
        "started_at": format_time(run.started_at),
        "finished_at": format_optional_time(run.finished_at),
        "inventory": run.inventory,
        "shard": run.shard,
        "dry_run": run.dry_run,
        "servers": list(run.servers),
        "fleet_id": run.fleet_id or None,
        "rerun_of": run.rerun_of,
        "shard_servers": list(run.shard_servers),
    }
    if run.pacing:
        doc["pacing"] = {name: pacing_to_dict(p) for name, p in run.pacing.items()}
    if run.canaries:
        doc["canaries"] = {name: canary_to_dict(c) for name, c in run.canaries.items()}
    if run.accepted is not None:
        doc["accepted"] = accepted_info_to_dict(run.accepted)
    if run.window is not None:
        doc["window"] = window_to_dict(run.window)
    if run.outages:
        doc["outages"] = {
            name: [downtime_to_dict(d) for d in stretches]
            for name, stretches in run.outages.items()
        }
    return doc


def canary_to_dict(canary: CanaryInfo) -> dict[str, Any]:
    return {"account": canary.account, "path": canary.path, "virus": canary.virus, "by": canary.by}


def accepted_info_to_dict(info: AcceptedInfo) -> dict[str, Any]:
    """The accepted-findings file of the run; `stale`: its entries that matched no file."""
    return {
        "source": info.source,
        "entries": info.entries,
        "stale": [
            {
                "line": e.line,
                "reason": e.reason,
                "expires": e.expires.isoformat(),
                "when": dict(e.when),
            }
            for e in info.stale
        ],
    }


def window_to_dict(window: RunWindow) -> dict[str, Any]:
    """`end` keeps its timezone's offset: `2026-12-05T06:00:00+01:00`."""
    return {
        "end": window.end.replace(microsecond=0).isoformat(),
        "timezone": window.timezone,
        "source": window.source,
    }


def downtime_to_dict(downtime: Downtime) -> dict[str, Any]:
    """One stretch a server's host was away (`run.outages[server][i]`)."""
    return {
        "down_at": format_time(downtime.down_at),
        "back_at": format_optional_time(downtime.back_at),
        "down_s": round(downtime.seconds, 1),
        "gave_up": downtime.gave_up,
    }


def pacing_to_dict(pacing: ServerPacing) -> dict[str, Any]:
    """One paced server; `history` rows are [t, running, limit, load] (t: seconds into the run)."""
    return {
        "max_load": pacing.max_load,
        "cap": pacing.cap,
        "peak_load": pacing.peak_load,
        "seconds_over": pacing.seconds_over,
        "readings": pacing.readings,
        "failed_readings": pacing.failed_readings,
        "history": [[s.t, s.running, s.limit, s.load] for s in pacing.history],
    }


def summary_to_dict(summary: Summary) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "servers": summary.servers,
        "targets": summary.targets,
        "clean": summary.clean,
        "infected": summary.infected,
        "failed": summary.failed,
        "skipped": summary.skipped,
        "infected_files": summary.infected_files,
        "outcomes": dict(summary.outcomes),
        "exit_code": summary.exit_code,
        "accepted": summary.accepted,
        "unverified": summary.unverified,
    }
    if summary.delta is not None:
        doc["delta"] = delta_to_dict(summary.delta)
    return doc


def delta_to_dict(delta: Delta) -> dict[str, int]:
    return {"new": delta.new, "recurring": delta.recurring, "resolved": delta.resolved}


def target_to_dict(result: TargetResult) -> dict[str, Any]:
    return {
        "server": result.server,
        "account": result.account,
        "scan_type": str(result.scan_type),
        "status": str(result.status),
        "scan": None if result.scan is None else scan_to_dict(result.scan),
        "infected_files": [file_to_dict(f) for f in result.infected_files],
        "started_at": format_optional_time(result.started_at),
        "finished_at": format_optional_time(result.finished_at),
        "duration_s": None if result.duration_s is None else round(result.duration_s, 1),
        "api_calls": result.api_calls,
        "error": None if result.error is None else error_to_dict(result.error),
        "verified": result.verified,
    }


def scan_to_dict(scan: ScanStats) -> dict[str, Any]:
    return {
        "time_started": scan.time_started,
        "scanned_file_count": scan.scanned_file_count,
        "scanned_file_size": scan.scanned_file_size,
        "total_file_count": scan.total_file_count,
    }


def file_to_dict(infected: InfectedFile) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "path": infected.path,
        "virus": infected.virus,
        "action": str(infected.action),
        "outcome": str(infected.outcome),
        "message": infected.message,
        "accepted": acceptance_to_dict(infected.accepted),
    }
    if infected.delta is not None:
        doc["delta"] = infected.delta
    if infected.first_seen is not None:
        doc["first_seen"] = format_time(infected.first_seen)
    if infected.nights_seen is not None:
        doc["nights_seen"] = infected.nights_seen
    if infected.expired_acceptance is not None:
        doc["expired_acceptance"] = acceptance_to_dict(infected.expired_acceptance)
    if infected.canary:
        doc["canary"] = True
    return doc


def acceptance_to_dict(acceptance: Acceptance | None) -> dict[str, str] | None:
    if acceptance is None:
        return None
    return {"reason": acceptance.reason, "expires": acceptance.expires.isoformat()}


def error_to_dict(error: ErrorInfo) -> dict[str, str]:
    return {"kind": str(error.kind), "message": error.message}


def resolved_to_dict(resolved: ResolvedFile) -> dict[str, str]:
    return {
        "server": resolved.server,
        "account": resolved.account,
        "scan_type": str(resolved.scan_type),
        "path": resolved.path,
        "virus": resolved.virus,
    }


def trend_to_dict(trend: Trend) -> dict[str, Any]:
    """`{"nights": [...], "servers": {name: [...]}}`, each list oldest first."""
    return {
        "nights": [night_to_dict(n) for n in trend.nights],
        "servers": {
            name: [server_point_to_dict(p) for p in points]
            for name, points in trend.servers.items()
        },
    }


def night_to_dict(night: NightPoint) -> dict[str, Any]:
    return {
        "run_id": night.run_id,
        "started_at": format_time(night.started_at),
        "exit_code": night.exit_code,
        "targets": night.targets,
        "infected_files": night.infected_files,
        "new": night.new,
        "failed": night.failed,
        "wall_s": night.wall_s,
    }


def server_point_to_dict(point: ServerPoint) -> dict[str, Any]:
    return {
        "started_at": format_time(point.started_at),
        "scan_s": point.scan_s,
        "bytes": point.bytes,
    }
