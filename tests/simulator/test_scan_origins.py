"""Simulator: who started a scan. Scans a run's start_scan created (per run id, account and scan
type, with what each found), scans started from cPanel's UI (no request, not refereed), a status
left reset by a start refused while clamd was down, and clamd down for some accounts only."""

from __future__ import annotations

import pytest

from orchestrator.simulator import AccountSpec, Faults
from tests.simulator.raw import MBOX, SHELL, WEB, Api, alice, fleet_of, running

CLAMD_DOWN = "The system failed to connect to the “ClamAV®” service"
BUSY = "A virus scan is already in progress! Please wait until it completes before scanning again."


def as_run(api: Api, user: str, run: str) -> dict[str, str]:
    return {**api.token_header(user), "User-Agent": f"clamfleet/0.1.0 (run {run})"}


async def start(api: Api, user: str, scan_type: str, run: str) -> tuple[int, str, str]:
    path = f"/execute/ClamScanner/start_scan?scan_type={scan_type}"
    return await api.raw("GET", path, headers=as_run(api, user, run))


@pytest.mark.asyncio
async def test_each_scan_a_run_started_is_recorded_with_what_it_found() -> None:
    bob = AccountSpec("bob", files=(WEB,))
    async with running(fleet_of(alice(), bob)) as api:
        await start(api, "alice", "public_html", "run1")
        await start(api, "bob", "home", "run1")
        api.clock.advance(1000)
        await start(api, "alice", "mail", "run2")  # another run, another type
        api.clock.advance(1000)
        started = api.fleet.scans_started("sim01")
    assert started == {
        ("run1", "alice", "public_html"): [(SHELL.relpath, "Php.Webshell-1")],
        ("run1", "bob", "home"): [],
        ("run2", "alice", "mail"): [(MBOX.relpath, "Html.Phishing.Bank-2")],
    }


@pytest.mark.asyncio
async def test_a_scan_not_yet_complete_shows_only_what_it_found_so_far() -> None:
    async with running(fleet_of(alice())) as api:
        await start(api, "alice", "home", "run1")
        early = api.fleet.scans_started("sim01")
        api.clock.advance(1000)
        late = api.fleet.scans_started("sim01")
    assert early == {("run1", "alice", "home"): []}
    assert len(late[("run1", "alice", "home")]) == 3


@pytest.mark.asyncio
@pytest.mark.expect_violations("scan-overlap")
async def test_a_ui_scan_is_not_recorded_nor_refereed_but_holds_the_account() -> None:
    async with running(fleet_of(alice())) as api:
        assert api.fleet.start_scan_as_ui("sim01", "alice", "mail") is None
        assert api.fleet.calls("sim01") == 0, "not a request"
        running_now = api.fleet.account_state("sim01", "alice").scan_running
        assert api.fleet.start_scan_as_ui("sim01", "alice", "home") == BUSY
        assert api.fleet.violations() == [], "the UI is not a client the referee judges"
        refused = await api.uapi("alice", "start_scan", scan_type="home")  # a client colliding
        started = api.fleet.scans_started("sim01")
    assert running_now
    assert refused["errors"] == [BUSY]
    assert started == {}


@pytest.mark.asyncio
async def test_a_ui_start_refused_while_clamd_was_down_leaves_a_reset_status_and_no_scan() -> None:
    async with running(fleet_of(alice())) as api:
        await api.scan_to_completion("alice")
        before = (await api.uapi("alice", "get_scan_status"))["data"]
        assert api.fleet.fail_start_as_ui("sim01", "alice") == CLAMD_DOWN
        api.clock.advance(1000)  # it never moves: nothing runs behind it
        after = (await api.uapi("alice", "get_scan_status"))["data"]
        view = api.fleet.account_state("sim01", "alice")
        again = await start(api, "alice", "home", "run2")  # clamd is up: a new run scans
    assert before["scan_complete"] == 1
    assert after["scan_complete"] == 0
    assert after["scanned_file_count"] == after["total_file_count"] == 0
    assert after["infected_files"] == []
    assert after["time_started"] > before["time_started"]
    assert not view.scan_running
    assert again[0] == 200 and '"status":1' in again[2]


@pytest.mark.asyncio
async def test_clamd_down_for_one_account_refuses_only_its_scans() -> None:
    bob = AccountSpec("bob", files=(WEB,))
    faults = Faults(clamd_down_accounts=frozenset({"alice"}))
    async with running(fleet_of(alice(), bob, faults=faults)) as api:
        refused = await api.uapi("alice", "start_scan", scan_type="home")
        took = await api.uapi("bob", "start_scan", scan_type="home")
        api.clock.advance(1000)
        status = (await api.uapi("alice", "get_scan_status"))["data"]
    assert (refused["status"], refused["errors"]) == (0, [CLAMD_DOWN])
    assert took["status"] == 1
    assert status["scan_complete"] == 0 and status["scanned_file_count"] == 0
