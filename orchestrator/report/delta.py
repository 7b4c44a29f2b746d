"""Comparison with a baseline report (`--baseline`) and the webhook notification.

Accepted files are marked new or recurring like any infected file, but counted apart: the
delta's `new` and `recurring` count findings only (as `summary.infected_files`), and a
baseline finding accepted tonight is not resolved (it is still there). The canary file is no
infected file for the comparison at all: not detecting it is never "resolved".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from orchestrator.model import Status, Target, TargetResult
from orchestrator.report.encode import summary_to_dict
from orchestrator.report.model import (
    Delta,
    FileKey,
    Report,
    ResolvedFile,
    account_files,
    incomplete,
    summarize,
)

NEW = "new"
RECURRING = "recurring"
NOTIFY_MODES = ("new", "infected", "failed", "always")
#: A target whose scan completed this time: its baseline files that are gone are resolved.
COMPLETED = (Status.CLEAN, Status.INFECTED)


def _keys(report: Report) -> dict[FileKey, ResolvedFile]:
    """One entry per infected file of an account (whichever scan types found it)."""
    out: dict[FileKey, ResolvedFile] = {}
    for t in report.targets:
        for f in t.infected_files:
            if f.canary:
                continue
            key = (t.server, t.account, f.path, f.virus)
            out.setdefault(key, ResolvedFile(t.server, t.account, t.scan_type, f.path, f.virus))
    return out


def apply_baseline(report: Report, baseline: Report) -> Report:
    """Mark each infected file new or recurring and list the baseline's resolved files."""
    before = _keys(baseline)
    targets = tuple(_mark(t, before) for t in report.targets)
    now = _keys(replace(report, targets=targets))
    completed = {t.target for t in targets if t.status in COMPLETED}
    resolved = tuple(
        f
        for key, f in before.items()
        if key not in now and Target(f.server, f.account, f.scan_type) in completed
    )
    delta = count_delta(targets, len(resolved))
    return replace(report, targets=targets, summary=summarize(targets, delta), resolved=resolved)


def count_delta(targets: Sequence[TargetResult], resolved: int) -> Delta:
    """New and recurring files, each counted once per account (as `summary.infected_files`)."""
    files = account_files(targets).values()
    return Delta(
        new=sum(1 for f in files if f.delta == NEW),
        recurring=sum(1 for f in files if f.delta == RECURRING),
        resolved=resolved,
    )


def _mark(t: TargetResult, before: dict[FileKey, ResolvedFile]) -> TargetResult:
    files = tuple(
        f
        if f.canary
        else replace(
            f, delta=RECURRING if (t.server, t.account, f.path, f.virus) in before else NEW
        )
        for f in t.infected_files
    )
    return replace(t, infected_files=files)


def should_notify(report: Report, mode: str) -> bool:
    """`always`; `infected`: any infected file; `new`: any file new since the baseline (or any
    infected file when no baseline was given); `failed`: any target not fully scanned (failed,
    or deferred by the window), whatever was found."""
    if mode not in NOTIFY_MODES:
        raise ValueError(f"unknown notify mode {mode!r} (allowed: {', '.join(NOTIFY_MODES)})")
    if mode == "always":
        return True
    if mode == "failed":
        return any(incomplete(t) for t in report.targets)
    summary = report.summary
    if mode == "new" and summary.delta is not None:
        return summary.delta.new > 0
    return summary.infected_files > 0


def notification_payload(report: Report) -> dict[str, Any]:
    """A Slack-compatible message: one short `text` line and the summary (accepted files and
    unverified targets named when there are any)."""
    s = report.summary
    new = f" ({s.delta.new} new)" if s.delta is not None else ""
    accepted = f", {s.accepted} accepted" if s.accepted else ""
    unverified = f", {s.unverified} unverified (canary not detected)" if s.unverified else ""
    text = (
        f"clamfleet {report.run.inventory}: {s.targets} targets, "
        f"{s.infected_files} infected files{new}{accepted}, {s.failed} failed{unverified},"
        f" exit {s.exit_code}"
    )
    return {"text": text, "summary": summary_to_dict(s)}
