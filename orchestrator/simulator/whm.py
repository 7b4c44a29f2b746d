"""WHM API 1 functions: listaccts, uapi_cpanel and create_user_session (section 5)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any

from orchestrator.simulator import uapi
from orchestrator.simulator.account import AccountState
from orchestrator.simulator.referee import Request
from orchestrator.simulator.runtime import ServerRuntime

SEARCH_FIELDS = {
    "domain": ("domain",), "owner": ("owner",), "user": ("user",), "ip": ("ip",),
    "package": ("plan",), "domain_and_user": ("domain", "user"),
}  # fmt: skip
IP = "192.0.2.10"


def ok(command: str, data: Any, reason: str = "OK") -> dict[str, Any]:
    return {"data": data, "metadata": _meta(command, 1, reason)}


def fail(command: str, reason: str) -> dict[str, Any]:
    return {"metadata": _meta(command, 0, reason)}


def _meta(command: str, result: int, reason: str) -> dict[str, Any]:
    return {"command": command, "reason": reason, "result": result, "version": 1}


def _disk_used(account: AccountState) -> str:
    mib = math.ceil(sum(f.size for f in account.files.values()) / (1024 * 1024))
    return f"{mib}M" if mib else "none"


def acct_entry(account: AccountState, uid: int) -> dict[str, Any]:
    spec = account.spec
    start = spec.unix_startdate
    return {
        "user": spec.user, "domain": spec.domain, "owner": spec.owner, "plan": spec.plan,
        "email": f"{spec.user}@{spec.domain}", "ip": IP, "ipv6": [], "partition": "home",
        "diskused": _disk_used(account), "disklimit": "unlimited",
        "suspended": int(spec.suspended),
        "suspendreason": "Suspended for testing" if spec.suspended else "not suspended",
        "suspendtime": start + 86_400 if spec.suspended else 0,
        "is_locked": 0, "temporary": 0, "backup": 0, "legacy_backup": 0, "has_backup": 0,
        "shell": "/bin/bash", "theme": "jupiter", "uid": uid, "maxaddons": "unlimited",
        "startdate": time.strftime("%y %b %d %H:%M", time.gmtime(start)),
        "unix_startdate": start, "mailbox_format": "maildir", "outgoing_mail_hold": 0,
        "outgoing_mail_suspended": 0,
    }  # fmt: skip


def listaccts(rt: ServerRuntime, args: Mapping[str, Any]) -> dict[str, Any]:
    searchtype, search = args.get("searchtype"), args.get("search")
    entries = [acct_entry(a, 1000 + i) for i, a in enumerate(rt.accounts.values())]
    if searchtype or search:
        fields = SEARCH_FIELDS.get(str(searchtype or "user"))
        if fields is None:
            return fail("listaccts", "Unknown search type.")
        exact = args.get("searchmethod") == "exact"
        try:
            pattern = re.compile(str(search or ""), re.IGNORECASE)
        except re.error:
            return fail("listaccts", f"Invalid regular expression: {search}")
        entries = [e for e in entries if _matches(e, fields, str(search or ""), pattern, exact)]
    if rt.faults.listaccts_suspended_as_text:
        entries = [e | {"suspended": "true" if e["suspended"] else "false"} for e in entries]
    if want := args.get("want"):
        keep = set(str(want).split(","))
        entries = [{k: v for k, v in e.items() if k in keep} for e in entries]
    return ok("listaccts", {"acct": entries} if entries else {})


def _matches(
    entry: dict[str, Any], fields: tuple[str, ...], search: str, pattern: re.Pattern[str],
    exact: bool,
) -> bool:  # fmt: skip
    values = [str(entry[f]) for f in fields]
    if exact:
        return any(v.lower() == search.lower() for v in values)
    return any(pattern.search(v) for v in values)


def uapi_cpanel(
    rt: ServerRuntime, args: Mapping[str, Any], now: float, req: Request
) -> dict[str, Any]:
    for key in ("cpanel.user", "cpanel.module", "cpanel.function"):
        if not args.get(key):
            return fail("uapi_cpanel", f"Provide the “{key}” argument.")
    user, module = str(args["cpanel.user"]), str(args["cpanel.module"])
    function = str(args["cpanel.function"])
    account = rt.accounts.get(user)
    if account is None:
        return fail("uapi_cpanel", f"The user “{user}” does not exist.")
    params = {k: v for k, v in args.items() if not k.startswith(("cpanel.", "api."))}
    if module != uapi.MODULE:
        inner = uapi.failure(
            f"Failed to load module “{module}”: Can't locate Cpanel/API/{module}.pm"
        )
    elif any(isinstance(v, dict | list) for v in params.values()):
        # uapi_cpanel does not pass requires_json through: nested data is refused for everyone
        inner = uapi.failure(
            f"The API function “{module}::{function}” does not expect nested data structures."
        )
    else:
        inner = rt.call_uapi(user, function, params, now, req)
    if rt.faults.uapi_envelope_legacy:
        return ok("uapi_cpanel", {"result": inner})
    return ok("uapi_cpanel", {"uapi": inner})  # result 1 even when the inner call failed


def create_user_session(rt: ServerRuntime, args: Mapping[str, Any], now: float) -> dict[str, Any]:
    command = "create_user_session"
    for key in ("user", "service"):
        if not args.get(key):
            return fail(command, f"Provide the “{key}” argument.")
    user, service = str(args["user"]), str(args["service"])
    if service != "cpaneld":
        return fail(command, f"The simulator creates only “cpaneld” sessions, not “{service}”.")
    account = rt.accounts.get(user)
    if account is None:
        return fail(command, f"The user “{user}” does not exist.")
    if account.spec.suspended:
        reason = f"Cannot create a session for “{user}” because they are currently suspended."
        return fail(command, reason)
    return ok(command, rt.sessions.create(user, now, rt.base_url), "Created session")


def systemloadavg(rt: ServerRuntime, now: float) -> dict[str, Any]:
    """The load averages as numbers (current docs; older servers sent strings)."""
    if rt.faults.loadavg_unavailable:
        return fail("systemloadavg", "Permission denied: systemloadavg is not available.")
    if rt.fault_state.loadavg_fails():  # a transient failure (Faults.loadavg_fail_*)
        return fail("systemloadavg", "Failed to read the system load average: try again.")
    one, five, fifteen = rt.loadavg(now)
    if rt.faults.loadavg_as_list:
        return ok("systemloadavg", [round(one, 2), round(five, 2), round(fifteen, 2)])
    return ok("systemloadavg", {"one": round(one, 2), "five": round(five, 2),
                                "fifteen": round(fifteen, 2)})  # fmt: skip
