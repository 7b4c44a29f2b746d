"""report.html: one self-contained page (inline CSS and SVG, no script, no external asset).

Every value from the report goes through `html.escape`: paths and messages come from scanned
servers and can contain anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from orchestrator.model import EXIT_CLEAN, EXIT_INFECTED, Status, TargetResult
from orchestrator.report.encode import format_time
from orchestrator.report.model import Report
from orchestrator.report.pacing_chart import pacing_charts
from orchestrator.report.tabular import ServerSummary, per_server, per_server_outages

VERDICTS = {
    EXIT_CLEAN: ("clean", "Every target scanned, no infected file found"),
    EXIT_INFECTED: ("infected", "Infected files found"),
}
INCOMPLETE = ("incomplete", "No infection found, but some targets could not be scanned")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#59636e;margin:0 0 16px}
.verdict{padding:14px 18px;border-radius:8px;font-weight:600;margin-bottom:16px;color:#fff}
.verdict.clean{background:#1a7f37}.verdict.infected{background:#cf222e}
.verdict.incomplete{background:#9a6700}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #d1d9e0;border-radius:8px;padding:10px 14px;min-width:96px}
.card b{display:block;font-size:22px}.card span{color:#59636e;font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d1d9e0}
th,td{padding:6px 10px;border-bottom:1px solid #d1d9e0;text-align:left;vertical-align:top}
th{background:#f0f3f6;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.path{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;background:#fff;border:1px solid #d1d9e0;border-radius:8px;padding:10px}
figcaption{font-weight:600;margin-bottom:6px}
.empty{color:#59636e}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _verdict(report: Report) -> tuple[str, str]:
    return VERDICTS.get(report.summary.exit_code, INCOMPLETE)


def report_html(report: Report) -> str:
    title = f"clamfleet report: {report.run.inventory}"
    body = [
        f"<h1>{_e(title)}</h1>",
        _meta(report),
        _headline(report),
        *_section("Servers", _server_table(per_server(report))),
        *_section("Charts", _charts(per_server(report))),
        *(
            _section("Load and concurrency", pacing_charts(report.run.pacing))
            if report.run.pacing
            else []
        ),
        *(_section("Server outages", _outage_table(report)) if report.run.outages else []),
        *_section("Infected files", _infected_table(report)),
        *_section("Failures", _failure_table(report)),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


def _section(heading: str, content: str) -> list[str]:
    return [f"<h2>{_e(heading)}</h2>", content]


def _meta(report: Report) -> str:
    run = report.run
    finished = format_time(run.finished_at) if run.finished_at else "not finished"
    parts = [
        f"run {run.id}",
        f"shard {run.shard}",
        f"{format_time(run.started_at)} to {finished}",
        "dry run" if run.dry_run else "actions applied",
        f"clamfleet {run.tool_version}",
    ]
    if run.rerun_of:
        parts.append(f"rerun of {run.rerun_of}")
    return f'<p class="meta">{_e(" · ".join(parts))}</p>'


def _headline(report: Report) -> str:
    s = report.summary
    css, text = _verdict(report)
    cards = [
        ("servers", s.servers),
        ("targets", s.targets),
        ("clean", s.clean),
        ("infected", s.infected),
        ("failed", s.failed),
        ("skipped", s.skipped),
        ("infected files", s.infected_files),
    ]
    cards += [(f"outcome {k}", v) for k, v in s.outcomes.items()]
    if s.delta is not None:
        delta = s.delta
        cards += [("new", delta.new), ("recurring", delta.recurring), ("resolved", delta.resolved)]
    html_cards = "".join(
        f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards
    )
    return (
        f'<div class="verdict {css}">Exit code {_e(s.exit_code)}: {_e(text)}</div>\n'
        f'<div class="cards">{html_cards}</div>'
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: set[int]) -> str:
    def cell(tag: str, i: int, value: object) -> str:
        css = ' class="n"' if i in numeric else ' class="path"' if headers[i] == "path" else ""
        return f"<{tag}{css}>{_e(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = ["<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows]
    if not body:
        return '<p class="empty">None.</p>'
    return (
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )


def _duration(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def _server_table(servers: Sequence[ServerSummary]) -> str:
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
            _duration(x.median_duration),
        ]
        for x in servers
    ]
    return _table([*headers, "median duration"], rows, numeric=set(range(1, 8)))


def _outage_table(report: Report) -> str:
    """Per server whose host went away: each stretch, and the server's time down in all."""
    totals = {x.server: x for x in per_server_outages(report)}
    rows = [
        [
            server,
            format_time(d.down_at),
            format_time(d.back_at) if d.back_at else "",
            _duration(d.seconds),
            "given up" if d.gave_up else "back" if d.back_at else "down at the end",
            _duration(totals[server].seconds) if i == 0 else "",
        ]
        for server, stretches in report.run.outages.items()
        for i, d in enumerate(stretches)
    ]
    headers = ["server", "down at", "back at", "down for", "ended", "server total"]
    return _table(headers, rows, numeric={3, 5})


def _infected_table(report: Report) -> str:
    headers = ["server", "account", "scan_type", "path", "virus", "action", "outcome", "message"]
    rows: list[list[object]] = []
    for t in report.targets:
        for f in t.infected_files:
            row = [t.server, t.account, t.scan_type, f.path, f.virus, f.action, f.outcome]
            rows.append([*row, f.message, *([f.delta] if report.compared else [])])
    if report.compared:
        headers.append("delta")
        rows += [
            [r.server, r.account, r.scan_type, r.path, r.virus, "", "", "", "resolved"]
            for r in report.resolved
        ]
    return _table(headers, rows, numeric=set())


def _failure_table(report: Report) -> str:
    failed: list[TargetResult] = [t for t in report.targets if t.status is Status.FAILED]
    rows = [
        [
            t.server,
            t.account,
            t.scan_type,
            t.error.kind if t.error else "",
            t.error.message if t.error else "",
        ]
        for t in failed
    ]
    return _table(["server", "account", "scan_type", "kind", "message"], rows, numeric=set())


# ---------------------------------------------------------------------------------------------
# inline SVG bar charts


def _charts(servers: Sequence[ServerSummary]) -> str:
    infections = _bar_chart([(x.server, float(x.infected_files)) for x in servers], "files")
    durations = _bar_chart([(x.server, x.median_duration or 0.0) for x in servers], "s")
    return (
        '<div class="charts">'
        f"<figure><figcaption>Infected files per server</figcaption>{infections}</figure>"
        f"<figure><figcaption>Median scan duration per server</figcaption>{durations}</figure>"
        "</div>"
    )


def _bar_chart(bars: Sequence[tuple[str, float]], unit: str) -> str:
    """Horizontal bars, one per server, scaled to the largest value."""
    label_w, bar_w, row_h = 140, 260, 22
    height = max(len(bars), 1) * row_h + 8
    top = max((v for _, v in bars), default=0.0) or 1.0
    rows = []
    for i, (label, value) in enumerate(bars):
        y = 4 + i * row_h
        width = round(bar_w * value / top, 1)
        shown = f"{value:g} {unit}"
        rows.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{_e(label[:22])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{width}" height="{row_h - 6}" fill="#0969da">'
            f"<title>{_e(label)}: {_e(shown)}</title></rect>"
            f'<text x="{label_w + width + 4}" y="{y + 15}">{_e(shown)}</text>'
        )
    total_w = label_w + bar_w + 80
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{height}" '
        f'viewBox="0 0 {total_w} {height}" font-size="12" role="img">' + "".join(rows) + "</svg>"
    )
