"""The checks of `validate --check-api`, each a pure function over the answers a server gave.

They decide with parse.py, the very functions every run reads answers with, so the probe has no
second idea of the format: what a check passes, a run reads right; what it flags is where a run
would misread or fail. Each returns a `Finding` (assumptions.py). No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from orchestrator.client.assumptions import Finding, differs, holds, shown, unchecked
from orchestrator.client.parse import (
    Answer,
    parse_accounts,
    parse_disinfection,
    parse_disk_mib,
    parse_infected,
    parse_load,
    parse_scan_paths,
    parse_status,
    parse_whm,
    scan_in_progress,
    uapi_data,
)
from orchestrator.errors import ApiError, ProtocolError
from orchestrator.model import DisinfectionRecord, ScanType, StatusData

SCAN_TYPES = frozenset(str(t) for t in ScanType)
DISINFECTION_STATUSES = frozenset(("done", "running", "queued", "none"))
STEP_STATES = frozenset(("deleted", "error", "mailbox-cleansed", "no-action", "quarantined"))
#: Epoch seconds between 2000-01-01 and 2100-01-01: milliseconds or a year are not.
EPOCH_RANGE = (946_684_800, 4_102_444_800)
COUNTERS = ("scanned_file_count", "scanned_file_size", "total_file_count")
#: A character cPanel's encoder escapes, left as it is (a `&` not starting an entity).
_UNESCAPED = re.compile(r"""[<>"']|&(?!(?:amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);)""")
_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);")


# -- read-only checks -------------------------------------------------------------------------


def check_envelope(answer: Answer, *, whm: bool) -> Finding:
    """The answer to a ClamScanner read unwraps as every call's does (`parse.uapi_data`)."""
    key = "envelope"
    if whm:
        try:
            parse_whm(answer, "uapi_cpanel")
        except ApiError as exc:
            return unchecked(key, f"WHM refused uapi_cpanel: {exc}")
        except ProtocolError as exc:
            return differs(key, f"{exc}: keys {shown(sorted(answer))}")
    try:
        uapi_data(answer, "", "get_scan_paths", whm=whm)
    except ProtocolError as exc:
        return differs(key, f"{exc}: {shown(answer)}")
    except ApiError:
        pass  # a refusal in the expected envelope: the envelope holds
    if whm:
        return holds(key, "result object in data.uapi")
    command_line = "status" not in answer and isinstance(answer.get("result"), dict)
    return holds(key, "command-line envelope (accepted)" if command_line else "bare result object")


def check_scan_paths(data: Any) -> Finding:
    key = "scan-paths"
    items = data if isinstance(data, list) else [data] if isinstance(data, dict) else None
    if items is None:
        return differs(key, f"data is {shown(data)}")
    ids = parse_scan_paths(data)
    if len(ids) != len(items):
        return differs(key, f"entries without an id: {shown(items)}")
    if unknown := [i for i in ids if i not in SCAN_TYPES]:
        return differs(key, f"unknown scan types {shown(unknown)}")
    return holds(key, f"ids {', '.join(ids) or '(none)'}")


def check_scan_status(data: Any) -> Finding:
    key = "scan-status"
    try:
        status = parse_status(data)
    except ProtocolError as exc:
        return differs(key, f"{exc}: {shown(data)}")
    if status is None:
        return unchecked(key, "no scan status on this account yet (data null)")
    problems = []
    if str(data.get("scan_complete")) not in ("0", "1"):
        problems.append(f"scan_complete {shown(data.get('scan_complete'))}")
    problems += [f"{c} {shown(data.get(c))}" for c in COUNTERS if not _integer(data.get(c))]
    raw = data.get("time_started")
    if not epoch_seconds(status.time_started):
        problems.append(f"time_started {shown(raw)} is not epoch seconds")
    if problems:
        return differs(key, "; ".join(problems))
    kind = "a numeric string" if isinstance(raw, str) else "a number"
    return holds(key, f"time_started {shown(raw)} ({kind})")


def epoch_seconds(value: int | None) -> bool:
    return value is not None and EPOCH_RANGE[0] <= value <= EPOCH_RANGE[1]


