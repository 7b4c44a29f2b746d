"""report.json's run block (metadata, pacing, canaries, accepted findings, the window) and its
history (the last nights' trend) -> values, through `Reader`."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from orchestrator.model import (
    AcceptedInfo,
    CanaryInfo,
    Downtime,
    PacingSample,
    RunInfo,
    RunWindow,
    ServerPacing,
    StaleEntry,
)
from orchestrator.report.reader import Reader
from orchestrator.report.trend import NightPoint, ServerPoint, Trend


def read_run(r: Reader, value: Any, where: str) -> RunInfo:
    run = r.obj(value, where)
    get = r.fields(run, where)
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
        canaries={
            name: _canary(r, c, f"{where}.canaries.{name}")
            for name, c in r.obj(run.get("canaries") or {}, f"{where}.canaries").items()
        },
        accepted=r.optional(
            lambda v, w: _accepted_info(r, v, w), run.get("accepted"), f"{where}.accepted"
        ),
        window=r.optional(partial(_window, r), run.get("window"), f"{where}.window"),
    )


def _canary(r: Reader, value: Any, where: str) -> CanaryInfo:
    obj = r.obj(value, where)

    def text(key: str) -> str:
        return r.text(*r.field(obj, key, where))

    return CanaryInfo(
        account=text("account"), path=text("path"), virus=text("virus"), by=text("by")
    )


def _accepted_info(r: Reader, value: Any, where: str) -> AcceptedInfo:
    obj = r.obj(value, where)
    stale, stale_where = r.field(obj, "stale", where)
    return AcceptedInfo(
        source=r.text(*r.field(obj, "source", where)),
        entries=r.integer(*r.field(obj, "entries", where)),
        stale=tuple(
            _stale(r, e, f"{stale_where}[{i}]") for i, e in enumerate(r.array(stale, stale_where))
        ),
    )


def _stale(r: Reader, value: Any, where: str) -> StaleEntry:
    obj = r.obj(value, where)
    when, when_where = r.field(obj, "when", where)
    return StaleEntry(
        line=r.integer(*r.field(obj, "line", where)),
        reason=r.text(*r.field(obj, "reason", where)),
        expires=r.date(*r.field(obj, "expires", where)),
        when={k: r.text(v, f"{when_where}.{k}") for k, v in r.obj(when, when_where).items()},
    )


def _window(r: Reader, value: Any, where: str) -> RunWindow:
    obj = r.obj(value, where)
    get = r.fields(obj, where)
    text, end_where = get("end")
    r.time(text, end_where)  # an aware ISO 8601 timestamp (the checks and their messages)
    return RunWindow(
        end=datetime.fromisoformat(r.text(text, end_where)),  # with its own offset kept
        timezone=r.text(*get("timezone")),
        source=r.text(*get("source")),
    )


def _downtime(r: Reader, value: Any, where: str) -> Downtime:
    obj = r.obj(value, where)
    get = r.fields(obj, where)
    return Downtime(
        down_at=r.time(*get("down_at")),
        back_at=r.optional(r.time, *get("back_at")),
        seconds=r.number(*get("down_s")),
        gave_up=r.boolean(*get("gave_up")),
    )


def _pacing(r: Reader, value: Any, where: str) -> ServerPacing:
    obj = r.obj(value, where)
    get = r.fields(obj, where)
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


def _sample(r: Reader, value: Any, where: str) -> PacingSample:
    row = r.array(value, where)
    if len(row) != 4:
        raise r.fail(where, "expected [t, running, limit, load]")
    return PacingSample(
        t=r.number(row[0], f"{where}[0]"),
        running=r.integer(row[1], f"{where}[1]"),
        limit=r.integer(row[2], f"{where}[2]"),
        load=r.optional(r.number, row[3], f"{where}[3]"),
    )


def read_trend(r: Reader, value: Any, where: str) -> Trend:
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


def _night(r: Reader, value: Any, where: str) -> NightPoint:
    obj = r.obj(value, where)
    get = r.fields(obj, where)
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


def _server_point(r: Reader, value: Any, where: str) -> ServerPoint:
    obj = r.obj(value, where)
    return ServerPoint(
        started_at=r.time(*r.field(obj, "started_at", where)),
        scan_s=r.number(*r.field(obj, "scan_s", where)),
        bytes=r.integer(*r.field(obj, "bytes", where)),
    )
