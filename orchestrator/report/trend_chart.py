"""Inline SVG of the history's trend for report.html: the last nights, and scan time per GB.

Four bar charts, one bar per night, oldest on the left and this night on the right: infected
files, new files (no bar on a night without a comparison), failed targets, and wall time. Then
a table, one row per server, of its scan time per GB tonight against the median of its earlier
nights, with a sparkline; the servers whose scans slowed down most come first.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from html import escape

from orchestrator.report.trend import NightPoint, Trend

WIDTH, HEIGHT, PAD_L, PAD_B, PAD_T, PAD_R = 420, 150, 44, 20, 8, 8
BAR, NEW, FAILED, WALL, SPARK = "#cf222e", "#bc4c00", "#9a6700", "#0969da", "#0969da"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def trend_section(trend: Trend) -> str:
    nights = trend.nights
    first, last = nights[0].started_at, nights[-1].started_at
    caption = f"{len(nights)} nights, {first:%Y-%m-%d} to {last:%Y-%m-%d} (this night on the right)"
    charts = [
        ("Infected files", BAR, lambda n: float(n.infected_files), "{:g}"),
        ("New infected files", NEW, lambda n: None if n.new is None else float(n.new), "{:g}"),
        ("Failed targets", FAILED, lambda n: float(n.failed), "{:g}"),
        ("Wall time", WALL, lambda n: n.wall_s, None),
    ]
    figures = "".join(
        f"<figure><figcaption>{_e(title)}</figcaption>{_bars(nights, get, color, fmt)}</figure>"
        for title, color, get, fmt in charts
    )
    return (
        f'<p class="meta">{_e(caption)}</p><div class="charts">{figures}</div>'
        f"<h3>Scan time per GB, per server</h3>{_speed_table(trend)}"
    )


def _duration(seconds: float) -> str:
    """Short enough for an axis label: `1h29`, `12m`, `40s`."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}" if hours else f"{minutes}m" if minutes else f"{secs}s"


def _bars(
    nights: Sequence[NightPoint],
    get: Callable[[NightPoint], float | None],
    color: str,
    fmt: str | None,
) -> str:
    values = [get(n) for n in nights]
    top = max((v for v in values if v is not None), default=0.0) or 1.0

    def shown(v: float) -> str:
        return _duration(v) if fmt is None else fmt.format(v)

    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    slot = plot_w / max(len(nights), 1)
    parts = [
        f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{WIDTH - PAD_R}" y2="{PAD_T + plot_h}"'
        ' stroke="#d1d9e0"/>',
        f'<text x="{PAD_L - 4}" y="{PAD_T + 10}" text-anchor="end">{_e(shown(top))}</text>',
        f'<text x="{PAD_L - 4}" y="{PAD_T + plot_h}" text-anchor="end">0</text>',
        f'<text x="{PAD_L}" y="{HEIGHT - 4}">{nights[0].started_at:%m-%d}</text>',
        f'<text x="{WIDTH - PAD_R}" y="{HEIGHT - 4}" text-anchor="end">'
        f"{nights[-1].started_at:%m-%d}</text>",
    ]
    for i, (night, value) in enumerate(zip(nights, values, strict=True)):
        label = f"{night.started_at:%Y-%m-%d %H:%M}: "
        label += "no comparison" if value is None else shown(value)
        if value is None:
            parts.append(f"<title>{_e(label)}</title>")
            continue
        height = round(plot_h * value / top, 1)
        x = round(PAD_L + i * slot + slot * 0.15, 1)
        parts.append(
            f'<rect x="{x}" y="{round(PAD_T + plot_h - height, 1)}" width="{round(slot * 0.7, 1)}"'
            f' height="{height}" fill="{color}"><title>{_e(label)}</title></rect>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-size="11" role="img">' + "".join(parts) + "</svg>"
    )


def _speed_rows(trend: Trend) -> list[tuple[str, list[float], float | None, float | None]]:
    """(server, its s/GB per night, tonight's, the median of the earlier nights)."""
    rows = []
    for server, points in trend.servers.items():
        series = [p.seconds_per_gb for p in points]
        known = [v for v in series if v is not None]
        tonight = series[-1] if series else None
        earlier = [v for v in series[:-1] if v is not None]
        rows.append((server, known, tonight, statistics.median(earlier) if earlier else None))
    return rows


def _change(tonight: float | None, before: float | None) -> float | None:
    if tonight is None or not before:
        return None
    return (tonight - before) / before


def _speed_table(trend: Trend) -> str:
    rows = _speed_rows(trend)
    if not rows:
        return '<p class="empty">None.</p>'
    # the largest slowdown first; servers without a comparison last, in report order
    ranked = sorted(
        rows, key=lambda r: -(c if (c := _change(r[2], r[3])) is not None else float("-inf"))
    )
    body = []
    for server, known, tonight, before in ranked:
        change = _change(tonight, before)
        shown = "" if change is None else f"{change:+.0%}"
        body.append(
            f'<tr><td>{_e(server)}</td><td class="n">{_e(_rate(tonight))}</td>'
            f'<td class="n">{_e(_rate(before))}</td><td class="n">{_e(shown)}</td>'
            f"<td>{_spark(known)}</td></tr>"
        )
    head = (
        '<tr><th>server</th><th class="n">s/GB tonight</th>'
        '<th class="n">median before</th><th class="n">change</th><th>nights</th></tr>'
    )
    return f"<table>\n<thead>{head}</thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _spark(values: Sequence[float], width: int = 160, height: int = 24) -> str:
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(
        f"{round(i * step, 1)},{round(2 + (height - 4) * (1 - (v - low) / span), 1)}"
        for i, v in enumerate(values)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><polyline points="{points}" fill="none" '
        f'stroke="{SPARK}" stroke-width="1.5"/></svg>'
    )
