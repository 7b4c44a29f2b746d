"""Pure parsing of cPanel's answers into values or typed errors (cpanel-api.md section 2, 6).

Three envelopes carry the same UAPI result object: bare over `/execute`, wrapped in
`apiversion/func/module/result` by the command-line `uapi` (accepted too), and inside
`data.uapi` through WHM `uapi_cpanel`, where `metadata.result` is 1 even when the inner call
failed. Success is read from the body, never from the HTTP status alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypedDict

from orchestrator.errors import (
    ApiError,
    AuthError,
    FeatureMissing,
    ProtocolError,
    TransportError,
    http_status_text,
)
from orchestrator.model import DisinfectionRecord, DisinfectionStatusReply, LoadReading, StatusData

Answer = dict[str, Any]


class _Where(TypedDict):
    """The keywords every error raised here carries: which server, which call."""

    server: str
    function: str


_LOGIN_MARKERS = ("tfa_login_form", 'name="login"', 'id="login', "login_form", "<form")


@dataclass(frozen=True, slots=True)
class Account:
    user: str
    domain: str
    suspended: bool
    disk_used_mib: float | None = None  # listaccts `diskused`; None: not reported or unreadable


def check_status(status: int, server: str, function: str, retry_after: float | None = None) -> None:
    """Refused credentials (401/403) are final; 429 and 5xx are transient.

    The errors name the status and carry it (`http_status`): a status line is an answer, so the
    call did not run (errors.py), which a state-changing call needs to know.
    """
    if status in (401, 403):
        raise AuthError(
            f"{function}: {http_status_text(status)}: credentials refused "
            "(a cPHulk lockout of this IP is answered the same way)",
            server=server,
            function=function,
            http_status=status,
        )
    if status == 429 or status >= 500:
        wait = f" (Retry-After {retry_after:g} s)" if retry_after is not None else ""
        raise TransportError(
            f"{function}: {http_status_text(status)}{wait}",
            server=server,
            function=function,
            http_status=status,
            retry_after=retry_after,
        )


def is_login_page(content_type: str, body: bytes) -> bool:
    """An HTML login (or 2FA) form where JSON was expected: the credentials did not work."""
    if "html" not in content_type.lower() and body[:256].lstrip()[:1] != b"<":
        return False  # the common case, decided without decoding the body
    lowered = body.decode("utf-8", "replace").lower()
    return any(marker in lowered for marker in _LOGIN_MARKERS)


def check_answer(
    status: int,
    content_type: str,
    body: bytes,
    server: str,
    function: str,
    retry_after: float | None = None,
) -> Answer:
    """HTTP status, content type and JSON decoding; the body's own verdict is read later."""
    check_status(status, server, function, retry_after)
    where: _Where = {"server": server, "function": function}
    text = body.decode("utf-8", "replace")
    answered = "" if 200 <= status < 300 else f" ({http_status_text(status)})"
    if "html" in content_type.lower() or text.lstrip()[:1] == "<":
        if is_login_page(content_type, body):
            raise AuthError(
                f"{function} answered with a login page, not JSON{answered}",
                http_status=status,
                **where,
            )
        raise ProtocolError(
            f"{function} answered HTML, not JSON{answered}", http_status=status, **where
        )
    if not 200 <= status < 300:
        raise ProtocolError(f"{function}: {http_status_text(status)}", http_status=status, **where)
    try:
        answer = json.loads(text)
    except ValueError:
        raise ProtocolError(
            f"{function} answered invalid or truncated JSON", http_status=status, **where
        ) from None
    if not isinstance(answer, dict):
        raise ProtocolError(f"{function} answered JSON that is not an object", **where)
    return answer


def parse_whm(answer: Answer, function: str) -> Answer:
    """WHM API 1: `metadata.result` must be 1; `reason` says why not."""
    metadata = answer.get("metadata")
    if not isinstance(metadata, dict):
        cpanelresult = answer.get("cpanelresult")
        if isinstance(cpanelresult, dict) and cpanelresult.get("error"):
            raise AuthError(str(cpanelresult["error"])[:200], function=function)
        raise ProtocolError(f"{function}: WHM answer without metadata", function=function)
    if str(metadata.get("result")) != "1":
        reason = str(metadata.get("reason") or "WHM API call failed")[:300]
        raise ApiError(f"{function}: {reason}", function=function)
    return answer


def parse_uapi(result: Any, server: str, function: str) -> Any:
    """The UAPI result object: `status` 1 gives `data`; 0 raises with cPanel's `errors`."""
    where: _Where = {"server": server, "function": function}
    if (
        isinstance(result, dict)
        and "status" not in result
        and isinstance(result.get("result"), dict)
    ):
        result = result["result"]  # the command-line envelope
    if not isinstance(result, dict) or "status" not in result:
        raise ProtocolError(f"{function}: not a UAPI result object", **where)
    if str(result["status"]) == "1":
        return result.get("data")
    if str(result["status"]) != "0":
        raise ProtocolError(f"{function}: UAPI status {result['status']!r}", **where)
    errors = result.get("errors") or []
    message = "; ".join(str(e) for e in errors)[:500] if isinstance(errors, list) else str(errors)
    message = message or f"{function} failed"
    if "clamavconnector_scan" in message or "is disabled for this account" in message:
        raise FeatureMissing(message, **where)
    raise ApiError(message, **where)


