"""Canaries in the report: was each server's planted test file detected, and so are its clean
verdicts proven (`verified`)?

Pure: `run.canaries` (server -> its canary and the entry that scans it) and the targets in,
checks and verified targets out. Computed from the report itself, so a merge of shard reports
recomputes it over every shard (a cPanel-login host's canary entry may be in another report).

A canary's state, from the targets of its account on the entry that scans it:

- `detected`: a target listed the canary file (marked `canary` by the run);
- `not-detected`: a scan of the account completed without it: clamd is blind to it (an
  ExcludePath, MaxFileSize, permissions, a broken signature database...);
- `failed`: its targets failed or were skipped (the reason is theirs);
- `not-scanned`: no target of the account is in the report (e.g. `--servers` left the
  scanning entry out).

Only `detected` proves a clean verdict: every other state makes the clean targets of the
servers it stands for `verified: false`, and the exit code at least 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from orchestrator.model import CanaryInfo, Status, TargetResult

DETECTED, NOT_DETECTED, FAILED, NOT_SCANNED = "detected", "not-detected", "failed", "not-scanned"
COMPLETED = (Status.CLEAN, Status.INFECTED)


@dataclass(frozen=True, slots=True)
class CanaryCheck:
    """One canary (one per host): its state and the servers whose clean verdicts it proves."""

    canary: CanaryInfo
    servers: tuple[str, ...]
    state: str
    detected_as: str | None = None  # the signature cPanel reported for it
    detail: str | None = None  # why a failed canary failed

    @property
    def detected(self) -> bool:
        return self.state == DETECTED

    def message(self) -> str:
        by = self.canary.by
        others = [s for s in self.servers if s != by]
        whose = "its clean verdicts are" if not others else "the clean verdicts of "
        if others:
            whose += ", ".join(self.servers) + " are"
        if self.state == DETECTED:
            return f"canary detected on {by} as {self.detected_as}"
        if self.state == NOT_DETECTED:
            c = self.canary
            expected = f"{c.path} of {c.account}, {c.virus}"
            return f"canary not detected on {by}: {whose} unproven (expected {expected})"
        if self.state == FAILED:
            return f"canary not scanned on {by} ({self.detail}): {whose} unproven"
        return f"canary of {by} not scanned in this run: {whose} unproven"


def canary_checks(
    canaries: Mapping[str, CanaryInfo], targets: Sequence[TargetResult]
) -> list[CanaryCheck]:
    """One check per canary (servers sharing one are grouped), in `canaries` order."""
    groups: dict[tuple[str, str], list[str]] = {}
    info: dict[tuple[str, str], CanaryInfo] = {}
    for server, canary in canaries.items():
        key = (canary.by, canary.account)
        groups.setdefault(key, []).append(server)
        info.setdefault(key, canary)
    return [_check(info[key], tuple(servers), targets) for key, servers in groups.items()]


def _check(
    canary: CanaryInfo, servers: tuple[str, ...], targets: Sequence[TargetResult]
) -> CanaryCheck:
    mine = [t for t in targets if t.server == canary.by and t.account == canary.account]
    hit = next((f for t in mine for f in t.infected_files if f.canary), None)
    if hit is not None:
        return CanaryCheck(canary, servers, DETECTED, detected_as=hit.virus)
    if any(t.status in COMPLETED or t.infected_files for t in mine):
        return CanaryCheck(canary, servers, NOT_DETECTED)
    if mine:
        error = mine[0].error
        detail = f"{error.kind}: {error.message}" if error else str(mine[0].status)
        return CanaryCheck(canary, servers, FAILED, detail=detail)
    return CanaryCheck(canary, servers, NOT_SCANNED)


def checks_by_server(
    canaries: Mapping[str, CanaryInfo], targets: Sequence[TargetResult]
) -> dict[str, CanaryCheck]:
    return {s: check for check in canary_checks(canaries, targets) for s in check.servers}


def with_verification(
    canaries: Mapping[str, CanaryInfo], targets: Sequence[TargetResult]
) -> tuple[TargetResult, ...]:
    """Each target with `verified` set: for a clean target of a server with a canary, whether
    the canary was detected; None for every other target."""
    checks = checks_by_server(canaries, targets)

    def verified(t: TargetResult) -> bool | None:
        check = checks.get(t.server)
        return None if check is None or t.status is not Status.CLEAN else check.detected

    return tuple(t if t.verified is (v := verified(t)) else replace(t, verified=v) for t in targets)
