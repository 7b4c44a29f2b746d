"""The vocabulary between the workflow (pure) and the runner (I/O).

Commands go out of the workflow: a request to make, a wait, a decision to ask for, or the end.
Replies come back in: what the client parsed from cPanel's answer, or what went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.model import (
    Action,
    DisinfectionStatusReply,
    ErrorInfo,
    InfectedFile,
    ScanStats,
    ScanType,
    Status,
    StatusData,
)

# ---------------------------------------------------------------------------------------------
# Commands (workflow -> runner)


@dataclass(frozen=True, slots=True)
class GetScanStatus:
    pass


@dataclass(frozen=True, slots=True)
class StartScan:
    scan_type: ScanType


@dataclass(frozen=True, slots=True)
class ListInfected:
    pass


@dataclass(frozen=True, slots=True)
class PlanActions:
    """Ask the runner to run the policy (and the run-wide caps) over these (path, virus) pairs."""

    files: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Disinfect:
    actions: Mapping[str, Action]


@dataclass(frozen=True, slots=True)
class GetDisinfection:
    last_id: int | None


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    scan: ScanStats | None = None
    files: tuple[InfectedFile, ...] = ()
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    verdict: Verdict


Request = GetScanStatus | StartScan | ListInfected | Disinfect | GetDisinfection
Command = Request | PlanActions | Wait | Finish

# ---------------------------------------------------------------------------------------------
# Replies (runner -> workflow)


@dataclass(frozen=True, slots=True)
class ScanStatusReply:
    data: StatusData | None


@dataclass(frozen=True, slots=True)
class ScanStarted:
    pass


@dataclass(frozen=True, slots=True)
class ScanBusy:
    """start_scan refused: a scan of this account is already running (not one this target
    started). cPanel has reset the status it reports (cpanel-api.md 3.2, step 2 before 3)."""

    message: str


@dataclass(frozen=True, slots=True)
class InfectedListReply:
    """Files as cPanel lists them: (path, virus), still HTML-escaped."""

    files: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PlannedFile:
    path: str
    virus: str
    action: Action
    send: bool
    outcome: str | None = None  # an Outcome value when not sent
    message: str | None = None


@dataclass(frozen=True, slots=True)
class ActionsPlanned:
    files: tuple[PlannedFile, ...]
    #: Set when a destructive-action cap refused this target: nothing is sent.
    limit_error: str | None = None


@dataclass(frozen=True, slots=True)
class DisinfectQueued:
    task_id: str


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """A request failed for good (retries, if any, are spent; an outage of the host was waited
    through by the client, so this is not one, unless `final`).

    `ambiguous`: the request may have reached the server (timeout, reset after sending), so a
    non-idempotent call must be checked before it is ever sent again.
    `final`: the server is given up for the run (down past `timeouts.server_down`, never
    answered, a refused login, a TLS failure): nothing will be sent to it again, so the target
    ends now, whatever its phase would otherwise retry.
    """

    error: ErrorInfo
    ambiguous: bool = False
    #: Seconds the server asked us to wait (HTTP Retry-After), when it said so.
    retry_after: float | None = None
    final: bool = False


@dataclass(frozen=True, slots=True)
class Tick:
    """The last Wait is over."""


Reply = (
    ScanStatusReply
    | ScanStarted
    | ScanBusy
    | InfectedListReply
    | ActionsPlanned
    | DisinfectQueued
    | DisinfectionStatusReply
    | RequestFailed
    | Tick
)
