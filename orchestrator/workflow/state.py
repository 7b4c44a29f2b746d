"""The workflow's records: its phases, its settings, and the frozen state of one target.

The state is a frozen value (serialisable by `to_dict`), so the journal can persist it after
every transition: `StartAttempts` (getting start_scan to take), `ScanProgress` (what the status
reads showed; `poll_schedule` does the maths over it), the infected list, `Disinfection` (the
plan, whether its POST went out, and what cPanel did with it), and the verdict once terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchestrator.config import Settings
from orchestrator.model import DisinfectionRecord, ErrorInfo, ScanStats, Target
from orchestrator.workflow import codec
from orchestrator.workflow.events import PlannedFile, Verdict
from orchestrator.workflow.poll_schedule import ScanProgress


class Phase(StrEnum):
    SETTLING = "settling"
    PRECHECK = "precheck"
    FOREIGN = "foreign"
    STARTING = "starting"
    VERIFY_START = "verify_start"
    SCANNING = "scanning"
    LISTING = "listing"
    PLANNING = "planning"
    DISINFECTING = "disinfecting"
    FOLLOWING = "following"
    DONE = "done"
    FAILED = "failed"


TERMINAL = frozenset({Phase.DONE, Phase.FAILED})

#: What a target was doing in each phase, for messages a user reads ("run interrupted while
#: its scan was running"): a phase's own name ("foreign", "verify_start") is ours, not theirs.
DOING: dict[Phase, str] = {
    Phase.SETTLING: "while waiting for the account's previous disinfection to finish",
    Phase.PRECHECK: "before its scan started (while reading the account's scan status)",
    Phase.FOREIGN: "while waiting for a scan that someone else started on the account",
    Phase.STARTING: "while starting its scan",
    Phase.VERIFY_START: "while checking that its scan had started",
    Phase.SCANNING: "while its scan was running",
    Phase.LISTING: "while reading the list of infected files",
    Phase.PLANNING: "while deciding what to do with the infected files",
    Phase.DISINFECTING: "while asking cPanel to disinfect the infected files",
    Phase.FOLLOWING: "while cPanel was disinfecting the infected files",
    Phase.DONE: "after it had finished",
    Phase.FAILED: "after it had failed",
}


def doing(phase: Phase) -> str:
    """`phase` in words: what the target was doing then."""
    return DOING[phase]


@dataclass(frozen=True, slots=True)
class WorkflowConfig:
    poll_min: float = 2.0
    poll_max: float = 30.0
    scan_timeout: float = 21600.0
    stall_timeout: float = 1800.0
    disinfection_timeout: float = 3600.0
    #: How long `none` is read as "queued, not started yet" after disinfect_files succeeded.
    none_grace: float = 120.0
    #: start_scan is sent at most this often for one target (only after a status check),
    #: counting the sends that may have run (answered, or their answer lost). A start the
    #: server answered without running it (5xx, 429, a proxy's page) or that never reached it
    #: (refused) is no attempt: it is sent again, after a status read, until `scan_timeout`
    #: has passed since the target's first start_scan.
    max_start_attempts: int = 2
    #: After a start_scan whose answer was lost, how long the previous scan's status may still
    #: be shown (the stale window) before the start is taken as not having happened.
    start_grace: float = 10.0
    #: A status that looks freshly reset (not complete, nothing counted) and does not move for
    #: this long is taken as no scan at all: what a refused start_scan leaves behind (cPanel
    #: resets the status before it checks anything), e.g. while clamd was down. A real scan in
    #: its counting pass looks the same; trying start_scan then tells them apart (refused).
    reset_grace: float = 60.0
    #: start_scan refused as "already in progress" (a scan this run did not start) this many
    #: times for one target: give up with kind `api`.
    max_busy_refusals: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkflowConfig:
        """The workflow's settings from the inventory's: the graces follow the poll interval,
        so a fleet polled slowly (or a test polled fast) gets waits in proportion."""
        poll, timeouts = settings.poll_interval, settings.timeouts
        return cls(
            poll_min=poll.min,
            poll_max=poll.max,
            scan_timeout=timeouts.scan,
            stall_timeout=timeouts.stall,
            disinfection_timeout=timeouts.disinfection,
            # cPanel deletes the disinfection state file once the task is queued, so `none`
            # is all it says until the task queue starts it. A busy queue may take a while:
            # wait for 30 fast polls or 4 slow ones, whichever is longer. Capped at the
            # disinfection timeout, which bounds the whole wait anyway.
            none_grace=min(max(30 * poll.min, 4 * poll.max), timeouts.disinfection),
            # The previous scan's status may still be read for a few polls after a start that
            # took; 10 polls. At least 2 s, so a test's tiny poll_min still outlasts it.
            start_grace=max(10 * poll.min, 2.0),
            # A real counting pass shows the same all-zero status as a refused start's reset:
            # give it 10 fast polls or 5 slow ones (whichever is longer) to move before
            # start_scan is tried to tell them apart. At least 2 s, as above.
            reset_grace=max(10 * poll.min, 5 * poll.max, 2.0),
        )


@dataclass(frozen=True, slots=True)
class StartAttempts:
    """Getting start_scan to take: sent at most `max_start_attempts` times, after a read."""

    baseline: int | None = None  # time_started of the status seen before our start_scan
    attempts: int = 0
    busy_refusals: int = 0  # refused "already in progress": not attempts of ours
    sent_at: float | None = None
    #: answered without running (5xx, 429, a proxy) or refused: not attempts, retried
    not_started: int = 0
    first_sent_at: float | None = None  # the target's first start_scan: its deadline counts


@dataclass(frozen=True, slots=True)
class Disinfection:
    """The policy's plan for the infected files, and what cPanel reported doing with it."""

    planned: tuple[PlannedFile, ...] = ()
    limit_error: str | None = None  # a destructive-action cap refused this target
    #: The disinfect_files POST is going out (journaled right before it leaves, after any
    #: session login): from here on it may have reached cPanel. Cleared by its answer. A
    #: DISINFECTING state without it was never sent: a resumed run sends it (once).
    sending: bool = False
    queued_at: float | None = None  # disinfect_files was (or may have been) queued then
    ambiguous: bool = False  # its answer was lost: maybe queued, never resent
    #: maybe queued by a run that was stopped before its answer came (kill -9): followed by
    #: the resumed run, and `interrupted` (not `api`) if cPanel never shows it
    interrupted: bool = False
    last_id: int | None = None
    records: tuple[DisinfectionRecord, ...] = ()
    #: disinfect_files answered without running (5xx, 429, a proxy) or refused: sent again
    not_run: int = 0
    first_sent_at: float | None = None  # the first disinfect_files: its deadline counts from it


