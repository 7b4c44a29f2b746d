"""The report model: run metadata, per-target results and the summary computed from them.

Every output format is rendered from one `Report`, so none can disagree with another. The model
is normalised when it is built (UTC datetimes to the second, durations to 0.1 s): exactly what
report.json can carry, so a report read back from JSON equals the one that was written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from orchestrator.model import (
    EXIT_CLEAN,
    EXIT_INCOMPLETE,
    EXIT_INFECTED,
    Downtime,
    ErrorKind,
    InfectedFile,
    Outcome,
    PacingSample,
    RunInfo,
    RunWindow,
    ScanType,
    ServerPacing,
    Status,
    TargetResult,
)
from orchestrator.report.trend import Trend
from orchestrator.report.verification import with_verification

SCHEMA = "clamfleet.report/1"


@dataclass(frozen=True, slots=True)
class Delta:
    """Counts of a comparison with a baseline report (`--baseline`)."""

    new: int
    recurring: int
    resolved: int


@dataclass(frozen=True, slots=True)
class Summary:
    servers: int
    targets: int
    clean: int
    infected: int
    failed: int
    skipped: int
    infected_files: int
    #: Outcome -> count over every infected file; only non-zero keys, most common first.
    outcomes: Mapping[str, int]
    exit_code: int
    #: Present only when the report was compared with a baseline.
    delta: Delta | None = None
    #: Infected files an accepted-findings entry in force matched (once per account, as
    #: `infected_files`, which does not count them).
    accepted: int = 0
    #: Clean targets whose server's canary was not detected: their verdicts are unproven.
    unverified: int = 0


@dataclass(frozen=True, slots=True)
class ResolvedFile:
    """An infected file of the baseline that a completed target no longer has."""

    server: str
    account: str
    scan_type: ScanType
    path: str
    virus: str


@dataclass(frozen=True, slots=True)
class Report:
    run: RunInfo
    summary: Summary
    targets: tuple[TargetResult, ...]
    resolved: tuple[ResolvedFile, ...] = field(default=())
    #: With a history (`--history`): the last nights' trend (report.json `history`).
    history: Trend | None = None

    @property
    def compared(self) -> bool:
        """Whether a baseline was applied (the delta column and counts are then shown)."""
        return self.summary.delta is not None


def exit_code(results: Iterable[TargetResult]) -> int:
    """1 if any infected file was found (it wins; accepted files and the canary are no
    infection), else 2 if any target was not fully scanned (failed, or deferred past the window:
    skipped but never scanned) or is clean but unverified (its canary not detected), else 0."""
    failed = False
    for result in results:
        if result.findings:
            return EXIT_INFECTED
        failed = failed or incomplete(result)
    return EXIT_INCOMPLETE if failed else EXIT_CLEAN


FileKey = tuple[str, str, str, str]  # server, account, path, virus: one file of one account


def account_files(results: Iterable[TargetResult]) -> dict[FileKey, InfectedFile]:
    """Every infected file that is a finding (not accepted, not the canary) once per account,
    whichever scan types found it.

    `home` contains `mail/`, `public_html/` and `public_ftp/`, so two targets of one account can
    list the same file: it is one file. Where one occurrence had its action sent (the other
    says so, `not-requested`), that one's outcome is the file's."""
    out: dict[FileKey, InfectedFile] = {}
    for r in results:
        for f in r.findings:
            key = (r.server, r.account, f.path, f.virus)
            seen = out.get(key)
            if seen is None or (
                seen.outcome is Outcome.NOT_REQUESTED and f.outcome is not Outcome.NOT_REQUESTED
            ):
                out[key] = f
    return out


def accepted_files(results: Iterable[TargetResult]) -> dict[FileKey, InfectedFile]:
    """Every accepted infected file (an entry in force matched it) once per account."""
    return {
        (r.server, r.account, f.path, f.virus): f
        for r in results
        for f in r.infected_files
        if f.accepted is not None and not f.canary
    }


def incomplete(result: TargetResult) -> bool:
    """Whether the target counts against a clean verdict: failed, deferred by the window, or
    clean but unverified (its server's canary was not detected: `--only-failed` rescans it)."""
    deferred = result.error is not None and result.error.kind is ErrorKind.DEFERRED
    return result.status is Status.FAILED or deferred or result.verified is False


def outcome_counts(results: Iterable[TargetResult]) -> dict[str, int]:
    counts = Counter(f.outcome for f in account_files(results).values())
    rank = {outcome: i for i, outcome in enumerate(Outcome)}
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], rank[kv[0]]))
    return {str(outcome): n for outcome, n in ordered if n}


