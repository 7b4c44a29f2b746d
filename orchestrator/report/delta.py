"""Comparison with a baseline report (`--baseline`) and the webhook notification."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from orchestrator.model import Status, Target, TargetResult
from orchestrator.report.encode import summary_to_dict
from orchestrator.report.model import Delta, Report, ResolvedFile, summarize

NEW = "new"
RECURRING = "recurring"
NOTIFY_MODES = ("new", "infected", "always")
#: A target whose scan completed this time: its baseline files that are gone are resolved.
COMPLETED = (Status.CLEAN, Status.INFECTED)

FileKey = tuple[Target, str, str]


def _keys(report: Report) -> dict[FileKey, ResolvedFile]:
    return {
        (t.target, f.path, f.virus): ResolvedFile(t.server, t.account, t.scan_type, f.path, f.virus)
        for t in report.targets
        for f in t.infected_files
    }


def apply_baseline(report: Report, baseline: Report) -> Report:
    """Mark each infected file new or recurring and list the baseline's resolved files."""
    before = _keys(baseline)
    targets = tuple(_mark(t, before) for t in report.targets)
    now = _keys(replace(report, targets=targets))
    completed = {t.target for t in targets if t.status in COMPLETED}
    resolved = tuple(f for key, f in before.items() if key not in now and key[0] in completed)
    files = [f for t in targets for f in t.infected_files]
    delta = Delta(
        new=sum(1 for f in files if f.delta == NEW),
        recurring=sum(1 for f in files if f.delta == RECURRING),
        resolved=len(resolved),
    )
    return replace(report, targets=targets, summary=summarize(targets, delta), resolved=resolved)


def _mark(t: TargetResult, before: dict[FileKey, ResolvedFile]) -> TargetResult:
    files = tuple(
        replace(f, delta=RECURRING if (t.target, f.path, f.virus) in before else NEW)
        for f in t.infected_files
    )
    return replace(t, infected_files=files)


def should_notify(report: Report, mode: str) -> bool:
    """`always`; `infected`: any infected file; `new`: any file new since the baseline (or any
    infected file when no baseline was given)."""
    if mode not in NOTIFY_MODES:
        raise ValueError(f"unknown notify mode {mode!r} (allowed: {', '.join(NOTIFY_MODES)})")
    if mode == "always":
        return True
    summary = report.summary
    if mode == "new" and summary.delta is not None:
        return summary.delta.new > 0
    return summary.infected_files > 0


def notification_payload(report: Report) -> dict[str, Any]:
    """A Slack-compatible message: one short `text` line and the summary."""
    s = report.summary
    new = f" ({s.delta.new} new)" if s.delta is not None else ""
    text = (
        f"clamfleet {report.run.inventory}: {s.targets} targets, "
        f"{s.infected_files} infected files{new}, {s.failed} failed, exit {s.exit_code}"
    )
    return {"text": text, "summary": summary_to_dict(s)}
