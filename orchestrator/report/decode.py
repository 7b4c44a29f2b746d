"""report.json document -> Report. Every error names the file and the field path.

Keys this version does not know are ignored (reports only ever grow additively); missing keys,
wrong types, unknown enum values and a summary that disagrees with the targets are errors.
Keys added later than the first version (accepted findings, canaries) may be missing: a report
of an earlier version (a baseline from before an upgrade) still reads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.model import (
    EXIT_INCOMPLETE,
    Acceptance,
    Action,
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    Outcome,
    RunInfo,
    ScanStats,
    ScanType,
    Status,
    Target,
    TargetResult,
)
from orchestrator.report.decode_run import read_run, read_trend
from orchestrator.report.model import (
    SCHEMA,
    Delta,
    Report,
    ResolvedFile,
    Summary,
    summarize,
)
from orchestrator.report.reader import Reader

DELTAS = ("new", "recurring")
#: Summary keys a report of an earlier version may lack.
LATER_SUMMARY_KEYS = ("accepted", "unverified")


def load_report(path: Path | str) -> Report:
    """Read a report.json; invalid JSON or another schema is a ConfigError naming the file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read report: {exc.strerror or exc}", file=source) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=source) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", file=source, line=exc.lineno) from None
    return report_from_dict(doc, source)


def report_from_dict(d: Any, source: str) -> Report:
    r = Reader(source)
    doc = r.obj(d, "")
    schema, where = r.field(doc, "schema", "")
    if schema != SCHEMA:
        raise r.fail(where, f"unsupported schema {schema!r} (expected {SCHEMA!r})")
    run = read_run(r, *r.field(doc, "run", ""))
    targets = tuple(
        _target(r, t, f"targets[{i}]") for i, t in enumerate(r.array(*r.field(doc, "targets", "")))
    )
    summary = _summary(r, *r.field(doc, "summary", ""), targets=targets, run=run)
    resolved = tuple(
        _resolved(r, f, f"resolved[{i}]")
        for i, f in enumerate(r.array(doc.get("resolved") or [], "resolved"))
    )
    history = r.optional(lambda v, w: read_trend(r, v, w), doc.get("history"), "history")
    return Report(run=run, summary=summary, targets=targets, resolved=resolved, history=history)


def target_from_dict(value: Any, source: str) -> TargetResult:
    """One target object of report.json (`encode.target_to_dict`'s output) on its own."""
    return _target(Reader(source), value, "")


def _target(r: Reader, value: Any, where: str) -> TargetResult:
    obj = r.obj(value, where)
    get = r.fields(obj, where)
    files, files_where = get("infected_files")
    return TargetResult(
        target=Target(
            server=r.text(*get("server")),
            account=r.text(*get("account")),
            scan_type=r.enum(ScanType, *get("scan_type"), "scan type"),
        ),
        status=r.enum(Status, *get("status"), "status"),
        scan=r.optional(lambda v, w: _scan(r, v, w), *get("scan")),
        infected_files=tuple(
            _file(r, f, f"{files_where}[{i}]") for i, f in enumerate(r.array(files, files_where))
        ),
        started_at=r.optional(r.time, *get("started_at")),
        finished_at=r.optional(r.time, *get("finished_at")),
        duration_s=r.optional(r.number, *get("duration_s")),
        api_calls=r.integer(*get("api_calls")),
        error=r.optional(lambda v, w: _error(r, v, w), *get("error")),
        verified=r.optional(r.boolean, obj.get("verified"), f"{where}.verified"),
    )


def _scan(r: Reader, value: Any, where: str) -> ScanStats:
    obj = r.obj(value, where)

    def count(key: str) -> int:
        return r.integer(*r.field(obj, key, where))

    return ScanStats(
        time_started=r.optional(r.integer, *r.field(obj, "time_started", where)),
        scanned_file_count=count("scanned_file_count"),
        scanned_file_size=count("scanned_file_size"),
        total_file_count=count("total_file_count"),
    )


def _file(r: Reader, value: Any, where: str) -> InfectedFile:
    obj = r.obj(value, where)
    get = r.fields(obj, where)
    delta = r.optional(r.text, obj.get("delta"), f"{where}.delta")
    if delta is not None and delta not in DELTAS:
        raise r.fail(f"{where}.delta", f"unknown delta {delta!r}")
    nights = r.optional(r.integer, obj.get("nights_seen"), f"{where}.nights_seen")
    if nights is not None and nights < 1:
        raise r.fail(f"{where}.nights_seen", f"must be at least 1, got {nights}")

    def acceptance(key: str) -> Acceptance | None:
        return r.optional(lambda v, w: _acceptance(r, v, w), obj.get(key), f"{where}.{key}")

    return InfectedFile(
        path=r.text(*get("path")),
        virus=r.text(*get("virus")),
        action=r.enum(Action, *get("action"), "action"),
        outcome=r.enum(Outcome, *get("outcome"), "outcome"),
        message=r.optional(r.text, *get("message")),
        delta=delta,
        first_seen=r.optional(r.time, obj.get("first_seen"), f"{where}.first_seen"),
        nights_seen=nights,
        accepted=acceptance("accepted"),
        expired_acceptance=acceptance("expired_acceptance"),
        canary=r.boolean(obj.get("canary", False), f"{where}.canary"),
    )


def _acceptance(r: Reader, value: Any, where: str) -> Acceptance:
    obj = r.obj(value, where)
    return Acceptance(
        reason=r.text(*r.field(obj, "reason", where)),
        expires=r.date(*r.field(obj, "expires", where)),
    )


def _error(r: Reader, value: Any, where: str) -> ErrorInfo:
    obj = r.obj(value, where)
    return ErrorInfo(
        kind=r.enum(ErrorKind, *r.field(obj, "kind", where), "error kind"),
        message=r.text(*r.field(obj, "message", where)),
    )


def _resolved(r: Reader, value: Any, where: str) -> ResolvedFile:
    obj = r.obj(value, where)

    def text(key: str) -> str:
        return r.text(*r.field(obj, key, where))

    return ResolvedFile(
        server=text("server"),
        account=text("account"),
        scan_type=r.enum(ScanType, *r.field(obj, "scan_type", where), "scan type"),
        path=text("path"),
        virus=text("virus"),
    )


def _summary(
    r: Reader, value: Any, where: str, *, targets: tuple[TargetResult, ...], run: RunInfo
) -> Summary:
    """The summary as computed from the targets; one that disagrees with them is an error. But
    a merged report with shards or servers missing says exit code 2 over clean targets (merge
    will not call a fleet clean that it has not seen whole): that reads back as written."""
    obj = r.obj(value, where)
    delta = r.optional(lambda v, w: _delta(r, v, w), obj.get("delta"), f"{where}.delta")
    expected = summarize(targets, delta)
    if not set(run.servers) <= {t.server for t in targets} and obj.get("exit_code") == (
        EXIT_INCOMPLETE
    ):
        expected = replace(expected, exit_code=max(expected.exit_code, EXIT_INCOMPLETE))
    for key, want in asdict(expected).items():
        if key == "delta" or (key in LATER_SUMMARY_KEYS and key not in obj):
            continue
        got, at = r.field(obj, key, where)
        if got != want:
            raise r.fail(at, f"{got!r} disagrees with the targets ({want!r})")
    return expected


def _delta(r: Reader, value: Any, where: str) -> Delta:
    obj = r.obj(value, where)

    def count(key: str) -> int:
        return r.integer(*r.field(obj, key, where))

    return Delta(new=count("new"), recurring=count("recurring"), resolved=count("resolved"))
