"""The benchmark's table: one row per run and the median of each column."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from measure import Row  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Table

COLUMNS: list[tuple[str, str, str]] = [
    # (header, Row attribute, format)
    ("targets", "targets", "{:.0f}"),
    ("servers", "servers", "{:.0f}"),
    ("wall s", "wall_s", "{:.2f}"),
    ("bound s", "bound_s", "{:.2f}"),
    ("wall/bound", "wall_over_bound", "{:.3f}"),
    ("CPU s/1k calls", "cpu_s_per_1k_calls", "{:.3f}"),
    ("calls/target", "calls_per_target", "{:.2f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.1f}"),
    ("base wall s", "base_wall_s", "{:.2f}"),
    ("base CPU s/1k", "base_cpu_s_per_1k_calls", "{:.3f}"),
    ("base RSS MiB", "base_peak_rss_mib", "{:.1f}"),
    ("CPU ratio", "cpu_ratio", "{:.2f}"),
    ("violations", "violations", "{:.0f}"),
]
PACED_COLUMNS: list[tuple[str, str, str]] = [
    ("paced CPU s/1k", "paced_cpu_s_per_1k_calls", "{:.3f}"),
    ("CPU ratio paced", "paced_cpu_ratio", "{:.2f}"),
]


def columns(rows: Sequence[Row]) -> list[tuple[str, str, str]]:
    """The table's columns; the paced baseline's only when it ran (--paced)."""
    paced = any(r.paced_cpu_s_per_1k_calls for r in rows)
    return COLUMNS + PACED_COLUMNS if paced else COLUMNS


def median_row(rows: Sequence[Row]) -> dict[str, float]:
    cols = columns(rows)
    return {attr: statistics.median(getattr(r, attr) for r in rows) for _, attr, _ in cols}


def render_table(rows: Sequence[Row]) -> str:
    cols = columns(rows)
    header = ["run", *(h for h, _, _ in cols)]
    body = [[str(r.run), *(f.format(getattr(r, a)) for _, a, f in cols)] for r in rows]
    med = median_row(rows)
    body.append(["median", *(f.format(med[a]) for _, a, f in cols)])
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
    lines = [" | ".join(x.rjust(w) for x, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(x.rjust(w) for x, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)