def summarize(results: Sequence[TargetResult], delta: Delta | None = None) -> Summary:
    statuses = Counter(r.status for r in results)
    return Summary(
        servers=len({r.server for r in results}),
        targets=len(results),
        clean=statuses[Status.CLEAN],
        infected=statuses[Status.INFECTED],
        failed=statuses[Status.FAILED],
        skipped=statuses[Status.SKIPPED],
        infected_files=len(account_files(results)),
        outcomes=outcome_counts(results),
        exit_code=exit_code(results),
        delta=delta,
        accepted=len(accepted_files(results)),
        unverified=sum(1 for r in results if r.verified is False),
    )


def build_report(run: RunInfo, results: Sequence[TargetResult]) -> Report:
    """The report of `results`, in the order given (the runner passes inventory order); each
    clean target's `verified` follows its server's canary (`run.canaries`)."""
    targets = with_verification(run.canaries, [normalize_result(r) for r in results])
    return Report(run=normalize_run(run), summary=summarize(targets), targets=targets)


# ---------------------------------------------------------------------------------------------
# normalisation to what report.json carries


def utc_second(moment: datetime) -> datetime:
    """`moment` in UTC without sub-seconds; a naive datetime is taken as UTC."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.replace(microsecond=0)


def _maybe_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc_second(moment)


def round_duration(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds), 1)


def normalize_run(run: RunInfo) -> RunInfo:
    return replace(
        run,
        started_at=utc_second(run.started_at),
        finished_at=_maybe_utc(run.finished_at),
        servers=tuple(run.servers),
        pacing={name: normalize_pacing(p) for name, p in run.pacing.items()},
        canaries=dict(run.canaries),
        window=None if run.window is None else normalize_window(run.window),
        outages={
            name: tuple(normalize_downtime(d) for d in stretches)
            for name, stretches in run.outages.items()
        },
    )


def normalize_downtime(downtime: Downtime) -> Downtime:
    return replace(
        downtime,
        down_at=utc_second(downtime.down_at),
        back_at=_maybe_utc(downtime.back_at),
        seconds=round(float(downtime.seconds), 1),
    )


def normalize_window(window: RunWindow) -> RunWindow:
    """To the second, keeping its own offset (`06:00+01:00` reads as the clock it was)."""
    end = window.end
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return replace(window, end=end.replace(microsecond=0))


def normalize_pacing(pacing: ServerPacing) -> ServerPacing:
    """Numbers as report.json carries them: floats, rounded so a read-back compares equal."""

    def num(value: float | None, digits: int) -> float | None:
        return None if value is None else round(float(value), digits)

    return replace(
        pacing,
        max_load=num(pacing.max_load, 3),
        peak_load=num(pacing.peak_load, 3),
        seconds_over=round(float(pacing.seconds_over), 1),
        history=tuple(
            PacingSample(round(float(s.t), 3), s.running, s.limit, num(s.load, 3))
            for s in pacing.history
        ),
    )


def normalize_result(result: TargetResult) -> TargetResult:
    return replace(
        result,
        infected_files=tuple(result.infected_files),
        started_at=_maybe_utc(result.started_at),
        finished_at=_maybe_utc(result.finished_at),
        duration_s=round_duration(result.duration_s),
    )
