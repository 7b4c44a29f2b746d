"""The workflow of one target as a pure sans-I/O machine: no I/O, no event loop, no clock of
its own (time is passed in). It may import the configuration and the shared vocabulary only.

Inner layers, top down (each imports only those below it):

    machine.py        begin / step / resume and the ACCEPTS table: the entry points
    start.py          SETTLING, PRECHECK, FOREIGN, STARTING, VERIFY_START
    scan.py           SCANNING, LISTING; telling our scan's status from an earlier one's
    remedy.py         PLANNING, DISINFECTING, FOLLOWING
    moves.py          request, wait, done / failed, the verdict and each file's outcome
    state.py          Phase, WorkflowConfig and the frozen State records (journal format)
    poll_schedule.py  when to read a running scan's status next (end predictions)
    pacing.py         load-aware scan concurrency and the finish-by window: the pure policy
    events.py         commands out of the machine, replies into it
    codec.py          frozen dataclasses <-> JSON-ready dicts by their type hints
"""

from orchestrator.workflow.machine import ACCEPTS, begin, resume, step
from orchestrator.workflow.moves import infected_files
from orchestrator.workflow.remedy import (
    disinfect_sending,
    leaves_disinfection_pending,
    may_have_sent,
)
from orchestrator.workflow.state import (
    TERMINAL,
    Disinfection,
    Phase,
    StartAttempts,
    State,
    WorkflowConfig,
    doing,
    from_dict,
    to_dict,
)

__all__ = [
    "ACCEPTS",
    "TERMINAL",
    "Disinfection",
    "Phase",
    "StartAttempts",
    "State",
    "WorkflowConfig",
    "begin",
    "disinfect_sending",
    "doing",
    "from_dict",
    "infected_files",
    "leaves_disinfection_pending",
    "may_have_sent",
    "resume",
    "step",
    "to_dict",
]
