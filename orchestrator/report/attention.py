"""What needs a person after a run: the report's "needs attention" items, the targets that
`--only-failed` scans again, and the verdict in words.

Pure: a function of the report model and nothing else (report.html, the summary `run` prints
and `--only-failed` all ask here, so they cannot disagree). Each kind of item is found by one
small function of the report, listed in `FINDERS`: a new kind (an unverified canary, an
expired acceptance) is one more function there.

One predicate, `rerun_reason`, decides both which targets the section says to scan again and
which `--only-failed` selects: a report whose section names a target to rescan can never give
an empty selection.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.model import (
    EXIT_CLEAN,
    EXIT_INFECTED,
    ErrorKind,
    InfectedFile,
    Outcome,
    Status,
    Target,
    TargetResult,
)
from orchestrator.report.model import Report, account_files
from orchestrator.report.verification import canary_checks

#: Exit code -> (css class, the verdict in words); any other code reads as incomplete.
VERDICTS = {
    EXIT_CLEAN: ("clean", "every target scanned, no infected file found"),
    EXIT_INFECTED: ("infected", "infected files found"),
}
INCOMPLETE = ("incomplete", "no infection found, but some targets could not be scanned")

#: Outcomes that mean the policy's decision was carried out (`no-action`: the policy said
#: `ignore`). Every other outcome leaves the file for a person: nothing was asked (`report`, a
#: dry run, a limit), or nobody knows what happened (`unknown`), or it failed (`error`).
HANDLED = frozenset(
    {Outcome.QUARANTINED, Outcome.DELETED, Outcome.MAILBOX_CLEANSED, Outcome.NO_ACTION}
)


class Kind(StrEnum):
    """Why an item needs a person; those in RERUN are cured by `--only-failed`."""

    FAILED = "failed"
    INTERRUPTED = "interrupted"
    DEFERRED = "deferred"
    UNKNOWN = "outcome unknown"
    ERROR = "outcome error"
    HELD_BACK = "held back by a limit"
    CANARY = "canary not detected"
    UNVERIFIED = "unverified"
    EXPIRED = "acceptance expired"
    STALE = "stale acceptance"
    NOT_ACTED_ON = "not acted on"


#: The kinds whose target `--only-failed` scans again.
RERUN = frozenset(
    {
        Kind.FAILED,
        Kind.INTERRUPTED,
        Kind.DEFERRED,
        Kind.UNKNOWN,
        Kind.ERROR,
        Kind.HELD_BACK,
        Kind.UNVERIFIED,
    }
)


@dataclass(frozen=True, slots=True)
class Item:
    """One line of the section: what, where (a target, maybe a file of it) and why."""

    kind: Kind
    why: str
    target: Target | None = None  # None: about the run as a whole (a count of files)
    path: str | None = None
    virus: str | None = None
    place: str | None = None  # where, when it is not a target (servers, a file of entries)

    @property
    def rerun(self) -> bool:
        """Whether `--only-failed` scans this item's target again."""
        return self.kind in RERUN

    @property
    def where(self) -> str:
        if self.target is None:
            return self.place or "the run"
        return str(self.target) if self.path is None else f"{self.target} {self.path}"


# ---------------------------------------------------------------------------------------------
# which targets need another pass (`--only-failed`)


def deferred(result: TargetResult) -> bool:
    """Skipped because the window (or load patience) ran out before it started: never scanned."""
    return result.error is not None and result.error.kind is ErrorKind.DEFERRED


def held_back(result: TargetResult) -> tuple[InfectedFile, ...]:
    """The files a destructive-action cap kept from being sent (error kind `policy_limit`)."""
    if result.error is None or result.error.kind is not ErrorKind.POLICY_LIMIT:
        return ()
    return tuple(
        f
        for f in result.infected_files
        if f.action.destructive and f.outcome is Outcome.NOT_REQUESTED
    )


