"""`clamfleet merge`: shard reports of one run -> the report one unsharded run would have written.

A report whose `run.rerun_of` is set (`--only-failed`) is not a shard: it is folded onto the
merged result, its targets replacing the same (server, account, scan_type) targets, or the
`*` row that stood for a server whose accounts could not be listed.

Canaries and accepted findings survive: `run.canaries` is the union, every clean target's
`verified` is recomputed over the merged targets (a host's canary may have been scanned in
another report), each file keeps its `accepted` / `canary` marks, and an accepted-findings entry
is stale only if it matched nothing in every report that used the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from orchestrator.errors import ConfigError
from orchestrator.model import (
    EXIT_INCOMPLETE,
    AcceptedInfo,
    CanaryInfo,
    Downtime,
    RunInfo,
    RunWindow,
    ServerPacing,
    Target,
    TargetResult,
)
from orchestrator.report.delta import count_delta
from orchestrator.report.model import Report, ResolvedFile, summarize
from orchestrator.report.verification import with_verification

#: The account of the row the runner writes when a server's accounts could not be listed.
ALL_ACCOUNTS = "*"


@dataclass(frozen=True, slots=True)
class MergeResult:
    report: Report
    missing_shards: tuple[int, ...]
    missing_servers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Shard:
    label: str
    indexes: frozenset[int]
    total: int


def parse_shard(text: str, label: str = "report") -> tuple[frozenset[int], int]:
    """`"2/4"` -> ({2}, 4); `"1,3/4"` (a partial merge) -> ({1, 3}, 4)."""
    head, sep, tail = text.partition("/")
    try:
        indexes = frozenset(int(part) for part in head.split(","))
        total = int(tail)
    except ValueError:
        indexes, total = frozenset(), 0
    if not sep or total < 1 or not indexes or not all(1 <= i <= total for i in indexes):
        raise ConfigError(f"{label}: invalid shard {text!r} (expected I/N)", field="run.shard")
    return indexes, total


def format_shard(indexes: Iterable[int], total: int) -> str:
    ordered = sorted(indexes)
    if ordered == list(range(1, total + 1)):
        return "1/1"
    return ",".join(map(str, ordered)) + f"/{total}"


def merge_reports(reports: Sequence[Report], sources: Sequence[str] | None = None) -> MergeResult:
    """Merge shard reports (and fold reruns); `sources` names the reports in error messages."""
    if not reports:
        raise ConfigError("no reports to merge")
    labels = list(sources) if sources else [_label(i, r) for i, r in enumerate(reports)]
    _check_same_fleet(reports, labels)
    bases = [(label, r) for label, r in zip(labels, reports, strict=True) if r.run.rerun_of is None]
    reruns = sorted(
        (r for r in reports if r.run.rerun_of is not None), key=lambda r: r.run.started_at
    )
    if not bases:
        raise ConfigError("every report is a rerun (--only-failed): nothing to fold them onto")
    shards = _check_shards(bases)
    servers = bases[0][1].run.servers
    targets = _union(bases)
    for rerun in reruns:
        targets = _fold(targets, rerun.targets)
    targets = _in_server_order(targets, servers)
    covered = frozenset().union(*(s.indexes for s in shards))
    total = shards[0].total
    run = _merged_run(reports, bases[0][1].run, format_shard(covered, total))
    targets = list(with_verification(run.canaries, targets))
    seen = {t.server for t in targets}
    missing_shards = tuple(i for i in range(1, total + 1) if i not in covered)
    missing_servers = tuple(s for s in servers if s not in seen)
    report = _with_delta(run, targets, reports)
    if (missing_shards or missing_servers) and report.summary.exit_code == 0:
        # Not every target is accounted for: the report must not say "all clean" (exit 2).
        report = replace(report, summary=replace(report.summary, exit_code=EXIT_INCOMPLETE))
    return MergeResult(report, missing_shards, missing_servers)


def _label(index: int, report: Report) -> str:
    return f"report {index + 1} (run {report.run.id}, shard {report.run.shard})"


def _check_same_fleet(reports: Sequence[Report], labels: Sequence[str]) -> None:
    first = reports[0].run.fleet_id
    for label, report in zip(labels, reports, strict=True):
        if report.run.fleet_id != first:
            raise ConfigError(
                f"reports of different runs: {labels[0]} is of fleet {first or '?'}, "
                f"{label} of fleet {report.run.fleet_id or '?'}"
            )


def _check_shards(bases: Sequence[tuple[str, Report]]) -> list[_Shard]:
    shards: list[_Shard] = []
    for label, report in bases:
        indexes, total = parse_shard(report.run.shard, label)
        shard = _Shard(label, indexes, total)
        for other in shards:
            if other.total != total:
                raise ConfigError(
                    f"reports of different shard counts: {other.label} is one of "
                    f"{other.total} shards, {label} one of {total}"
                )
            if other.indexes & indexes:
                both = format_shard(other.indexes & indexes, total)
                raise ConfigError(
                    f"overlapping shards: {other.label} and {label} both cover shard {both}"
                )
        shards.append(shard)
    return shards


def _union(bases: Sequence[tuple[str, Report]]) -> list[TargetResult]:
    owner: dict[Target, str] = {}
    targets: list[TargetResult] = []
    for label, report in bases:
        for t in report.targets:
            if t.target in owner:
                raise ConfigError(
                    f"overlapping reports: {owner[t.target]} and {label} both contain {t.target}"
                )
            owner[t.target] = label
            targets.append(t)
    return targets


def _fold(targets: list[TargetResult], rerun: Iterable[TargetResult]) -> list[TargetResult]:
    """Replace targets by the rerun's; a `*` row by every rerun target of its server."""
    position = {t.target: i for i, t in enumerate(targets)}
    slots: dict[int, list[TargetResult]] = {}
    extra: list[TargetResult] = []
    for t in rerun:
        wildcard = Target(t.server, ALL_ACCOUNTS, t.scan_type)
        index = position.get(t.target, position.get(wildcard))
        if index is None:
            extra.append(t)
        else:
            slots.setdefault(index, []).append(t)
    folded = [new for i, old in enumerate(targets) for new in slots.get(i, [old])]
    return folded + extra