def _integer(value: Any) -> bool:
    """What parse.py's int() reads as a number (a missing counter reads as 0 without a word)."""
    try:
        int(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


def check_listaccts(answer: Answer) -> Finding:
    key = "listaccts"
    try:
        parse_whm(answer, "listaccts")
        accounts = parse_accounts(answer)
    except ApiError as exc:
        return unchecked(key, f"WHM refused listaccts: {exc}")
    except ProtocolError as exc:
        return differs(key, f"{exc}: {shown(answer.get('data'))}")
    data = answer.get("data")
    entries = data.get("acct") if isinstance(data, dict) else None
    if not entries:
        return unchecked(key, "listaccts listed no account")
    problems = []
    for entry in entries:
        problems += _account_problems(entry)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return differs(key, "; ".join(problems[:3]) + more)
    return holds(key, f"{len(accounts)} accounts")


def _account_problems(entry: Any) -> list[str]:
    if not isinstance(entry, dict) or not isinstance(entry.get("user"), str):
        return [f"an entry without user: {shown(entry)}"]
    user = entry["user"]
    problems = []
    if not isinstance(entry.get("domain"), str):
        problems.append(f"{user}: domain {shown(entry.get('domain'))}")
    suspended = entry.get("suspended")
    if isinstance(suspended, bool) or str(suspended) not in ("0", "1"):
        problems.append(f"{user}: suspended {shown(suspended)}")
    if parse_disk_mib(entry.get("diskused")) is None:
        problems.append(f"{user}: diskused {shown(entry.get('diskused'))}")
    return problems


def check_loadavg(answer: Answer) -> Finding:
    key = "loadavg"
    try:
        parse_whm(answer, "systemloadavg")
    except ApiError as exc:
        return unchecked(key, f"WHM refused systemloadavg: {exc}")
    except ProtocolError as exc:
        return differs(key, str(exc))
    try:
        load = parse_load(answer)
    except ProtocolError as exc:
        return differs(key, f"{exc}: data {shown(answer.get('data'))}")
    return holds(key, f"one {load.one:g}, five {load.five:g}, fifteen {load.fifteen:g}")


def check_session(answer: Answer) -> Finding:
    """The answer of a read inside the session: a bare UAPI result object, as on /execute."""
    key = "session"
    try:
        uapi_data(answer, "", "get_scan_paths", whm=False)
    except ProtocolError as exc:
        return differs(key, f"inside the session: {exc}: {shown(answer)}")
    except ApiError as exc:
        return holds(key, f"session works (the call itself answered: {exc})")
    return holds(key, "session works")


def check_disinfection_status(data: Any) -> Finding:
    key = "disinfection-status"
    try:
        reply = parse_disinfection(data)
    except ProtocolError as exc:
        return differs(key, f"{exc}: {shown(data)}")
    if reply.status not in DISINFECTION_STATUSES:
        return differs(key, f"status {shown(reply.status)}")
    return holds(key, f"status {reply.status}, {len(reply.details)} records")


# -- checks that need a canary scan ------------------------------------------------------------


def check_scan_busy(refusal: str | None) -> Finding:
    """`refusal`: the error of a second start_scan sent during the first; None: it was taken."""
    key = "scan-busy"
    if refusal is None:
        return unchecked(key, "the second start_scan was taken: the first scan had finished")
    if scan_in_progress(refusal):
        return holds(key, shown(refusal))
    return differs(key, f"refused with {shown(refusal)}")


def check_new_scan(
    baseline: StatusData | None, seen: Sequence[StatusData | None], waited: float
) -> Finding:
    """`seen`: the statuses read after our start_scan, in order, until one was complete and new
    (or one showed the previous time_started on a scan that ran, or `waited` ran out)."""
    key = "new-scan"
    if baseline is None or baseline.time_started is None:
        return unchecked(key, "no earlier scan on the canary account to compare with: run again")
    verdict = new_scan_verdict(baseline.time_started, seen)
    if verdict is not None:
        return verdict
    return unchecked(key, f"the canary scan did not complete within {waited:g}s")


def new_scan_verdict(previous: int, seen: Sequence[StatusData | None]) -> Finding | None:
    """holds / differs once the reads so far decide it; None: keep reading."""
    key = "new-scan"
    stale = 0
    moved = False  # a read that was not the previous scan's complete status
    for status in seen:
        if status is None:
            return differs(key, "get_scan_status answered null after start_scan")
        same = status.time_started == previous
        if same and status.scan_complete and not moved:
            stale += 1
            continue
        moved = True
        if same:
            state = "complete" if status.scan_complete else "running"
            return differs(key, f"the new scan ({state}) kept time_started {previous}")
        if status.scan_complete:
            return holds(
                key,
                f"time_started {previous} -> {status.time_started}; the previous status "
                f"showed in {stale} of {len(seen)} reads",
            )
    return None


def check_infected_list(data: Any) -> Finding:
    key = "infected-list"
    try:
        files = parse_infected(data)
    except ProtocolError as exc:
        return differs(key, f"{exc}: {shown(data)}")
    if not files:
        return unchecked(key, "the canary scan listed no file: is it there, does ClamAV see it?")
    if relative := [p for p, _ in files if not p.startswith("/")]:
        return differs(key, f"file {shown(relative[0])} is not an absolute path")
    path, virus = files[0]
    return holds(key, f"{len(files)} file(s), e.g. {shown(path)}: {virus}")


def check_paths_escaped(data: Any) -> Finding:
    key = "paths-escaped"
    try:
        files = parse_infected(data)
    except ProtocolError:
        return unchecked(key, "the infected list itself could not be read")
    for path, _ in files:
        if _UNESCAPED.search(path):
            return differs(key, f"{shown(path)} holds a character cPanel escapes, as it is")
    if escaped := [p for p, _ in files if _ENTITY.search(p)]:
        return holds(key, shown(escaped[0]))
    return unchecked(
        key, "no listed path has a character cPanel escapes (& < > \" '): name the canary "
        "file e.g. eicar&test.txt to check",
    )  # fmt: skip


def check_disinfection_records(answers: Sequence[Any], files: int) -> Finding:
    """`answers`: the `data` of every check_disinfection_status read after disinfect_files
    (each file sent with `ignore`), the last one done or the wait ran out; `files`: how many."""
    key = "disinfection-records"
    records: list[DisinfectionRecord] = []
    for data in answers:
        try:
            records += parse_disinfection(data).details
        except ProtocolError as exc:
            return differs(key, f"{exc}: {shown(data)}")
        untyped = [d for d in data.get("details") or () if isinstance(d, dict) and "type" not in d]
        if untyped:
            return differs(key, f"a log record without type: {shown(untyped[0])}")
    if not any(r.type == "done" for r in records):
        return unchecked(key, "no record of type done before the wait ran out")
    steps = [r for r in records if r.type == "step"]
    if odd := [r.state for r in steps if r.state not in STEP_STATES]:
        return differs(key, f"step state {shown(odd[0])}")
    if acted := [r for r in steps if r.state != "no-action"]:
        return differs(key, f"ignore gave state {shown(acted[0].state)} for {shown(acted[0].file)}")
    if len(steps) != files:
        return differs(key, f"{len(steps)} step records for {files} file(s)")
    return holds(key, f"{len(steps)} step(s) no-action, then done")
