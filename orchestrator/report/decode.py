"""report.json document -> Report. Every error names the file and the field path.

Keys this version does not know are ignored (reports only ever grow additively); missing keys,
wrong types, unknown enum values and a summary that disagrees with the targets are errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.errors import ConfigError
from orchestrator.model import (
    Action,
    Downtime,
    ErrorInfo,
    ErrorKind,
    InfectedFile,
    Outcome,
    PacingSample,
    RunInfo,
    ScanStats,
    ScanType,
    ServerPacing,
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

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")
DELTAS = ("new", "recurring")


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
    return Report(run=run, summary=summary, targets=targets, resolved=resolved)


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
        outages={
            name: tuple(
                _downtime(r, d, f"{where}.outages.{name}[{i}]")
                for i, d in enumerate(r.array(stretches, f"{where}.outages.{name}"))
            )
            for name, stretches in r.obj(run.get("outages") or {}, f"{where}.outages").items()
        },
    )


def _downtime(r: _Reader, value: Any, where: str) -> Downtime:
    obj = r.obj(value, where)

    def get(key: str) -> tuple[Any, str]:
        return r.field(obj, key, where)

    return Downtime(
        down_at=r.time(*get("down_at")),
        back_at=r.optional(r.time, *get("back_at")),
        seconds=r.number(*get("down_s")),
        gave_up=r.boolean(*get("gave_up")),
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
    return InfectedFile(
        path=r.text(*get("path")),
        virus=r.text(*get("virus")),
        action=r.enum(Action, *get("action"), "action"),
        outcome=r.enum(Outcome, *get("outcome"), "outcome"),
        message=r.optional(r.text, *get("message")),
        delta=delta,
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
        if key == "delta":
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
