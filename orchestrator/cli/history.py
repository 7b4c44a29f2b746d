"""`clamfleet history`: the nights a history holds, as a table, JSON or CSV; or prune it.

    clamfleet history --history FILE [--nights N] [--server GLOB]... [--account NAME]
                      [--format table|json|csv] [--keep-nights N]

One row per night, newest first: when it started, its exit code, targets, infected files (once
per account), new and resolved files (empty on a night without a comparison: the history's
first), failed targets and wall time. `--server` and `--account` count only those targets (and
list only nights that scanned one); `--account` also lists the account's files of each night.
JSON is an array, one object per night, newest first. `--keep-nights N` removes every night but
the newest N and prints what it did instead of the table (the deploy recipes run it nightly).

The history module is imported when the command runs, not with the parser (`--help` is fast).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.report.history_query import NightRow

COLUMNS = (
    "started_at",
    "exit_code",
    "targets",
    "infected_files",
    "new",
    "resolved",
    "failed",
    "wall_s",
    "shard",
    "run_id",
)
HEADINGS = ("date", "exit", "targets", "infected", "new", "resolved", "failed", "wall time")


def add_history_command(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--history", type=Path, required=True, metavar="FILE", help="the history to read"
    )
    p.add_argument("--nights", type=_positive, default=30, metavar="N", help="newest nights shown")
    p.add_argument(
        "--server",
        action="append",
        metavar="GLOB",
        help="count only servers whose name matches; repeatable (default: every server)",
    )
    p.add_argument(
        "--account",
        metavar="NAME",
        help="count only this account, and list its infected files night by night"
        " (default: every account)",
    )
    p.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="table for people; json: an array, one object per night, newest first; csv",
    )
    p.add_argument(
        "--keep-nights",
        type=_positive,
        metavar="N",
        help="remove every night but the newest N, and print only that (default: keep all)",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def history(args: argparse.Namespace) -> int:
    from orchestrator.report import history as store

    if args.keep_nights is not None:
        removed, kept = store.prune(args.history, args.keep_nights)
        print(f"{args.history}: removed {removed} nights, kept {kept}")
        return 0
    rows = store.nights(args.history, args.nights, args.server or (), args.account)
    if args.format == "json":
        print(json.dumps([night_dict(r) for r in rows], indent=2, ensure_ascii=False))
    elif args.format == "csv":
        print(nights_csv(rows), end="")
    else:
        print(nights_table(rows, args.account is not None))
    return 0


def night_dict(row: NightRow) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "run_id": row.run_id,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "shard": row.shard,
        "rerun_of": row.rerun_of,
        "exit_code": row.exit_code,
        "targets": row.targets,
        "infected_files": row.infected_files,
        "new": row.new,
        "resolved": row.resolved,
        "failed": row.failed,
        "wall_s": row.wall_s,
    }
    if row.files is not None:
        doc["files"] = [
            {
                "server": f.server,
                "scan_type": f.scan_type,
                "path": f.path,
                "virus": f.virus,
                "delta": f.delta,
                "first_seen": f.first_seen,
            }
            for f in row.files
        ]
    return doc


def nights_csv(rows: Sequence[NightRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        doc = night_dict(row)
        writer.writerow(["" if doc[c] is None else doc[c] for c in COLUMNS])
    return buffer.getvalue()


def _wall(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _cell(value: int | None) -> str:
    return "" if value is None else str(value)


def nights_table(rows: Sequence[NightRow], with_files: bool = False) -> str:
    if not rows:
        return "no night recorded (for this filter)"
    cells = [list(HEADINGS)]
    notes: dict[int, list[str]] = {}
    for row in rows:
        date = row.started_at.replace("T", " ").removesuffix("Z")[:16]
        if row.rerun_of:
            date += " (rerun)"
        counts = [row.exit_code, row.targets, row.infected_files, row.new, row.resolved, row.failed]
        cells.append([date, *(_cell(c) for c in counts), _wall(row.wall_s)])
        if with_files and row.files:
            notes[len(cells) - 1] = [
                f"    {f.delta or '':9} {f.server} {f.scan_type}: {f.path} ({f.virus}),"
                f" first seen {f.first_seen[:10]}"
                for f in row.files
            ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADINGS))]
    lines = []
    for i, row_cells in enumerate(cells):
        first = row_cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(row_cells[1:], widths[1:], strict=True))
        lines.append("  ".join([first, *rest]).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
        lines += notes.get(i, [])
    return "\n".join(lines)
