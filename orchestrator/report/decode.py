"""report.json document -> Report. Every error names the file and the field path.

Keys this version does not know are ignored (reports only ever grow additively); missing keys,
wrong types, unknown enum values and a summary that disagrees with the targets are errors.
Keys added later than the first version (accepted findings, canaries) may be missing: a report
of an earlier version (a baseline from before an upgrade) still reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import date, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.errors import ConfigError
from orchestrator.model import (
    Acceptance,
    AcceptedInfo,
    Action,
    CanaryInfo,
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    Outcome,
    PacingSample,
    RunInfo,
    RunWindow,
    ScanStats,
    ScanType,
    ServerPacing,
    StaleEntry,
    Status,
    Target,
    TargetResult,
)
from orchestrator.report.model import (
    SCHEMA,
    Delta,
    Report,
    ResolvedFile,
    Summary,
    summarize,
    utc_second,
)
from orchestrator.report.trend import NightPoint, ServerPoint, Trend

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")
DELTAS = ("new", "recurring")
#: Summary keys a report of an earlier version may lack.
LATER_SUMMARY_KEYS = ("accepted", "unverified")


class _Reader:
    """Typed access to a JSON document; failures become ConfigErrors naming file and field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.source, field=where or None)

    def obj(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {_kind(value)}")
        return value

    def key(self, obj: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in obj:
            raise self.fail(where, f"missing key '{key}'")
        return obj[key]

    def array(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {_kind(value)}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {_kind(value)}")
        return value

    def integer(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected an integer, got {_kind(value)}")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"expected a number, got {_kind(value)}")
        return float(value)

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {_kind(value)}")
        return value

    def time(self, value: Any, where: str) -> datetime:
        text = self.text(value, where)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(where, f"not an ISO 8601 timestamp: {text!r}") from None
        if moment.tzinfo is None:
            raise self.fail(where, f"timestamp without a time zone: {text!r}")
        return utc_second(moment)

    def date(self, value: Any, where: str) -> date:
        text = self.text(value, where)
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise self.fail(where, f"not a date YYYY-MM-DD: {text!r}") from None

    def enum(self, cls: type[E], value: Any, where: str, label: str) -> E:
        text = self.text(value, where)
        try:
            return cls(text)
        except ValueError:
            raise self.fail(where, f"unknown {label} {text!r}") from None

    def optional(self, read: Callable[[Any, str], T], value: Any, where: str) -> T | None:
        return None if value is None else read(value, where)

    def field(self, obj: Mapping[str, Any], key: str, where: str) -> tuple[Any, str]:
        """The value of `key` and its field path."""
        return self.key(obj, key, where), f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


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
    r = _Reader(source)
    doc = r.obj(d, "")
    schema, where = r.field(doc, "schema", "")
    if schema != SCHEMA:
        raise r.fail(where, f"unsupported schema {schema!r} (expected {SCHEMA!r})")
    run = _run(r, *r.field(doc, "run", ""))
    targets = tuple(
        _target(r, t, f"targets[{i}]") for i, t in enumerate(r.array(*r.field(doc, "targets", "")))
    )
    summary = _summary(r, *r.field(doc, "summary", ""), targets=targets)
    resolved = tuple(
        _resolved(r, f, f"resolved[{i}]")
        for i, f in enumerate(r.array(doc.get("resolved") or [], "resolved"))
    )
    history = r.optional(lambda v, w: _trend(r, v, w), doc.get("history"), "history")
    return Report(run=run, summary=summary, targets=targets, resolved=resolved, history=history)


def _run(r: _Reader, value: Any, where: str) -> RunInfo:
    run = r.obj(value, where)

    def get(key: str) -> tuple[Any, str]:
        return r.field(run, key, where)

    servers = run.get("servers") or []
    return RunInfo(
        id=r.text(*get("id")),
        tool_version=r.text(*get("tool_version")),
        started_at=r.time(*get("started_at")),
        finished_at=r.optional(r.time, *get("finished_at")),
        inventory=r.text(*get("inventory")),
        shard=r.text(*get("shard")),
        dry_run=r.boolean(*get("dry_run")),
        servers=tuple(
            r.text(s, f"{where}.servers[{i}]")
            for i, s in enumerate(r.array(servers, f"{where}.servers"))
        ),
        fleet_id=r.optional(r.text, run.get("fleet_id"), f"{where}.fleet_id") or "",
        rerun_of=r.optional(r.text, run.get("rerun_of"), f"{where}.rerun_of"),
        shard_servers=tuple(
            r.text(s, f"{where}.shard_servers[{i}]")
            for i, s in enumerate(r.array(run.get("shard_servers") or [], f"{where}.shard_servers"))
        ),
        pacing={
            name: _pacing(r, p, f"{where}.pacing.{name}")
            for name, p in r.obj(run.get("pacing") or {}, f"{where}.pacing").items()
        },
        canaries={
            name: _canary(r, c, f"{where}.canaries.{name}")
            for name, c in r.obj(run.get("canaries") or {}, f"{where}.canaries").items()
        },
        accepted=r.optional(
            lambda v, w: _accepted_info(r, v, w), run.get("accepted"), f"{where}.accepted"
        ),
        window=r.optional(partial(_window, r), run.get("window"), f"{where}.window"),
    )


def _canary(r: _Reader, value: Any, where: str) -> CanaryInfo:
    obj = r.obj(value, where)

    def text(key: str) -> str:
        return r.text(*r.field(obj, key, where))

    return CanaryInfo(
        account=text("account"), path=text("path"), virus=text("virus"), by=text("by")
    )


def _accepted_info(r: _Reader, value: Any, where: str) -> AcceptedInfo:
    obj = r.obj(value, where)
    stale, stale_where = r.field(obj, "stale", where)
    return AcceptedInfo(
        source=r.text(*r.field(obj, "source", where)),
        entries=r.integer(*r.field(obj, "entries", where)),
        stale=tuple(
            _stale(r, e, f"{stale_where}[{i}]") for i, e in enumerate(r.array(stale, stale_where))
        ),
    )


def _stale(r: _Reader, value: Any, where: str) -> StaleEntry:
    obj = r.obj(value, where)
    when, when_where = r.field(obj, "when", where)
    return StaleEntry(
        line=r.integer(*r.field(obj, "line", where)),
        reason=r.text(*r.field(obj, "reason", where)),
        expires=r.date(*r.field(obj, "expires", where)),
        when={k: r.text(v, f"{when_where}.{k}") for k, v in r.obj(when, when_where).items()},
    )


def _window(r: _Reader, value: Any, where: str) -> RunWindow:
    obj = r.obj(value, where)

    def get(key: str) -> tuple[Any, str]:
        return r.field(obj, key, where)

    text, end_where = get("end")
    r.time(text, end_where)  # an aware ISO 8601 timestamp (the checks and their messages)
    return RunWindow(
        end=datetime.fromisoformat(r.text(text, end_where)),  # with its own offset kept
        timezone=r.text(*get("timezone")),
        source=r.text(*get("source")),
    )


def _pacing(r: _Reader, value: Any, where: str) -> ServerPacing:
    obj = r.obj(value, where)

    def get(key: str) -> tuple[Any, str]:
        return r.field(obj, key, where)

    rows, rows_where = get("history")
    return ServerPacing(
        max_load=r.optional(r.number, *get("max_load")),
        cap=r.integer(*get("cap")),
        peak_load=r.optional(r.number, *get("peak_load")),
        seconds_over=r.number(*get("seconds_over")),
        readings=r.integer(*get("readings")),
        failed_readings=r.integer(*get("failed_readings")),
        history=tuple(
            _sample(r, row, f"{rows_where}[{i}]") for i, row in enumerate(r.array(rows, rows_where))
        ),
    )


def _sample(r: _Reader, value: Any, where: str) -> PacingSample:
    row = r.array(value, where)
    if len(row) != 4:
        raise r.fail(where, "expected [t, running, limit, load]")
    return PacingSample(
        t=r.number(row[0], f"{where}[0]"),
        running=r.integer(row[1], f"{where}[1]"),
        limit=r.integer(row[2], f"{where}[2]"),
        load=r.optional(r.number, row[3], f"{where}[3]"),
    )


def target_from_dict(value: Any, source: str) -> TargetResult:
    """One target object of report.json (`encode.target_to_dict`'s output) on its own."""
    return _target(_Reader(source), value, "")


def _target(r: _Reader, value: Any, where: str) -> TargetResult:
    obj = r.obj(value, where)

    def get(key: str) -> tuple[Any, str]:
        return r.field(obj, key, where)

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


def _scan(r: _Reader, value: Any, where: str) -> ScanStats:
    obj = r.obj(value, where)

    def count(key: str) -> int:
        return r.integer(*r.field(obj, key, where))

    return ScanStats(
        time_started=r.optional(r.integer, *r.field(obj, "time_started", where)),
        scanned_file_count=count("scanned_file_count"),
        scanned_file_size=count("scanned_file_size"),
        total_file_count=count("total_file_count"),
    )


def _file(r: _Reader, value: Any, where: str) -> InfectedFile:
    obj = r.obj(value, where)

    def get(key: str) -> tuple[Any, str]:
        return r.field(obj, key, where)

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


def _acceptance(r: _Reader, value: Any, where: str) -> Acceptance:
    obj = r.obj(value, where)
    return Acceptance(
        reason=r.text(*r.field(obj, "reason", where)),
        expires=r.date(*r.field(obj, "expires", where)),
    )


def _error(r: _Reader, value: Any, where: str) -> ErrorInfo:
    obj = r.obj(value, where)
    return ErrorInfo(
        kind=r.enum(ErrorKind, *r.field(obj, "kind", where), "error kind"),
        message=r.text(*r.field(obj, "message", where)),
    )


def _resolved(r: _Reader, value: Any, where: str) -> ResolvedFile:
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


def _summary(r: _Reader, value: Any, where: str, *, targets: tuple[TargetResult, ...]) -> Summary:
    """The summary as computed from the targets; one that disagrees with them is an error."""
    obj = r.obj(value, where)
    delta = r.optional(lambda v, w: _delta(r, v, w), obj.get("delta"), f"{where}.delta")
    expected = summarize(targets, delta)
    for key, want in asdict(expected).items():
        if key == "delta" or (key in LATER_SUMMARY_KEYS and key not in obj):
            continue
        got, at = r.field(obj, key, where)
        if got != want:
            raise r.fail(at, f"{got!r} disagrees with the targets ({want!r})")
    return expected


def _delta(r: _Reader, value: Any, where: str) -> Delta:
    obj = r.obj(value, where)

    def count(key: str) -> int:
        return r.integer(*r.field(obj, key, where))

    return Delta(new=count("new"), recurring=count("recurring"), resolved=count("resolved"))


def _trend(r: _Reader, value: Any, where: str) -> Trend:
    obj = r.obj(value, where)
    nights, nights_where = r.field(obj, "nights", where)
    servers, servers_where = r.field(obj, "servers", where)
    return Trend(
        nights=tuple(
            _night(r, n, f"{nights_where}[{i}]")
            for i, n in enumerate(r.array(nights, nights_where))
        ),
        servers={
            name: tuple(
                _server_point(r, p, f"{servers_where}.{name}[{i}]")
                for i, p in enumerate(r.array(points, f"{servers_where}.{name}"))
            )
            for name, points in r.obj(servers, servers_where).items()
        },
    )


def _night(r: _Reader, value: Any, where: str) -> NightPoint:
    obj = r.obj(value, where)

    def get(key: str) -> tuple[Any, str]:
        return r.field(obj, key, where)

    return NightPoint(
        run_id=r.text(*get("run_id")),
        started_at=r.time(*get("started_at")),
        exit_code=r.integer(*get("exit_code")),
        targets=r.integer(*get("targets")),
        infected_files=r.integer(*get("infected_files")),
        new=r.optional(r.integer, *get("new")),
        failed=r.integer(*get("failed")),
        wall_s=r.optional(r.number, *get("wall_s")),
    )


def _server_point(r: _Reader, value: Any, where: str) -> ServerPoint:
    obj = r.obj(value, where)
    return ServerPoint(
        started_at=r.time(*r.field(obj, "started_at", where)),
        scan_s=r.number(*r.field(obj, "scan_s", where)),
        bytes=r.integer(*r.field(obj, "bytes", where)),
    )