def uapi_data(answer: Answer, server: str, function: str, *, whm: bool) -> Any:
    """The UAPI function's `data` from a whole answer: the bare (or command-line) result object,
    or through WHM `uapi_cpanel` (`whm`) the one in `data.uapi`, after `metadata.result`."""
    if not whm:
        return parse_uapi(answer, server, function)
    data = parse_whm(answer, function).get("data")
    return parse_uapi(data.get("uapi") if isinstance(data, dict) else None, server, function)


def parse_status(data: Any) -> StatusData | None:
    if data is None:
        return None  # "No active scans.": this account never scanned
    if not isinstance(data, dict) or "scan_complete" not in data:
        raise ProtocolError(
            "get_scan_status: data is not a status object", function="get_scan_status"
        )
    scanned_bytes = _int(data.get("scanned_file_size"))
    size_field = _int(data.get("total_file_size_MiB"))
    return StatusData(
        scan_complete=_int(data.get("scan_complete")) == 1,
        time_started=_int_or_none(data.get("time_started")),
        scanned_file_count=_int(data.get("scanned_file_count")),
        scanned_file_size=scanned_bytes,
        total_file_count=_int(data.get("total_file_count")),
        # bytes only from the first scanned file on (cpanel-api.md 3.3), and never below
        # what has been scanned already
        total_bytes=size_field if 0 < scanned_bytes <= size_field else 0,
    )


def parse_infected(data: Any) -> tuple[tuple[str, str], ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ProtocolError(
            "list_infected_files: data is not a list", function="list_infected_files"
        )
    out = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("file"), str):
            raise ProtocolError(
                "list_infected_files: entry without file", function="list_infected_files"
            )
        out.append((item["file"], str(item.get("virus_type") or "unknown")))
    return tuple(out)


def parse_scan_paths(data: Any) -> tuple[str, ...]:
    items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    return tuple(str(i["id"]) for i in items if isinstance(i, dict) and "id" in i)


def parse_task_id(data: Any) -> str:
    if not isinstance(data, dict) or not data.get("task_id"):
        raise ProtocolError("disinfect_files: no task_id in the answer", function="disinfect_files")
    return str(data["task_id"])


def parse_disinfection(data: Any) -> DisinfectionStatusReply:
    function = "check_disinfection_status"
    if not isinstance(data, dict) or "status" not in data:
        raise ProtocolError(f"{function}: data is not a status object", function=function)
    details = data.get("details") or []
    if not isinstance(details, list):
        raise ProtocolError(f"{function}: details is not a list", function=function)
    records = tuple(_record(d) for d in details if isinstance(d, dict) and "id" in d)
    return DisinfectionStatusReply(str(data["status"]), records)


def _record(d: dict[str, Any]) -> DisinfectionRecord:
    file = d.get("file")
    message = d.get("message")
    return DisinfectionRecord(
        id=_int(d.get("id")),
        type=str(d.get("type") or "step"),
        state=str(d.get("state") or ""),
        file=str(file) if file is not None else None,
        message=str(message) if message is not None else None,
    )


def parse_accounts(answer: Answer) -> tuple[Account, ...]:
    data = answer.get("data")
    accounts = data.get("acct") if isinstance(data, dict) else None
    if accounts is None:
        return ()  # zero matches: cPanel leaves `acct` out entirely
    if not isinstance(accounts, list):
        raise ProtocolError("listaccts: acct is not a list", function="listaccts")
    return tuple(
        Account(
            str(a["user"]),
            str(a.get("domain") or ""),
            _int(a.get("suspended")) == 1,
            parse_disk_mib(a.get("diskused")),
        )
        for a in accounts
        if isinstance(a, dict) and a.get("user")
    )


def parse_load(answer: Answer) -> LoadReading:
    """WHM `systemloadavg`: `data: {one, five, fifteen}`, numbers now, strings on older servers."""
    data = answer.get("data")
    if not isinstance(data, dict):
        raise ProtocolError("systemloadavg: data is not an object", function="systemloadavg")
    values = []
    for key in ("one", "five", "fifteen"):
        value = _load_value(data.get(key))
        if value is None:
            message = f"systemloadavg: {key} is not a load average"
            raise ProtocolError(message, function="systemloadavg")
        values.append(value)
    return LoadReading(*values)


def _load_value(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 and number != float("inf") else None


_DISK = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", re.IGNORECASE)
_DISK_UNIT = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}


def parse_disk_mib(value: Any) -> float | None:
    """listaccts' `diskused` in MiB: `"14M"`, `"1.5G"`, `"none"` (0); None when unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    if value.strip().lower() == "none":
        return 0.0
    match = _DISK.fullmatch(value)
    if match is None:
        return None
    return float(match[1]) * _DISK_UNIT[match[2].upper()]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


#: cPanel's CommandAlreadyRunning text for start_scan (cpanel-api.md 3.2, step 3).
SCAN_IN_PROGRESS = "already in progress"


def scan_in_progress(message: str) -> bool:
    """Whether a start_scan error says a scan of the account is already running.

    cPanel's texts are localized: on a server in another language this reads False, and the
    refusal ends the target as an `api` failure (a failure, never a false clean)."""
    return SCAN_IN_PROGRESS in message.lower()