@dataclass(frozen=True, slots=True)
class State:
    target: Target
    cfg: WorkflowConfig
    phase: Phase = Phase.PRECHECK
    api_calls: int = 0
    started_at: float = 0.0
    last_wait: float = 0.0
    start: StartAttempts = field(default_factory=StartAttempts)
    scan: ScanProgress = field(default_factory=ScanProgress)
    infected: tuple[tuple[str, str], ...] = ()  # (path, virus), HTML-unescaped
    disinfection: Disinfection = field(default_factory=Disinfection)
    error: ErrorInfo | None = None
    verdict: Verdict | None = None
    #: SETTLING since then: a sibling target's disinfection may still run (None: never settled)
    settle_since: float | None = None

    @property
    def stats(self) -> ScanStats | None:
        """The counters the last status read showed (of the scan being watched)."""
        return self.scan.stats


# ---------------------------------------------------------------------------------------------
# Serialisation for the journal


def to_dict(state: State) -> dict[str, Any]:
    """The state as JSON-ready data, records nested (`codec.to_dict`)."""
    return codec.to_dict(state)


def from_dict(data: dict[str, Any]) -> State:
    """`to_dict`'s output back; `codec.DecodeError` (a ValueError) names a field that is off."""
    return codec.from_dict(State, data)
