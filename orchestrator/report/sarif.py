"""report.sarif: SARIF 2.1.0, one rule per distinct virus and one result per infected file.

Paths are absolute paths on the scanned server, written as `file://` URIs (percent-encoded);
the server, account and scan type are in each result's properties. Failed targets become
tool execution notifications of the one invocation, and so does a canary not detected (its
server's clean verdicts are unproven).

An accepted file is a result with a `suppressions` entry of kind `external` (the accepted-
findings file), status `accepted`, its reason as the justification: code scanning shows it
dismissed, not open. A canary file is not a result at all: it proves detection, it is no
finding.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from orchestrator.model import InfectedFile, Status, TargetResult
from orchestrator.report.encode import format_time
from orchestrator.report.model import Report
from orchestrator.report.verification import canary_checks

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
#: SARIF's baselineState for each of clamfleet's deltas.
BASELINE_STATES = {"new": "new", "recurring": "unchanged"}


def file_uri(path: str) -> str:
    """`/home/a b/x.php` -> `file:///home/a%20b/x.php`; a relative path stays relative."""
    encoded = quote(path, safe="/")
    return f"file://{encoded}" if path.startswith("/") else encoded


def _reported(report: Report) -> list[tuple[TargetResult, InfectedFile]]:
    """Every infected file but the canary: findings, and accepted files (suppressed)."""
    return [(t, f) for t in report.targets for f in t.infected_files if not f.canary]


def sarif_dict(report: Report) -> dict[str, Any]:
    files = _reported(report)
    viruses = list(dict.fromkeys(f.virus for _, f in files))
    index = {virus: i for i, virus in enumerate(viruses)}
    results = [_result(t, f, index[f.virus]) for t, f in files]
    run: dict[str, Any] = {
        "tool": {"driver": _driver(report, viruses)},
        "automationDetails": {"id": f"clamfleet/{report.run.id}"},
        "invocations": [_invocation(report)],
        "results": results,
        "properties": {
            "inventory": report.run.inventory,
            "shard": report.run.shard,
            "dry_run": report.run.dry_run,
            "exit_code": report.summary.exit_code,
            "accepted": report.summary.accepted,
            "unverified": report.summary.unverified,
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _driver(report: Report, viruses: list[str]) -> dict[str, Any]:
    return {
        "name": "clamfleet",
        "version": report.run.tool_version,
        "rules": [_rule(virus) for virus in viruses],
    }


def _rule(virus: str) -> dict[str, Any]:
    return {
        "id": virus,
        "shortDescription": {"text": f"ClamAV signature {virus}"},
        "defaultConfiguration": {"level": "error"},
    }


def _result(t: TargetResult, f: InfectedFile, rule_index: int) -> dict[str, Any]:
    text = f"{f.virus} found in {t.server}/{t.account} ({t.scan_type}): {f.path}; "
    text += f"action {f.action}, outcome {f.outcome}"
    result: dict[str, Any] = {
        "ruleId": f.virus,
        "ruleIndex": rule_index,
        "level": "error",
        "kind": "fail",
        "message": {"text": f"{text}: {f.message}" if f.message else text},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": file_uri(f.path)}}}],
        "partialFingerprints": {"clamfleetFile/v1": _fingerprint(t, f)},
        "properties": {
            "server": t.server,
            "account": t.account,
            "scan_type": str(t.scan_type),
            "action": str(f.action),
            "outcome": str(f.outcome),
        },
    }
    if f.delta in BASELINE_STATES:
        result["baselineState"] = BASELINE_STATES[f.delta]
    if f.accepted is not None:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": f.accepted.reason,
                "properties": {"expires": f.accepted.expires.isoformat()},
            }
        ]
    elif f.expired_acceptance is not None:
        expired = f.expired_acceptance
        result["properties"]["acceptance_expired"] = expired.expires.isoformat()
        result["message"]["text"] += (
            f" (its acceptance expired on {expired.expires.isoformat()}: {expired.reason})"
        )
    return result


def _fingerprint(t: TargetResult, f: InfectedFile) -> str:
    key = "\0".join([t.server, t.account, str(t.scan_type), f.path, f.virus])
    return hashlib.sha256(key.encode()).hexdigest()


def _invocation(report: Report) -> dict[str, Any]:
    invocation: dict[str, Any] = {
        "executionSuccessful": report.summary.failed == 0,
        "startTimeUtc": format_time(report.run.started_at),
        "toolExecutionNotifications": [
            *(_notification(t) for t in report.targets if t.status is Status.FAILED),
            *(
                {"level": "error", "message": {"text": check.message()}}
                for check in canary_checks(report.run.canaries, report.targets)
                if not check.detected
            ),
        ],
    }
    if report.run.finished_at is not None:
        invocation["endTimeUtc"] = format_time(report.run.finished_at)
    return invocation


def _notification(t: TargetResult) -> dict[str, Any]:
    kind = str(t.error.kind) if t.error else "internal"
    message = t.error.message if t.error else "failed"
    return {
        "level": "error",
        "message": {"text": f"{t.server}/{t.account}/{t.scan_type}: {kind}: {message}"},
        "properties": {"server": t.server, "account": t.account, "scan_type": str(t.scan_type)},
    }
