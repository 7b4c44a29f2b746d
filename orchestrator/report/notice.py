"""What a notification says (`--notify`, `settings.notify`): built from the report, pure.

- `subject`: the verdict in one line, `[clamfleet] web: 3 new infected files, 1 server failed`;
- `html`: the summary for email: the verdict, the new findings first (every infected file when
  there was no comparison), then the failures, then the files still there and those resolved,
  then where the report is. Written as headings, paragraphs and lists, not tables, because the
  mail's plain-text part is made from it (one line per list item);
- `short`: one line for chat services, with where the report is.

Every value from the report is HTML-escaped: paths and messages come from scanned servers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TypeVar

from orchestrator.model import (
    EXIT_CLEAN,
    EXIT_INCOMPLETE,
    EXIT_INFECTED,
    InfectedFile,
    TargetResult,
)
from orchestrator.report.delta import NEW
from orchestrator.report.encode import format_time
from orchestrator.report.model import FileKey, Report, account_files, incomplete

T = TypeVar("T")

#: Longest list in a message; the rest is counted, and the report has them all.
MAX_LISTED = 50
MEANING = {
    EXIT_CLEAN: "every target scanned, no infected file found",
    EXIT_INFECTED: "infected files found",
    EXIT_INCOMPLETE: "no infection found, but some targets could not be fully scanned",
}


@dataclass(frozen=True, slots=True)
class Notice:
    subject: str
    html: str
    short: str


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def fleet_name(report: Report) -> str:
    """The inventory file's name without its suffix (`/etc/clamfleet/web.yaml` -> `web`)."""
    return Path(report.run.inventory).stem or report.run.inventory


def failed_servers(targets: Sequence[TargetResult]) -> list[str]:
    """Servers none of whose targets was fully scanned."""
    by_server: dict[str, list[TargetResult]] = {}
    for t in targets:
        by_server.setdefault(t.server, []).append(t)
    return [name for name, ts in by_server.items() if all(incomplete(t) for t in ts)]


def verdict(report: Report) -> str:
    """`3 new infected files (5 in all), 1 server failed, 2 targets not fully scanned`."""
    s = report.summary
    parts = []
    if s.delta is not None and s.delta.new:
        extra = f" ({s.infected_files} in all)" if s.infected_files > s.delta.new else ""
        parts.append(_plural(s.delta.new, "new infected file") + extra)
    elif s.delta is not None and s.infected_files:
        parts.append(_plural(s.infected_files, "infected file") + ", none new")
    elif s.infected_files:
        parts.append(_plural(s.infected_files, "infected file"))
    if s.delta is not None and s.delta.resolved:
        parts.append(f"{s.delta.resolved} resolved")
    down = failed_servers(report.targets)
    if down:
        parts.append(_plural(len(down), "server") + " failed")
    others = sum(1 for t in report.targets if incomplete(t) and t.server not in down)
    if others:
        parts.append(_plural(others, "target") + " not fully scanned")
    return ", ".join(parts) or f"clean ({_plural(s.targets, 'target')} scanned)"


def build_notice(report: Report, location: str | None) -> Notice:
    """The notification of `report`; `location`: the report's path (or link), if written."""
    fleet = fleet_name(report)
    line = verdict(report)
    where = f" Report: {location}" if location else ""
    return Notice(
        subject=f"[clamfleet] {fleet}: {line}",
        html=_html(report, fleet, line, location),
        short=f"clamfleet {fleet}: {line} (exit {report.summary.exit_code}).{where}",
    )


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _html(report: Report, fleet: str, line: str, location: str | None) -> str:
    s, run = report.summary, report.run
    end = format_time(run.finished_at) if run.finished_at else "not finished"
    facts = [f"exit code {s.exit_code}: {MEANING.get(s.exit_code, 'no verdict')}"]
    facts += [f"{_plural(s.targets, 'target')} on {_plural(s.servers, 'server')}"]
    facts += [f"run {run.id}, {format_time(run.started_at)} to {end}, shard {run.shard}"]
    if run.dry_run:
        facts.append("dry run: nothing was disinfected")
    files = account_files(report.targets)
    compared = s.delta is not None
    new = [(k, f) for k, f in files.items() if not compared or f.delta == NEW]
    old = sorted(
        ((k, f) for k, f in files.items() if compared and f.delta != NEW),
        key=lambda kf: (kf[1].first_seen is None, kf[1].first_seen, kf[0]),
    )
    failures = [t for t in report.targets if incomplete(t)]
    parts = [
        f"<h2>{_e(fleet)}: {_e(line)}</h2>",
        "".join(f"<p>{_e(fact)}</p>" for fact in facts),
        *_listed("New infected files" if compared else "Infected files", new, _file_item),
        *_listed("Failures", failures, _failure_item),
        *_listed("Still there from earlier nights", old, _file_item),
        *_listed(
            "Resolved since each target's last scan",
            report.resolved,
            lambda r: f"{r.server}/{r.account} ({r.scan_type}): {r.path} ({r.virus})",
        ),
        f"<p>Report: {_e(location)}</p>" if location else "<p>No report was written.</p>",
    ]
    return '<div style="font-family:sans-serif">' + "\n".join(parts) + "</div>"


def _listed(title: str, items: Sequence[T], render: Callable[[T], str]) -> list[str]:
    if not items:
        return []
    shown = [f"<li>{_e(render(item))}</li>" for item in items[:MAX_LISTED]]
    more = len(items) - MAX_LISTED
    tail = [f"<p>... and {more} more: see the report.</p>"] if more > 0 else []
    return [f"<h3>{_e(title)} ({len(items)})</h3>", "<ul>" + "".join(shown) + "</ul>", *tail]


def _file_item(entry: tuple[FileKey, InfectedFile]) -> str:
    (server, account, path, virus), f = entry
    text = f"{server}/{account}: {path} ({virus})"
    if f.first_seen is not None and f.nights_seen is not None:
        text += f", first seen {f.first_seen:%Y-%m-%d}, {_plural(f.nights_seen, 'night')}"
    return f"{text}, {f.outcome}"


def _failure_item(t: TargetResult) -> str:
    error = t.error
    why = f"{error.kind}: {error.message}" if error is not None else str(t.status)
    return f"{t.server}/{t.account} ({t.scan_type}): {why}"
