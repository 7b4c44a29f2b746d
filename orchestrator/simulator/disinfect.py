"""`disinfect_files` as a UserTasks job: records appear over time, effects hit the virtual files.

The task is lazy too: nothing runs in the background; whoever looks at the account first calls
`advance(now)`, which applies every record that is due by then, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.simulator.spec import QUARANTINE_DIR, SimFile

ACTIONS = ("quarantine", "delete", "ignore", "cleanse_mailbox")
LOG_NAME = ".clamavconnector.disinfection.log"


@dataclass(slots=True)
class DisinfectTask:
    """One queued disinfection: (relpath, action or "") per infected file of the last scan."""

    items: list[tuple[str, str]]
    start_at: float
    step_seconds: float
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.items) + 1  # the steps, then `done`

    @property
    def finished(self) -> bool:
        return len(self.records) == self.total

    def due(self, index: int) -> float:
        if not self.items:
            return self.start_at
        return self.start_at + (index + 1) * self.step_seconds

    def state(self, now: float) -> str:
        """The `.state` file: absent (`none`) before the job starts and after it finished."""
        if now < self.start_at or self.finished:
            return "none"
        return "running"


def apply_step(files: dict[str, SimFile], relpath: str, action: str) -> dict[str, Any]:
    """Do one file's action on `files`; return the log record (without its id)."""
    step: dict[str, Any] = {"type": "step", "file": relpath}
    if action in ("", "ignore"):
        return step | {"state": "no-action", "message": "No action specified for file."}
    if action == "cleanse_mailbox" and not relpath.startswith("mail/"):
        return step | {"state": "error", "message": f"The file “{relpath}” is not in a mailbox."}
    current = files.get(relpath)
    if current is None:
        return step | {"state": "error", "message": f"The file “{relpath}” does not exist."}
    if action == "delete":
        del files[relpath]
        return step | {"state": "deleted"}
    if action == "quarantine":
        del files[relpath]
        target = f"{QUARANTINE_DIR}/{relpath.replace('/', '_')}"
        files[target] = replace(current, relpath=target)
        return step | {"state": "quarantined"}
    files[relpath] = cleansed(current)
    return step | {"state": "mailbox-cleansed"}


def cleansed(mbox: SimFile) -> SimFile:
    """The mbox without its infected messages (sizes shrink in proportion)."""
    messages = list(mbox.mail_messages or ())
    kept = [m for m in messages if m is None]
    size = mbox.size * len(kept) // len(messages) if messages else mbox.size
    return replace(mbox, size=size, virus=None, mail_messages=kept)


def done_record(task: DisinfectTask) -> dict[str, Any]:
    if not task.items:
        return {"type": "done", "state": "info", "message": "No infected files found"}
    return {"type": "done", "state": "success"}


def status_answer(
    task: DisinfectTask | None, home: str, now: float, last_id: int
) -> dict[str, Any]:
    """3.6: records after `last_id`; status from the slice, or from the state file if empty."""
    records = [r for r in (task.records if task else []) if r["id"] > last_id]
    if records:
        status = "done" if records[-1]["type"] == "done" else "running"
    else:
        status = task.state(now) if task else "none"
    return {"status": status, "log": f"{home}/{LOG_NAME}", "details": records}