def rerun_reason(result: TargetResult) -> Kind | None:
    """Why this target needs another pass (None: it does not), the most pressing reason first."""
    if result.error is not None and result.error.kind is ErrorKind.INTERRUPTED:
        return Kind.INTERRUPTED
    if result.status is Status.FAILED:
        return Kind.FAILED
    if deferred(result):
        return Kind.DEFERRED
    outcomes = {f.outcome for f in result.infected_files}
    if Outcome.UNKNOWN in outcomes:
        return Kind.UNKNOWN
    if Outcome.ERROR in outcomes:
        return Kind.ERROR
    if held_back(result):
        return Kind.HELD_BACK
    if result.verified is False:  # clean, but its server's canary was not detected
        return Kind.UNVERIFIED
    return None


def rerun_targets(report: Report) -> dict[Target, Kind]:
    """Every target `--only-failed` scans again, with why, in report order."""
    return {t.target: k for t in report.targets if (k := rerun_reason(t)) is not None}


def unsettled_accounts(report: Report) -> frozenset[tuple[str, str]]:
    """(server, account) with a file whose outcome is `unknown`: a disinfection may still run
    there, and its end would delete the infected list of a scan started under it."""
    return frozenset(
        (t.server, t.account)
        for t in report.targets
        if any(f.outcome is Outcome.UNKNOWN for f in t.infected_files)
    )


def follow_up(report: Report, report_path: str) -> str | None:
    """The command that scans again what needs another pass (None when nothing does)."""
    if not rerun_targets(report):
        return None
    inventory = shlex.quote(report.run.inventory)
    return f"clamfleet run {inventory} --only-failed {shlex.quote(report_path)}"


# ---------------------------------------------------------------------------------------------
# the items, one finder per kind


def _target_items(report: Report) -> Iterator[Item]:
    for t in report.targets:
        kind = rerun_reason(t)
        if kind in (Kind.FAILED, Kind.INTERRUPTED, Kind.DEFERRED):
            error = t.error
            why = "failed" if error is None else error.message
            if kind is Kind.FAILED and error is not None:
                why = f"{error.kind}: {error.message}"
            yield Item(kind, why, t.target)


def _file_items(report: Report) -> Iterator[Item]:
    for t in report.targets:
        for f in t.infected_files:
            if f.outcome is Outcome.UNKNOWN:
                why = (
                    f"{f.action} was sent, but cPanel never reported this file: it may or may"
                    " not be done; a rescan tells"
                )
                if f.message:
                    why += f" ({f.message})"
                yield Item(Kind.UNKNOWN, why, t.target, f.path, f.virus)
            elif f.outcome is Outcome.ERROR:
                why = f"{f.action} failed: {f.message or 'cPanel reported an error'}"
                yield Item(Kind.ERROR, why, t.target, f.path, f.virus)
        for f in held_back(t):
            reason = t.error.message if t.error is not None else "a limit"
            yield Item(Kind.HELD_BACK, f"{f.action} not sent: {reason}", t.target, f.path, f.virus)


def _not_acted_on(report: Report) -> Iterator[Item]:
    """Infected files nothing was asked for (action `report`, or a dry run): one line in all,
    the infected table lists them. Files held back by a limit have their own lines."""
    held = {(t.server, t.account, f.path, f.virus) for t in report.targets for f in held_back(t)}
    count = sum(
        1
        for key, f in account_files(report.targets).items()
        if f.outcome is Outcome.NOT_REQUESTED and key not in held
    )
    if not count:
        return
    files = "1 infected file" if count == 1 else f"{count} infected files"
    if report.run.dry_run:
        why = f"{files} found in a dry run: nothing was sent; see the infected files"
    else:
        why = f"{files} the policy only reports (action report): nothing was done to them"
    yield Item(Kind.NOT_ACTED_ON, why)


