"""Inline SVG charts of load-aware pacing: per server, load and concurrency over the run.

One chart per paced server, on one y axis (load and scans are both "runnable processes"): the
1-minute load (orange line), the concurrency limit (blue steps), the scans running (grey
steps) and the ceiling `max` (dashed red). A failed reading leaves a gap in the load line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape

from orchestrator.model import PacingSample, ServerPacing

WIDTH, HEIGHT, PAD_L, PAD_B, PAD_T, PAD_R = 420, 170, 34, 22, 8, 10
LOAD, LIMIT, RUNNING, CEILING = "#bc4c00", "#0969da", "#8c959f", "#cf222e"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def pacing_charts(pacing: Mapping[str, ServerPacing]) -> str:
    if not pacing:
        return '<p class="empty">No server was load-paced.</p>'
    figures = []
    for server, p in pacing.items():
        caption = (
            f"{server}: load max {p.max_load:g}, peak {_num(p.peak_load)}, "
            f"{p.seconds_over:g} s over max, cap {p.cap}"
            if p.max_load is not None
            else f"{server}: fixed cap {p.cap}"
        )
        if p.failed_readings:
            caption += f", {p.failed_readings} failed readings (fixed cap meanwhile)"
        figures.append(f"<figure><figcaption>{_e(caption)}</figcaption>{_chart(p)}</figure>")
    legend = (
        f'<p class="meta"><span style="color:{LOAD}">&#9632; 1-minute load</span> '
        f'<span style="color:{LIMIT}">&#9632; concurrency limit</span> '
        f'<span style="color:{RUNNING}">&#9632; scans running</span> '
        f'<span style="color:{CEILING}">&#9632; load max</span></p>'
    )
    return legend + '<div class="charts">' + "".join(figures) + "</div>"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def _chart(p: ServerPacing) -> str:
    samples = p.history
    if not samples:
        return '<p class="empty">no readings</p>'
    t_end = max(samples[-1].t, 1e-9)
    loads = [s.load for s in samples if s.load is not None]
    top = max([float(p.cap), p.max_load or 0.0, *loads]) * 1.1 or 1.0
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def x(t: float) -> float:
        return round(PAD_L + plot_w * t / t_end, 1)

    def y(v: float) -> float:
        return round(PAD_T + plot_h * (1 - v / top), 1)

    parts = [
        f'<line x1="{PAD_L}" y1="{y(0)}" x2="{WIDTH - PAD_R}" y2="{y(0)}" stroke="#d1d9e0"/>',
        f'<text x="{PAD_L - 4}" y="{y(0) + 4}" text-anchor="end">0</text>',
        f'<text x="{PAD_L - 4}" y="{y(top / 1.1) + 4}" text-anchor="end">{top / 1.1:.3g}</text>',
        f'<text x="{WIDTH - PAD_R}" y="{HEIGHT - 6}" text-anchor="end">{_clock(t_end)}</text>',
        f'<text x="{PAD_L}" y="{HEIGHT - 6}">0:00</text>',
    ]
    if p.max_load is not None:
        parts.append(
            f'<line x1="{PAD_L}" y1="{y(p.max_load)}" x2="{WIDTH - PAD_R}" '
            f'y2="{y(p.max_load)}" stroke="{CEILING}" stroke-dasharray="4 3"/>'
        )
    parts.append(_steps(samples, lambda s: s.running, x, y, RUNNING))
    parts.append(_steps(samples, lambda s: s.limit, x, y, LIMIT))
    for run in _load_runs(samples):
        points = " ".join(f"{x(s.t)},{y(s.load or 0.0)}" for s in run)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{LOAD}" stroke-width="1.5"/>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-size="11" role="img">' + "".join(parts) + "</svg>"
    )


def _steps(
    samples: Sequence[PacingSample],
    get: Callable[[PacingSample], float],
    x: Callable[[float], float],
    y: Callable[[float], float],
    color: str,
) -> str:
    """A step line: a value holds until the next reading."""
    points = []
    for i, s in enumerate(samples):
        if i:
            points.append(f"{x(s.t)},{y(get(samples[i - 1]))}")
        points.append(f"{x(s.t)},{y(get(s))}")
    return f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}"/>'


def _load_runs(samples: Sequence[PacingSample]) -> list[list[PacingSample]]:
    """Stretches of good readings: a failed reading breaks the line rather than inventing one."""
    runs: list[list[PacingSample]] = [[]]
    for s in samples:
        if s.load is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(s)
    return [r for r in runs if r]


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
