"""report.html: one self-contained page (inline CSS and SVG, no script, no external asset).

Every value from the report goes through `html.escape`: paths and messages come from scanned
servers and can contain anything.

A canary that was not detected puts a banner under the verdict (its server's clean verdicts are
unproven); accepted files have a section of their own (with the entries that matched nothing),
and the canaries one too. The "Infected files" table lists findings only.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.model import RunWindow
from orchestrator.report.attention import (
    Item,
    attention,
    deferred,
    follow_up,
    report_verdict,
)
from orchestrator.report.encode import format_time
from orchestrator.report.html_tables import (
    accepted,
    canary_table,
    e,
    failure_table,
    has_accepted,
    infected_table,
    outage_table,
    server_table,
)
from orchestrator.report.model import Report
from orchestrator.report.pacing_chart import pacing_charts
from orchestrator.report.tabular import ServerSummary, per_server
from orchestrator.report.trend_chart import trend_section
from orchestrator.report.verification import canary_checks

#: The follow-up command's REPORT when the page is rendered without knowing where report.json
#: went (the writers always say).
REPORT_PLACEHOLDER = "REPORT.json"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#59636e;margin:0 0 16px}
.verdict{padding:14px 18px;border-radius:8px;font-weight:600;margin-bottom:16px;color:#fff}
.verdict.clean{background:#1a7f37}.verdict.infected{background:#cf222e}
.verdict.incomplete{background:#9a6700}
.banner{padding:10px 16px;border-radius:8px;margin-bottom:12px;background:#fff8c5;
border:1px solid #d4a72c;font-weight:600}
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
.attention{background:#fff8c5;border:1px solid #d4a72c;border-radius:8px;padding:4px 14px 12px;
margin-bottom:16px}
.attention.none{background:#dafbe1;border-color:#4ac26b}
.attention h2{margin-top:10px}
.handled{color:#1a7f37;font-weight:600}.human{color:#cf222e;font-weight:700}
code.cmd{display:block;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;background:#fff;
border:1px solid #d1d9e0;border-radius:6px;padding:8px 10px;margin-top:8px;word-break:break-all}
.legend{color:#59636e;margin:0 0 6px}
"""


def report_html(report: Report, report_path: str | None = None) -> str:
    """The page; `report_path` (where report.json is) goes into the follow-up command."""
    title = f"clamfleet report: {report.run.inventory}"
    body = [
        f"<h1>{e(title)}</h1>",
        _meta(report),
        _verdict_banner(report),
        _attention(report, report_path or REPORT_PLACEHOLDER),
        _cards(report),
        *_section("Servers", server_table(per_server(report))),
        *_section("Charts", _charts(per_server(report))),
        *(
            _section("Load and concurrency", pacing_charts(report.run.pacing))
            if report.run.pacing
            else []
        ),
        *(
            _section("History: the last nights", trend_section(report.history))
            if report.history is not None and report.history.nights
            else []
        ),
        *(_section("Server outages", outage_table(report)) if report.run.outages else []),
        *_section("Infected files", infected_table(report)),
        *(_section("Accepted findings", accepted(report)) if has_accepted(report) else []),
        *(_section("Canaries", canary_table(report)) if report.run.canaries else []),
        *_section("Failed and deferred targets", failure_table(report)),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


def _section(heading: str, content: str) -> list[str]:
    return [f"<h2>{e(heading)}</h2>", content]


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
    if run.window is not None:
        parts.append(window_text(run.window))
    return f'<p class="meta">{e(" · ".join(parts))}</p>'


def window_text(window: RunWindow) -> str:
    """`window: no new scan after 06:00 Europe/Berlin (2026-12-05 06:00 +01:00, settings)`."""
    end = window.end
    return (
        f"window: no new scan after {end:%H:%M} {window.timezone}"
        f" ({end:%Y-%m-%d %H:%M %z}, {window.source})"
    )


def _verdict_banner(report: Report) -> str:
    code = report.summary.exit_code
    css, text = report_verdict(report)
    banners = "".join(
        f'\n<div class="banner">{e(check.message())}</div>'
        for check in canary_checks(report.run.canaries, report.targets)
        if not check.detected
    )
    return (
        f'<div class="verdict {css}">Exit code {e(code)}: {e(text[:1].upper() + text[1:])}</div>'
        + banners
    )


def _attention(report: Report, report_path: str) -> str:
    """First after the verdict: everything that needs a person, why, and what to run next."""
    items = attention(report)
    if not items:
        return (
            '<section class="attention none" id="attention"><h2>Needs attention</h2>'
            "<p>Nothing needs attention.</p></section>"
        )
    rows = "\n".join(_attention_row(item) for item in items)
    command = follow_up(report, report_path)
    next_step = (
        ""
        if command is None
        else "<p>Scan the targets marked “rescan” again (add the night's <code>--policy</code>"
        f' to act on what it finds):<code class="cmd">{e(command)}</code></p>'
    )
    return (
        f'<section class="attention" id="attention"><h2>Needs attention ({len(items)})</h2>\n'
        "<table>\n<thead><tr><th>kind</th><th>where</th><th>virus</th><th>why</th>"
        f"<th>next</th></tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n{next_step}</section>"
    )


def _attention_row(item: Item) -> str:
    cells = [
        f'<td class="human">{e(item.kind)}</td>',
        f'<td class="path">{e(item.where)}</td>',
        f"<td>{e(item.virus)}</td>",
        f"<td>{e(item.why)}</td>",
        f"<td>{'rescan' if item.rerun else 'decide'}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _cards(report: Report) -> str:
    s = report.summary
    deferred_count = sum(1 for t in report.targets if deferred(t))
    cards = [
        ("servers", s.servers),
        ("targets", s.targets),
        ("clean", s.clean),
        ("infected", s.infected),
        ("failed", s.failed),
        ("skipped", s.skipped),
        *([("of them deferred", deferred_count)] if deferred_count else []),
        ("infected files", s.infected_files),
    ]
    cards += [(f"outcome {k}", v) for k, v in s.outcomes.items()]
    if s.delta is not None:
        delta = s.delta
        cards += [("new", delta.new), ("recurring", delta.recurring), ("resolved", delta.resolved)]
    if has_accepted(report):
        cards.append(("accepted files", s.accepted))
    if report.run.canaries:
        cards.append(("unverified", s.unverified))
    html_cards = "".join(
        f'<div class="card"><b>{e(v)}</b><span>{e(k)}</span></div>' for k, v in cards
    )
    return f'<div class="cards">{html_cards}</div>'


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
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{e(label[:22])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{width}" height="{row_h - 6}" fill="#0969da">'
            f"<title>{e(label)}: {e(shown)}</title></rect>"
            f'<text x="{label_w + width + 4}" y="{y + 15}">{e(shown)}</text>'
        )
    total_w = label_w + bar_w + 80
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{height}" '
        f'viewBox="0 0 {total_w} {height}" font-size="12" role="img">' + "".join(rows) + "</svg>"
    )