def _canary_items(report: Report) -> Iterator[Item]:
    """A canary not detected makes its servers' clean verdicts unproven: one line for the
    canary, one per clean target it leaves unverified (rescanned by `--only-failed`)."""
    for check in canary_checks(report.run.canaries, report.targets):
        if not check.detected:
            yield Item(Kind.CANARY, check.message(), place=", ".join(check.servers))
    for t in report.targets:
        if rerun_reason(t) is Kind.UNVERIFIED:
            why = "clean, but unproven: its server's canary was not detected"
            yield Item(Kind.UNVERIFIED, why, t.target)


def _acceptance_items(report: Report) -> Iterator[Item]:
    """Acceptances that ran out (the file is a finding again) and entries that matched
    nothing (a stale entry rots silently, and may hide tomorrow's real file)."""
    for t in report.targets:
        for f in t.infected_files:
            if (gone := f.expired_acceptance) is not None:
                why = (
                    f"acceptance expired on {gone.expires.isoformat()} ({gone.reason}): counts"
                    " as a finding again (renew the entry, or deal with the file)"
                )
                yield Item(Kind.EXPIRED, why, t.target, f.path, f.virus)
    info = report.run.accepted
    if info is None:
        return
    for entry in info.stale:
        why = (
            f"{info.source}:{entry.line}: matched no infected file this run ({entry.reason}):"
            " remove the entry, or check its globs"
        )
        yield Item(Kind.STALE, why, place=info.source)


Finder = Callable[[Report], Iterable[Item]]
#: In the order the section lists them.
FINDERS: tuple[Finder, ...] = (
    _target_items,
    _file_items,
    _canary_items,
    _acceptance_items,
    _not_acted_on,
)


def attention(report: Report) -> list[Item]:
    """Everything in the report that needs a person, grouped by kind (in `Kind` order)."""
    items = [item for finder in FINDERS for item in finder(report)]
    rank = {kind: i for i, kind in enumerate(Kind)}
    return sorted(items, key=lambda item: rank.get(item.kind, len(rank)))


def needs_human(outcome: Outcome) -> bool:
    """Whether a file with this (account-wide) outcome is still for a person to deal with."""
    return outcome not in HANDLED


def effective_outcomes(report: Report) -> dict[tuple[str, str, str, str], Outcome]:
    """(server, account, path, virus) -> the file's outcome once per account (a `home` and a
    `mail` row of one file share the outcome of the one whose action was sent)."""
    return {key: f.outcome for key, f in account_files(report.targets).items()}


def verdict(exit_code: int) -> tuple[str, str]:
    return VERDICTS.get(exit_code, INCOMPLETE)


def report_verdict(report: Report) -> tuple[str, str]:
    """The verdict of this report in words: an exit code 2 that only an undetected canary
    caused says so (nothing failed, but clean verdicts are unproven)."""
    s = report.summary
    if s.exit_code in VERDICTS or not s.unverified:
        return verdict(s.exit_code)
    why = "a canary was not detected, so clean verdicts are unproven"
    if s.failed or any(deferred(t) for t in report.targets):
        why = "some targets could not be scanned, and " + why
    return INCOMPLETE[0], f"no infection found, but {why}"


# ---------------------------------------------------------------------------------------------
# as text: the summary `run` and `merge` print


def attention_lines(items: Sequence[Item], command: str | None, *, per_kind: int = 10) -> list[str]:
    """The section as lines of text: at most `per_kind` lines of each kind (the rest counted),
    then the follow-up command. Nothing to say is one line."""
    if not items:
        return ["needs attention: nothing"]
    lines = [f"needs attention ({len(items)}):"]
    width = max(len(item.kind) for item in items)
    groups: dict[Kind, list[Item]] = {}
    for item in items:
        groups.setdefault(item.kind, []).append(item)
    for kind, group in groups.items():
        lines += [f"  {kind:<{width}}  {item.where}: {item.why}" for item in group[:per_kind]]
        if len(group) > per_kind:
            lines.append(
                f"  {kind:<{width}}  ... and {len(group) - per_kind} more (see report.html)"
            )
    if command is not None:
        lines.append(f"  scan them again: {command}")
    return lines
