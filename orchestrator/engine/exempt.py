"""Which infected files are not findings: the server's canary, and accepted ones.

Pure: no I/O, no logging. The driver asks `Judge.exemption()` before the policy (an exempt file
never reaches it: nothing is ever sent for it), and the runner has every result `mark()`ed
before it is recorded, so the report, the journal and the exit code agree.

- **The canary** (README "Canaries"): on the entry that scans it, in any target of the canary
  account, the file at the canary's path whose signature matches its glob (case-insensitive).
  It proves detection; it is never an infection nor acted on.
- **Accepted findings** (README "Accepted findings"): the first entry in force (the run's date
  before its `expires`) whose `when` matches makes the file accepted: reported with its reason
  and expiry, counted apart, never acted on. Matched only by expired entries, the file is a
  finding again (the policy decides for it as for any other) and says which acceptance expired.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from fnmatch import fnmatchcase

from orchestrator.config import Accepted, AcceptedEntry, Canary, Server
from orchestrator.model import (
    Acceptance,
    AcceptedInfo,
    CanaryInfo,
    InfectedFile,
    StaleEntry,
    Status,
    Target,
    TargetResult,
)

CANARY_MESSAGE = "canary: the planted test file; never acted on (the policy is not consulted)"
ACCEPTED_MESSAGE = "accepted finding: the policy is not consulted, nothing is sent"


@dataclass(frozen=True, slots=True)
class Judge:
    """The run's accepted findings (as of `today`) and the canaries its servers scan."""

    accepted: Accepted | None = None
    today: date = field(default_factory=date.today)
    #: server name -> the canary that server scans itself (`canary.by` is the server)
    canaries: Mapping[str, Canary] = field(default_factory=dict)

    @classmethod
    def for_run(cls, servers: Iterable[Server], accepted: Accepted | None, today: date) -> Judge:
        scanned = {s.name: s.canary for s in servers if s.canary and s.canary.by == s.name}
        return cls(accepted, today, scanned)

    def is_canary(self, target: Target, path: str, virus: str) -> bool:
        canary = self.canaries.get(target.server)
        if canary is None or target.account != canary.account:
            return False
        return path.endswith(f"/{canary.account}/{canary.path}") and fnmatchcase(
            virus.lower(), canary.virus.lower()
        )

    def entries(
        self, target: Target, path: str, virus: str
    ) -> tuple[AcceptedEntry | None, AcceptedEntry | None]:
        """The first matching entry in force, and (when none is) the first expired one."""
        if self.accepted is None:
            return None, None
        matching = [e for e in self.accepted.entries if e.when.matches(target, path, virus)]
        live = next((e for e in matching if e.in_force(self.today)), None)
        return live, None if live is not None or not matching else matching[0]

    def exemption(self, target: Target, path: str, virus: str) -> str | None:
        """Why this file gets no action and no policy decision (None: it is a finding)."""
        if self.is_canary(target, path, virus):
            return CANARY_MESSAGE
        if self.entries(target, path, virus)[0] is not None:
            return ACCEPTED_MESSAGE
        return None

    def mark(self, result: TargetResult) -> TargetResult:
        """The result with its canary and accepted files marked; a target whose infected files
        are all exempt is clean."""
        if not result.infected_files:
            return result
        files = tuple(self._mark(result.target, f) for f in result.infected_files)
        status = result.status
        if status is Status.INFECTED and not any(f.finding for f in files):
            status = Status.CLEAN
        return replace(result, infected_files=files, status=status)

    def _mark(self, target: Target, f: InfectedFile) -> InfectedFile:
        if self.is_canary(target, f.path, f.virus):
            return replace(f, canary=True, accepted=None, expired_acceptance=None)
        live, expired = self.entries(target, f.path, f.virus)
        return replace(f, accepted=_acceptance(live), expired_acceptance=_acceptance(expired))


def _acceptance(entry: AcceptedEntry | None) -> Acceptance | None:
    return None if entry is None else Acceptance(entry.reason, entry.expires)


def accepted_info(accepted: Accepted, results: Sequence[TargetResult]) -> AcceptedInfo:
    """The file's report record: its entries that matched no infected file this run (canary
    files aside) are stale."""
    files = [(r.target, f) for r in results for f in r.infected_files if not f.canary]
    stale = tuple(
        StaleEntry(e.line, e.reason, e.expires, e.when.keys())
        for e in accepted.entries
        if not any(e.when.matches(t, f.path, f.virus) for t, f in files)
    )
    return AcceptedInfo(source=accepted.source, entries=len(accepted.entries), stale=stale)


def canary_infos(servers: Iterable[Server]) -> dict[str, CanaryInfo]:
    """`run.canaries`: every server with a canary, and the entry that scans it."""
    return {
        s.name: CanaryInfo(s.canary.account, s.canary.path, s.canary.virus, s.canary.by)
        for s in servers
        if s.canary is not None
    }
