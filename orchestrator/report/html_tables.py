"""report.html's tables: the servers, outages, infected files (outcomes coloured by who must
act), accepted findings, canaries, failed and deferred targets; and the table, escape and
duration helpers the page is built from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from orchestrator.report.attention import (
    effective_outcomes,
    needs_human,
)
from orchestrator.report.encode import format_time
from orchestrator.report.model import Report, incomplete
from orchestrator.report.tabular import ServerSummary, per_server_outages, with_history
from orchestrator.report.verification import canary_checks

#: The follow-up command's REPORT when the page is rendered without knowing where report.json
#: went (the writers always say).
OUTCOME_COLUMN = 6


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    numeric: set[int],
    marks: Sequence[bool | None] = (),
) -> str:
    """A table; `marks[i]` colours row i's outcome cell: True needs a person, False handled."""

    def cell(tag: str, i: int, value: object, mark: bool | None = None) -> str:
        css = ' class="n"' if i in numeric else ' class="path"' if headers[i] == "path" else ""
        if mark is not None and i == OUTCOME_COLUMN:
            label = "needs a person" if mark else "handled"
            css = f' class="{"human" if mark else "handled"}" title="{label}"'
        return f"<{tag}{css}>{e(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = [
        "<tr>"
        + "".join(cell("td", i, v, marks[r] if r < len(marks) else None) for i, v in enumerate(row))
        + "</tr>"
        for r, row in enumerate(rows)
    ]
    if not body:
        return '<p class="empty">None.</p>'
    return (
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )


def duration(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def server_table(servers: Sequence[ServerSummary]) -> str:
    headers = ["server", "targets", "clean", "infected", "failed", "skipped", "infected files"]
    rows = [
        [
            x.server,
            x.targets,
            x.clean,
            x.infected,
            x.failed,
            x.skipped,
            x.infected_files,
            duration(x.median_duration),
        ]
        for x in servers
    ]
    return table([*headers, "median duration"], rows, numeric=set(range(1, 8)))


def outage_table(report: Report) -> str:
    """Per server whose host went away: each stretch, and the server's time down in all."""
    totals = {x.server: x for x in per_server_outages(report)}
    rows = [
        [
            server,
            format_time(d.down_at),
            format_time(d.back_at) if d.back_at else "",
            duration(d.seconds),
            "given up" if d.gave_up else "back" if d.back_at else "down at the end",
            duration(totals[server].seconds) if i == 0 else "",
        ]
        for server, stretches in report.run.outages.items()
        for i, d in enumerate(stretches)
    ]
    headers = ["server", "down at", "back at", "down for", "ended", "server total"]
    return table(headers, rows, numeric={3, 5})


def infected_table(report: Report) -> str:
    """Every infected file; its outcome cell says (by colour and tooltip) whether the file was
    handled or still needs a person, judged once per account like the summary counts it."""
    headers = ["server", "account", "scan_type", "path", "virus", "action", "outcome", "message"]
    history = with_history(report)
    rows: list[list[object]] = []
    marks: list[bool | None] = []
    outcomes = effective_outcomes(report)
    for t in report.targets:
        for f in t.findings:
            row = [t.server, t.account, t.scan_type, f.path, f.virus, f.action, f.outcome]
            message = f.message
            if (expired := f.expired_acceptance) is not None:
                note = f"acceptance expired on {expired.expires.isoformat()}: {expired.reason}"
                message = f"{note}; {message}" if message else note
            rows.append([*row, message, *([f.delta] if report.compared else [])])
            if history:
                seen = f"{f.first_seen:%Y-%m-%d}" if f.first_seen is not None else ""
                rows[-1] += [seen, f.nights_seen]
            marks.append(
                needs_human(outcomes.get((t.server, t.account, f.path, f.virus), f.outcome))
            )
    if report.compared:
        headers.append("delta")
        gap = ["", ""] if history else []
        rows += [
            [r.server, r.account, r.scan_type, r.path, r.virus, "", "", "", "resolved", *gap]
            for r in report.resolved
        ]
        marks += [None] * len(report.resolved)
    if history:
        headers += ["first seen", "nights"]
    numeric = {len(headers) - 1} if history else set()
    if not rows:
        return table(headers, rows, numeric=numeric)
    legend = (
        '<p class="legend">outcome: <span class="handled">■</span> handled,'
        ' <span class="human">■</span> needs a person</p>'
    )
    return legend + table(headers, rows, numeric=numeric, marks=marks)


def has_accepted(report: Report) -> bool:
    return report.run.accepted is not None or report.summary.accepted > 0


def accepted(report: Report) -> str:
    """Accepted files (never acted on: the policy is not consulted), then stale entries."""
    headers = ["server", "account", "scan_type", "path", "virus", "reason", "expires"]
    rows = [
        [t.server, t.account, t.scan_type, f.path, f.virus, f.accepted.reason, f.accepted.expires]
        for t in report.targets
        for f in t.infected_files
        if f.accepted is not None and not f.canary
    ]
    parts = [
        '<p class="meta">Seen, judged, accepted until the date shown: not counted as infected'
        " files, and the policy is not consulted for them (no action is ever sent).</p>",
        table(headers, rows, numeric=set()),
    ]
    info = report.run.accepted
    if info is not None and info.stale:
        parts.append(
            f'<p class="meta">Entries of {e(info.source)} that matched no infected file this'
            " run (remove them, or check their globs):</p>"
        )
        stale = [
            [s.line, ", ".join(f"{k}: {v}" for k, v in s.when.items()), s.reason, s.expires]
            for s in info.stale
        ]
        parts.append(table(["line", "when", "reason", "expires"], stale, numeric={0}))
    return "\n".join(parts)


def canary_table(report: Report) -> str:
    headers = ["servers", "scanned by", "account", "path", "virus", "state", "detail"]
    rows = [
        [
            ", ".join(check.servers),
            check.canary.by,
            check.canary.account,
            check.canary.path,
            check.canary.virus,
            check.state,
            check.detected_as or check.detail or "",
        ]
        for check in canary_checks(report.run.canaries, report.targets)
    ]
    return table(headers, rows, numeric=set())


def failure_table(report: Report) -> str:
    """Targets that were not fully scanned: failed, interrupted, or deferred by the window."""
    rows = [
        [
            t.server,
            t.account,
            t.scan_type,
            t.status,
            t.error.kind if t.error else "",
            t.error.message if t.error else "",
        ]
        for t in report.targets
        if incomplete(t)
    ]
    headers = ["server", "account", "scan_type", "status", "kind", "message"]
    return table(headers, rows, numeric=set())


# ---------------------------------------------------------------------------------------------
# inline SVG bar charts
