"""What clamfleet assumes about cPanel's answers (`validate --check-api`): the catalogue, and
the verdict of one check, a `Finding`: the assumption holds, differs (with what was seen), or
could not be checked (with why). The checks themselves are in answer_checks.py. Pure.

The catalogue `ASSUMPTIONS` is also the README's list (a test keeps the two in step).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    HOLDS = "holds"
    DIFFERS = "differs"
    UNCHECKED = "could not check"
    NOT_USED = "not used"  # clamfleet never relies on it for this server (its route)


@dataclass(frozen=True, slots=True)
class Assumption:
    key: str
    claim: str  # one line: what clamfleet assumes
    if_differs: str  # one line: what clamfleet then does
    needs_scan: bool = False  # checked only with a canary scan (--scan-canary)
    whm_only: bool = False  # relied on only through a WHM token


@dataclass(frozen=True, slots=True)
class Finding:
    key: str
    verdict: Verdict
    detail: str = ""


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        "envelope",
        "UAPI answers are the bare result object on /execute, and inside data.uapi (after "
        "metadata.result) through WHM uapi_cpanel",
        "every ClamScanner call fails as a protocol error: nothing is scanned, nothing misread",
    ),
    Assumption(
        "scan-paths",
        "get_scan_paths answers a list of {id, message}, ids among home, mail, public_html, "
        "public_ftp",
        "validate --check-connectivity reports the scan types as not allowed (runs never call it)",
    ),
    Assumption(
        "scan-status",
        "get_scan_status answers null before the first scan, else scan_complete 0/1, integer "
        "counters and time_started in epoch seconds (a number or a numeric string)",
        "a scan's status is unreadable or cannot be told from the previous scan's: targets "
        "fail (protocol) or run into timeouts.scan, never a false clean",
    ),
    Assumption(
        "listaccts",
        "listaccts answers data.acct[] with user, domain, suspended 0/1 and diskused like 14M "
        "or none (acct left out when there is no account)",
        "accounts: all misses accounts or scans suspended ones as active; largest-first "
        "ordering falls back to the listed order",
        whm_only=True,
    ),
    Assumption(
        "loadavg",
        "systemloadavg answers data {one, five, fifteen}, numbers or numeric strings",
        "load-aware pacing reads no load: the server keeps max_concurrent_scans (one warning)",
        whm_only=True,
    ),
    Assumption(
        "session",
        "create_user_session gives url and cp_security_token, its login sets a session cookie, "
        "and /cpsessNNN/execute/... answers inside that session",
        "disinfect_files cannot be sent through WHM: those files fail (auth or protocol); "
        "scans and reports are unaffected",
        whm_only=True,
    ),
    Assumption(
        "disinfection-status",
        "check_disinfection_status answers {status: done|running|queued|none, details: [...]}",
        "a disinfection's progress is misread: its files end with outcome unknown after "
        "timeouts.disinfection",
    ),
    Assumption(
        "scan-busy",
        "start_scan during a scan of the account fails with cPanel's English text "
        "'... already in progress ...'",
        "a scan someone else started at the same moment fails that target (kind api) instead "
        "of being waited for",
        needs_scan=True,
    ),
    Assumption(
        "new-scan",
        "each start_scan writes a new time_started; until then get_scan_status may still show "
        "the previous complete scan, told apart by its time_started",
        "the new scan's status cannot be told from the previous one's: a target may run into "
        "timeouts.scan (failed, never a false clean)",
        needs_scan=True,
    ),
    Assumption(
        "infected-list",
        "list_infected_files answers a list of {file, virus_type}, file an absolute path",
        "infected files cannot be listed (protocol error), or policy path globs miss them",
        needs_scan=True,
    ),
    Assumption(
        "paths-escaped",
        "infected paths come HTML-escaped (& as &amp;), and clamfleet unescapes them once",
        "a path whose name looks like an entity is unescaped once too often: its action key "
        "does not match and cPanel reports no-action",
        needs_scan=True,
    ),
    Assumption(
        "disinfection-records",
        "disinfect_files takes POST JSON {actions}; check_disinfection_status then lists a step "
        "per file (state no-action for ignore) and ends with a record of type done",
        "a disinfection never reads as finished: its files end with outcome unknown after "
        "timeouts.disinfection",
        needs_scan=True,
    ),
)
BY_KEY = {a.key: a for a in ASSUMPTIONS}


def holds(key: str, detail: str = "") -> Finding:
    return Finding(key, Verdict.HOLDS, detail)


def differs(key: str, detail: str) -> Finding:
    return Finding(key, Verdict.DIFFERS, detail)


def unchecked(key: str, why: str) -> Finding:
    return Finding(key, Verdict.UNCHECKED, why)


def shown(value: Any, limit: int = 120) -> str:
    """A value as JSON, cut short: what a row shows of what the server sent."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
