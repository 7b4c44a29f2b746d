"""What a run is asked to do (`RunOptions`: the CLI's options), and what follows from the
inventory for every target of it: the workflow's settings, the deadline's grace."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from orchestrator import workflow
from orchestrator.client import RetryPolicy
from orchestrator.config import REPORT_ONLY, Accepted, Inventory, Policy
from orchestrator.model import ScanType, Target
from orchestrator.workflow.window import Window

#: After the deadline, scans in flight are followed for this share of max_duration...
GRACE_SHARE = 0.1
#: ... but never longer than this (seconds): `--max-duration 6h` ends by 6h01m plus the report.
GRACE_MAX = 60.0


def grace_for(max_duration: float) -> float:
    """How long scans in flight are still followed once max_duration is reached."""
    return min(GRACE_MAX, GRACE_SHARE * max_duration)


@dataclass(frozen=True, slots=True)
class RunOptions:
    policy: Policy = REPORT_ONLY
    dry_run: bool = False
    scan_types: tuple[ScanType, ...] | None = None  # --scan-type overrides the inventory
    only: frozenset[Target] | None = None  # --only-failed: just these targets
    #: --only-failed: (server, account) whose disinfection the previous run stopped following
    #: (files `unknown`): the account's first target waits for it before its scan starts
    settle: frozenset[tuple[str, str]] = frozenset()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connections_per_host: int = 4
    # Sent in the User-Agent (the simulator's referee tells runs apart by it); `run` sets the
    # journal's on --resume, every other run gets its own.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: The finish-by window, resolved against the run's start (None: from the inventory's
    #: `settings.window`, resolved now; `run` passes the journal's start on --resume).
    window: Window | None = None
    #: Accepted findings (`--accepted` / `settings.accepted`), and the run's date they are
    #: judged on (None: today, on this machine's clock; `run` passes the start's date in the
    #: run's time zone).
    accepted: Accepted | None = None
    accepted_on: date | None = None


def workflow_config(inventory: Inventory) -> workflow.WorkflowConfig:
    return workflow.WorkflowConfig.from_settings(inventory.settings)
