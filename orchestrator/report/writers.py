"""Render a Report in the chosen formats and write the files atomically.

Every file is rendered from the one Report before anything is written, then each goes to a
temporary file in the output directory and is renamed over its final name, so a reader never
sees a half-written file and a failed render changes nothing.

A run owns the clamfleet files of its output directory: those of an earlier run that this run's
formats do not write (a junit.xml, a clamfleet.prom) are removed, so the folder never holds two
runs' stories. Only the file names of `OUTPUTS` are touched, nothing else in the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Collection
from functools import partial
from pathlib import Path

from orchestrator.errors import ConfigError
from orchestrator.report.encode import report_to_dict
from orchestrator.report.html import report_html
from orchestrator.report.junit import junit_xml
from orchestrator.report.model import Report
from orchestrator.report.prometheus import prometheus_text
from orchestrator.report.sarif import sarif_dict
from orchestrator.report.tabular import infected_csv, targets_csv

#: A Report in, the file's text out; report.html's renderer also takes `report_path=`.
Renderer = Callable[..., str]


class ReportWriteError(OSError):
    """Raised when a report file cannot be written (disk full, permissions): names the file."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(cause.errno, f"{path}: {cause.strerror or cause}")
        self.path = path


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
#: Every file name clamfleet writes into an output directory (and may therefore remove).
OWNED_FILES: frozenset[str] = frozenset(name for files in OUTPUTS.values() for name, _ in files)
DEFAULT_FORMATS: tuple[str, ...] = ("json", "csv", "html")
FILE_MODE = 0o644


def render(
    report: Report,
    formats: Collection[str] = DEFAULT_FORMATS,
    *,
    prometheus_per_target: bool = False,
    report_path: str | None = None,
) -> dict[str, str]:
    """File name -> content for `formats` (json always), in FORMATS order. `report_path`: where
    report.json goes, for the follow-up command report.html shows."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        allowed = ", ".join(FORMATS)
        raise ConfigError(f"unknown format {', '.join(sorted(unknown))} (allowed: {allowed})")
    wanted = {"json", *formats}
    outputs = dict(OUTPUTS)
    if prometheus_per_target:
        outputs["prometheus"] = (("clamfleet.prom", partial(prometheus_text, per_target=True)),)
    if report_path is not None:  # the page's follow-up command names it
        outputs["html"] = tuple(
            (name, partial(page, report_path=report_path)) for name, page in outputs["html"]
        )
    return {
        name: renderer(report)
        for fmt in FORMATS
        if fmt in wanted
        for name, renderer in outputs[fmt]
    }


def write_report(
    report: Report,
    out_dir: Path,
    formats: Collection[str] = DEFAULT_FORMATS,
    *,
    prometheus_per_target: bool = False,
) -> list[Path]:
    """Write the report in `formats` (report.json always, first) into `out_dir`.

    The files are staged first; then clamfleet files of an earlier run that this one does not
    write are removed, and the new ones renamed into place.
    """
    out_dir = Path(out_dir)
    contents = render(
        report,
        formats,
        prometheus_per_target=prometheus_per_target,
        report_path=report_json_path(out_dir),
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportWriteError(out_dir, exc) from exc
    staged: list[tuple[str, Path]] = []
    try:
        for name, text in contents.items():
            try:
                staged.append((_stage(out_dir, name, text), out_dir / name))
            except OSError as exc:
                raise ReportWriteError(out_dir / name, exc) from exc
        _remove_stale(out_dir, OWNED_FILES - contents.keys())
        for temp, final in staged:
            try:
                os.replace(temp, final)
            except OSError as exc:
                raise ReportWriteError(final, exc) from exc
    finally:
        for temp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    return [final for _, final in staged]


def report_json_path(out_dir: Path) -> str:
    """Where report.json of `out_dir` is, absolute: the follow-up command works from anywhere."""
    return os.path.abspath(Path(out_dir) / "report.json")


def _remove_stale(out_dir: Path, names: Collection[str]) -> None:
    """Remove these clamfleet files of an earlier run; a directory of that name is not ours."""
    for name in names:
        path = out_dir / name
        if path.is_symlink() or path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def prepare_out_dir(out_dir: Path) -> Path:
    """Create `out_dir` if missing and prove it writable, before the run sends any request.

    A run that scans the whole fleet and then cannot write its report wasted the night; and the
    crash would come after the verdict was known. Raises ConfigError naming the path (exit 3).
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{out_dir}: cannot create the report directory ({_reason(exc)})", field="--out"
        ) from None
    writable_dir(out_dir, field="--out")
    return out_dir


def writable_dir(directory: Path, *, field: str) -> None:
    """Raise ConfigError unless `directory` is a directory this process can create files in.

    Tried with a real file, not os.access(): that answers for root and read-only mounts alike.
    """
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        raise ConfigError(f"{directory}: {what}", field=field)
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".clamfleet-probe-")
    except OSError as exc:
        raise ConfigError(f"{directory}: not writable ({_reason(exc)})", field=field) from None
    os.close(fd)
    os.unlink(probe)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


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
