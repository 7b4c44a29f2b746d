"""The part of `validate --check-api` only a scan can show, run on the one account the user
named and allowed (`--canary-account NAME --scan-canary`), and on no other.

The sequence, on that account:

1. get_scan_status: the previous scan (its time_started is the baseline). A scan running
   there already: nothing is started, the rows say so.
2. start_scan, then at once a second one: cPanel refuses it with its "already in progress"
   text (scan-busy). cPanel resets the status file before that refusal, and the running scan
   rewrites it at its next file (cpanel-api.md 3.2): the first scan goes on unharmed.
3. get_scan_status every poll_interval.min until the scan is complete (new-scan; scan-status
   too, when no account had a status before).
4. list_infected_files (infected-list, paths-escaped).
5. disinfect_files with `ignore` for every listed file, the one action that changes no file
   (cPanel logs `no-action`, cpanel-api.md 3.5), then check_disinfection_status until its
   done record (disinfection-records). Its one effect: cPanel deletes the account's infected
   list when the task ends; the files stay where they are, and the next scan lists them again.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from orchestrator.client import ServerClient
from orchestrator.client.answer_checks import (
    check_disinfection_records,
    check_infected_list,
    check_new_scan,
    check_paths_escaped,
    check_scan_busy,
    check_scan_status,
    new_scan_verdict,
)
from orchestrator.client.assumptions import Finding, differs, unchecked
from orchestrator.client.parse import parse_disinfection, parse_infected, parse_status, uapi_data
from orchestrator.config import Settings
from orchestrator.errors import ApiError, AuthError, ProtocolError
from orchestrator.model import Action, ScanType, StatusData

#: A canary's scan and disinfection are small: the probe waits no longer than this for either.
SCAN_LIMIT = 600.0
DISINFECTION_LIMIT = 300.0
Add = Callable[[Finding], None]
SCAN_ROWS = ("scan-busy", "new-scan", "infected-list", "paths-escaped", "disinfection-records")


@dataclass(frozen=True, slots=True)
class Limits:
    poll: float
    scan: float
    disinfection: float

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.poll_interval.min,
            min(settings.timeouts.scan, SCAN_LIMIT),
            min(settings.timeouts.disinfection, DISINFECTION_LIMIT),
        )


async def run(
    client: ServerClient, account: str, scan_type: ScanType, limits: Limits, add: Add
) -> None:
    """Each finding goes to `add` as soon as it is known (an error later keeps them)."""
    baseline = await client.get_scan_status(account)
    if baseline is not None and not baseline.scan_complete:
        _all_unchecked(add, "a scan of the canary account is running: try again later")
        return
    try:
        await client.start_scan(account, scan_type)
    except ApiError as exc:
        _all_unchecked(add, f"start_scan refused: {exc}")
        return
    try:
        await client.start_scan(account, scan_type)
        refusal = None
    except ApiError as exc:
        refusal = str(exc)
    add(check_scan_busy(refusal))
    if not await _scan(client, account, baseline, limits, add):
        _all_unchecked(add, f"the canary scan did not complete within {limits.scan:g}s")
        return
    await _results(client, account, limits, add)


async def _scan(
    client: ServerClient, account: str, baseline: StatusData | None, limits: Limits, add: Add
) -> bool:
    """Poll until the scan is complete (and, after an earlier scan, new-scan decided)."""
    previous = baseline.time_started if baseline is not None else None
    seen: list[StatusData | None] = []
    deadline = time.monotonic() + limits.scan
    finished, data = False, None
    while not finished and time.monotonic() < deadline:
        if seen:
            await anyio.sleep(limits.poll)
        data = await _data(client, account, "get_scan_status")
        try:
            status = parse_status(data)
        except ProtocolError as exc:
            add(check_scan_status(data))
            add(unchecked("new-scan", str(exc)))
            return False
        seen.append(status)
        decided = previous is None or new_scan_verdict(previous, seen) is not None
        finished = status is not None and status.scan_complete and decided
    add(check_new_scan(baseline, seen, limits.scan))
    if seen and seen[-1] is not None:
        add(check_scan_status(data))
    return finished


async def _results(client: ServerClient, account: str, limits: Limits, add: Add) -> None:
    data = await _data(client, account, "list_infected_files")
    add(check_infected_list(data))
    add(check_paths_escaped(data))
    try:
        files = parse_infected(data)
    except ProtocolError:
        files = ()
    if not files:
        add(unchecked("disinfection-records", "no listed file to send ignore for"))
        return
    # The workflow's own unescaping (workflow/scan.py): the key cPanel matches.
    actions = {html.unescape(path): Action.IGNORE for path, _ in files}
    try:
        await client.disinfect(account, actions)
    except (ApiError, ProtocolError) as exc:
        add(differs("disinfection-records", f"disinfect_files: {exc}"))
        return
    except AuthError as exc:
        if exc.http_status is not None:
            raise  # credentials refused: the server's probe ends here
        add(differs("disinfection-records", f"disinfect_files: {exc}"))
        return
    add(await _disinfection(client, account, len(actions), limits))


async def _disinfection(client: ServerClient, account: str, files: int, limits: Limits) -> Finding:
    """check_disinfection_status with last_id, as a run polls it, until its done record."""
    answers: list[Any] = []
    last_id = 0
    deadline = time.monotonic() + limits.disinfection
    while time.monotonic() < deadline:
        params = {"last_id": str(last_id)} if last_id else None
        data = await _data(client, account, "check_disinfection_status", params)
        answers.append(data)
        try:
            reply = parse_disinfection(data)
        except ProtocolError:
            break  # the check says what differs
        last_id = max([last_id, *(r.id for r in reply.details)])
        if reply.status == "done" or any(r.type == "done" for r in reply.details):
            break
        await anyio.sleep(limits.poll)
    return check_disinfection_records(answers, files)


async def _data(
    client: ServerClient, account: str, function: str, params: dict[str, str] | None = None
) -> Any:
    """A read's `data`, unwrapped as every run does (a refusal raises, as it does there)."""
    answer = await client.read_answer(account, function, params)
    return uapi_data(answer, "", function, whm=client.via_whm)


def _all_unchecked(add: Add, why: str) -> None:
    """Every scan row not decided yet (`add` keeps a decided one)."""
    for key in SCAN_ROWS:
        add(unchecked(key, why))
