"""Accepted findings and canaries at the command line: which accepted-findings file a run or
`validate` reads, the date it is judged on, and the lines a person must see afterwards.

**When does an acceptance expire?** On its `expires` date, in the run's time zone: an entry is
in force while the date the run *started* on, read in `settings.window.timezone` (default: this
machine's local time), is before `expires`. So `expires: 2027-03-01` covers the night of
28 February and no longer the night of 1 March, wherever the cron job's clock is set; a
`--resume`d run keeps the date of the run it resumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from orchestrator.config import Accepted, Inventory, Server, load_accepted
from orchestrator.config.accepted import expired, expiring
from orchestrator.report import Report
from orchestrator.report.verification import canary_checks


def accepted_path(arg: Path | None, inventory: Inventory) -> Path | None:
    """`--accepted FILE` wins over `settings.accepted`."""
    return arg if arg is not None else inventory.settings.accepted


def load(arg: Path | None, inventory: Inventory) -> Accepted | None:
    path = accepted_path(arg, inventory)
    return None if path is None else load_accepted(path)


def run_date(moment: datetime, timezone: str) -> date:
    """The date of `moment` in the run's time zone ("local": this machine's)."""
    zone = None if timezone == "local" else ZoneInfo(timezone)
    return moment.astimezone(zone).date()


# -- after a run ---------------------------------------------------------------------------------


def attention_lines(report: Report) -> Iterator[str]:
    """What a person must read after the run: canaries not detected, acceptances expired,
    accepted-findings entries that matched nothing."""
    for check in canary_checks(report.run.canaries, report.targets):
        if not check.detected:
            yield f"warning: {check.message()}"
    for t in report.targets:
        for f in t.infected_files:
            if (gone := f.expired_acceptance) is not None:
                yield (
                    f"warning: acceptance expired on {gone.expires.isoformat()} ({gone.reason}):"
                    f" {t.server}/{t.account} {f.path} ({f.virus}) counts as a finding again"
                )
    info = report.run.accepted
    if info is None:
        return
    for entry in info.stale:
        yield (
            f"warning: {info.source}:{entry.line}: matched no infected file this run"
            f" ({entry.reason}): remove the entry, or check its globs"
        )


def count_lines(report: Report) -> Iterator[str]:
    s = report.summary
    if s.accepted or report.run.accepted is not None:
        yield (f"accepted: {s.accepted} infected file(s), not counted as infected, never acted on")
    if report.run.canaries:
        checks = canary_checks(report.run.canaries, report.targets)
        found = sum(1 for c in checks if c.detected)
        yield (
            f"canaries: {found} of {len(checks)} detected;"
            f" {s.unverified} clean target(s) unverified"
        )


# -- validate ------------------------------------------------------------------------------------


def validate_lines(accepted: Accepted, today: date) -> tuple[list[str], list[str]]:
    """The summary line of an accepted-findings file, and its warnings: entries that expire
    within 14 days, and entries already expired."""
    n = len(accepted.entries)
    lines = [f"{accepted.source}: OK, {n} accepted-findings entr{'y' if n == 1 else 'ies'}"]
    warnings = [
        f"{accepted.source}:{e.line}: expires {e.expires.isoformat()}"
        f" (in {(e.expires - today).days} days): {e.reason}"
        for e in expiring(accepted, today)
    ]
    warnings += [
        f"{accepted.source}:{e.line}: expired on {e.expires.isoformat()}: the files it matches"
        f" count as findings again ({e.reason})"
        for e in expired(accepted, today)
    ]
    return lines, warnings


def canary_line(server: Server) -> str | None:
    """validate's line about a server's canary."""
    canary = server.canary
    if canary is None:
        return None
    by = "" if canary.by == server.name else f", scanned by {canary.by}"
    return (
        f"      canary: {canary.account}: {canary.path} ({canary.virus},"
        f" {canary.scan_type} scan{by})"
    )
