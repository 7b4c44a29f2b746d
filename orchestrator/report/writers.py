"""Render a Report in the chosen formats and write the files atomically.

Every file is rendered from the one Report before anything is written, then each goes to a
temporary file in the output directory and is renamed over its final name, so a reader never
sees a half-written file and a failed render changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path

from orchestrator.errors import ConfigError
from orchestrator.report.encode import report_to_dict
from orchestrator.report.html import report_html
from orchestrator.report.junit import junit_xml
from orchestrator.report.model import Report
from orchestrator.report.prometheus import prometheus_text
from orchestrator.report.sarif import sarif_dict
from orchestrator.report.tabular import infected_csv, targets_csv

Renderer = Callable[[Report], str]


def report_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=False) + "\n"


def report_sarif(report: Report) -> str:
    return json.dumps(sarif_dict(report), indent=2, ensure_ascii=False) + "\n"


#: format name -> (file name, renderer), in the order the files are written and returned.
OUTPUTS: dict[str, tuple[tuple[str, Renderer], ...]] = {
    "json": (("report.json", report_json),),
    "csv": (("targets.csv", targets_csv), ("infected.csv", infected_csv)),
    "html": (("report.html", report_html),),
    "junit": (("junit.xml", junit_xml),),
    "prometheus": (("clamfleet.prom", prometheus_text),),
    "sarif": (("report.sarif", report_sarif),),
}
FORMATS: tuple[str, ...] = tuple(OUTPUTS)
DEFAULT_FORMATS: tuple[str, ...] = ("json", "csv", "html")
FILE_MODE = 0o644


def render(report: Report, formats: Collection[str] = DEFAULT_FORMATS) -> dict[str, str]:
    """File name -> content for `formats` (json always), in FORMATS order."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        allowed = ", ".join(FORMATS)
        raise ConfigError(f"unknown format {', '.join(sorted(unknown))} (allowed: {allowed})")
    wanted = {"json", *formats}
    return {
        name: renderer(report)
        for fmt in FORMATS
        if fmt in wanted
        for name, renderer in OUTPUTS[fmt]
    }


def write_report(
    report: Report, out_dir: Path, formats: Collection[str] = DEFAULT_FORMATS
) -> list[Path]:
    """Write the report in `formats` (report.json always, first) into `out_dir`."""
    contents = render(report, formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, text in contents.items():
            staged.append((_stage(out_dir, name, text), out_dir / name))
        for temp, final in staged:
            os.replace(temp, final)
    finally:
        for temp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    return [final for _, final in staged]


def _stage(directory: Path, name: str, text: str) -> str:
    """A temporary file beside `name` holding `text`, flushed to disk; returns its path."""
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, FILE_MODE)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return temp