def _in_server_order(targets: list[TargetResult], servers: Sequence[str]) -> list[TargetResult]:
    """Stable sort by the inventory position of the server; unknown servers keep their place
    after the known ones."""
    rank = {name: i for i, name in enumerate(servers)}
    return sorted(targets, key=lambda t: rank.get(t.server, len(rank)))


def _merged_run(reports: Sequence[Report], first: RunInfo, shard: str) -> RunInfo:
    ids = sorted(r.run.id for r in reports)
    finished = [r.run.finished_at for r in reports if r.run.finished_at is not None]
    return replace(
        first,
        id=hashlib.sha256("\n".join(["merge", *ids]).encode()).hexdigest()[:32],
        started_at=min(r.run.started_at for r in reports),
        finished_at=max(finished) if finished else None,
        shard=shard,
        dry_run=all(r.run.dry_run for r in reports),
        rerun_of=None,
        shard_servers=_union_in_order(first.servers, [r.run.shard_servers for r in reports]),
        pacing=_merged_pacing(reports),
        canaries=_merged_canaries(reports),
        accepted=_merged_accepted(reports),
        window=_merged_window(reports),
        outages=_merged_outages(reports),
    )


def _merged_canaries(reports: Sequence[Report]) -> dict[str, CanaryInfo]:
    merged: dict[str, CanaryInfo] = {}
    for report in reports:
        merged.update(report.run.canaries)
    return merged


def _merged_accepted(reports: Sequence[Report]) -> AcceptedInfo | None:
    """Stale: the entries no report that used the file found a match for."""
    used = [r.run.accepted for r in reports if r.run.accepted is not None]
    if not used:
        return None
    stale = [e for e in used[0].stale if all(e in other.stale for other in used[1:])]
    return replace(used[0], stale=tuple(stale))


def _merged_window(reports: Sequence[Report]) -> RunWindow | None:
    """The shards of one night share one window: the first shard's (an original before its
    rerun, which resolved its own window later)."""
    ordered = sorted(reports, key=lambda r: (r.run.rerun_of is not None, r.run.started_at))
    return next((r.run.window for r in ordered if r.run.window is not None), None)


def _union_in_order(order: Sequence[str], parts: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """Every server some merged report was given, in inventory order, unknown ones last."""
    given = [name for part in parts for name in part]
    known = [name for name in order if name in given]
    return tuple(dict.fromkeys([*known, *given]))


def _merged_pacing(reports: Sequence[Report]) -> dict[str, ServerPacing]:
    """Shards pace disjoint servers; a rerun's pacing of a server replaces the original's."""
    merged: dict[str, ServerPacing] = {}
    for report in sorted(reports, key=lambda r: (r.run.rerun_of is not None, r.run.started_at)):
        merged.update(report.run.pacing)
    return merged


def _merged_outages(reports: Sequence[Report]) -> dict[str, tuple[Downtime, ...]]:
    """Shards watch disjoint servers; a rerun's outages of a server are the night's too: every
    stretch is kept, in time order."""
    merged: dict[str, list[Downtime]] = {}
    for report in reports:
        for name, stretches in report.run.outages.items():
            merged.setdefault(name, []).extend(stretches)
    return {name: tuple(sorted(s, key=lambda d: d.down_at)) for name, s in merged.items()}


def _with_delta(run: RunInfo, targets: list[TargetResult], reports: Sequence[Report]) -> Report:
    """Keep the baseline comparison only when every merged report had one."""
    if not all(r.compared for r in reports):
        plain = [_strip_delta(t) for t in targets]
        return Report(run=run, summary=summarize(plain), targets=tuple(plain))
    present = {
        ResolvedFile(t.server, t.account, t.scan_type, f.path, f.virus)
        for t in targets
        for f in t.infected_files
    }
    resolved = tuple(dict.fromkeys(f for r in reports for f in r.resolved if f not in present))
    delta = count_delta(targets, len(resolved))
    return Report(
        run=run, summary=summarize(targets, delta), targets=tuple(targets), resolved=resolved
    )


def _strip_delta(t: TargetResult) -> TargetResult:
    if not any(f.delta for f in t.infected_files):
        return t
    return replace(t, infected_files=tuple(replace(f, delta=None) for f in t.infected_files))
