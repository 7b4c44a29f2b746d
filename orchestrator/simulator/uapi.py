"""The six ClamScanner UAPI functions, answering the bare UAPI result object (section 3)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.simulator.account import AccountState
from orchestrator.simulator.disinfect import ACTIONS, status_answer
from orchestrator.simulator.encoding import safe_html_encode
from orchestrator.simulator.spec import SCAN_TYPES, Faults

MODULE = "ClamScanner"
FEATURE = "clamavconnector_scan"
PATH_MESSAGES = {
    "home": "Scan Entire Home Directory",
    "mail": "Scan Mail",
    "public_ftp": "Scan Public FTP Space",
    "public_html": "Scan Public Web Space",
}
HASHREF = "The parameter “actions” is required and must be a non-empty hashref."
DISABLED = "ClamAV® is disabled for this account."

Args = Mapping[str, Any]
Handler = Callable[[AccountState, Args, float, Faults], dict[str, Any]]


def result(
    data: Any = None,
    *,
    errors: list[str] | None = None,
    messages: list[str] | None = None,
    transformed: bool = False,
) -> dict[str, Any]:
    return {
        "data": data,
        "errors": errors,
        "messages": messages,
        "metadata": {"transformed": 1} if transformed else {},
        "status": 0 if errors else 1,
        "warnings": None,
    }


def failure(message: str) -> dict[str, Any]:
    return result(errors=[message])


def call(
    account: AccountState, function: str, args: Args, now: float, faults: Faults
) -> dict[str, Any]:
    """Run ClamScanner::`function` as `account` (auth already checked)."""
    handler = HANDLERS.get(function)
    if handler is None:
        return failure(
            f"The system could not find the function “{function}” in the module “{MODULE}”."
        )
    if function != "disinfect_files" and any(isinstance(v, dict | list) for v in args.values()):
        return failure(
            f"The API function “{MODULE}::{function}” does not expect nested data structures."
        )
    if not account.spec.has_feature:
        return failure(f"You do not have the feature “{FEATURE}”.")
    account.advance(now)
    return handler(account, args, now, faults)


def get_scan_paths(account: AccountState, args: Args, now: float, faults: Faults) -> dict[str, Any]:
    allowed = sorted(t for t in account.spec.allowed_scan_types if t in PATH_MESSAGES)
    if not allowed:
        return failure(DISABLED)
    if faults.scan_paths_as_strings:
        return result(list(allowed), transformed=True)
    return result([{"id": t, "message": PATH_MESSAGES[t]} for t in allowed], transformed=True)


def _scan_type_error(account: AccountState, args: Args) -> str | None:
    if "scan_type" not in args:
        return "Provide the “scan_type” argument."
    value = args["scan_type"]
    if value == "":
        return "The “scan_type” argument cannot be empty."
    if value not in SCAN_TYPES:
        return (
            f"“{value}” is not a valid “scan_type” parameter value. "
            f"Select from one of the following: {', '.join(SCAN_TYPES)}"
        )
    if not account.spec.allowed_scan_types:
        return DISABLED
    if value not in account.spec.allowed_scan_types:
        return f"The scan type “{value}” is disabled for this account."
    return None


def start_scan(account: AccountState, args: Args, now: float, faults: Faults) -> dict[str, Any]:
    if account.spec.user in faults.ui_race_accounts and not account.ui_raced:
        account.ui_raced = True
        account.begin_scan(now, "home", faults)  # someone else's, from cPanel's UI
    error = _scan_type_error(account, args) or account.begin_scan(now, args["scan_type"], faults)
    return failure(error) if error else result()


def get_scan_status(
    account: AccountState, args: Args, now: float, faults: Faults
) -> dict[str, Any]:
    status = account.scan_status(now)
    if status is None:
        return result(messages=["No active scans."])
    started = status["time_started"]
    if faults.time_started_as_date:
        status = status | {"time_started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started))}
    elif faults.time_started_as_string:
        status = status | {"time_started": str(started)}
    return result(status)


def list_infected_files(
    account: AccountState, args: Args, now: float, faults: Faults
) -> dict[str, Any]:
    run = account.run
    found = account.infected_list(now)
    if run is None:
        return result([], transformed=True)
    file: Callable[[str], str] = run.abs
    if faults.infected_paths_relative:
        file = safe_html_encode
    elif faults.paths_unescaped:
        file = run.raw
    data = [{"file": file(p), "virus_type": safe_html_encode(v)} for p, v in found]
    return result(data, transformed=True)


def _actions_error(actions: Any) -> str | None:
    if not isinstance(actions, dict) or not actions:
        return HASHREF
    for value in actions.values():
        if value not in ACTIONS:
            return (
                f"“{value}” is not a valid “actions” parameter value. "
                f"Select from one of the following: {', '.join(ACTIONS)}"
            )
    return None


def disinfect_files(
    account: AccountState, args: Args, now: float, faults: Faults
) -> dict[str, Any]:
    actions = args.get("actions")
    error = _actions_error(actions)
    if error:
        return failure(error)
    assert isinstance(actions, dict)
    return result(account.disinfect(now, {str(k): str(v) for k, v in actions.items()}, faults))


def check_disinfection_status(
    account: AccountState, args: Args, now: float, faults: Faults
) -> dict[str, Any]:
    raw = args.get("last_id", 0)
    try:
        last_id = int(raw) if raw not in (None, "") else 0
    except (TypeError, ValueError):
        return failure(f"The “last_id” argument must be a positive integer, not “{raw}”.")
    answer = status_answer(account.task, account.home, now, last_id)
    if faults.disinfection_status_idle and answer["status"] == "none":
        answer["status"] = "idle"
    if faults.disinfection_done_without_type:
        answer["details"] = [_untyped_done(r) for r in answer["details"]]
    return result(answer)


def _untyped_done(record: dict[str, Any]) -> dict[str, Any]:
    """The final record as disinfect_files' doc text describes it: `{"status": "done"}`."""
    if record.get("type") != "done":
        return record
    return {"id": record["id"], "status": "done"}


HANDLERS: dict[str, Handler] = {
    "get_scan_paths": get_scan_paths,
    "start_scan": start_scan,
    "get_scan_status": get_scan_status,
    "list_infected_files": list_infected_files,
    "disinfect_files": disinfect_files,
    "check_disinfection_status": check_disinfection_status,
}
