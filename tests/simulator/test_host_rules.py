"""The referee's night rules, against raw clients: hammering a server during an outage, and more
scans on one host than its cap; and how a host's several inventory entries combine into one
promise (the smallest rate and scan cap)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from orchestrator.client import user_agent
from orchestrator.simulator import (
    AccountSpec,
    Faults,
    FleetSpec,
    ManualClock,
    SimulatedFleet,
    SimulatorThread,
    promises,
)
from orchestrator.simulator import referee as referee_module
from orchestrator.simulator.promises import ServerRules, host_rules
from tests.simulator.raw import Api, alice, fleet_of
from tests.support import edit_inventory

STATUS = "/execute/ClamScanner/get_scan_status"
OUTAGE_503 = Faults(outage_mode="503", outage_on="get_scan_status", outage_seconds=60)


@asynccontextmanager
async def refereed(
    spec: FleetSpec, run: str = "r1", *, shared_scan_cap: bool | None = None,
    client: str | None = None,
) -> AsyncIterator[Api]:  # fmt: skip
    clock = ManualClock()
    async with (
        SimulatedFleet(spec, clock=clock, shared_scan_cap=shared_scan_cap) as fleet,
        aiohttp.ClientSession(headers={"User-Agent": user_agent(run, client)}) as http,
    ):
        yield Api(fleet, http, clock)


def other_run(api: Api, run: str, client: str | None = None) -> Api:
    http = aiohttp.ClientSession(
        headers={"User-Agent": user_agent(run, client)},
        connector=api.http.connector,
        connector_owner=False,
    )
    return Api(api.fleet, http, api.clock)


async def status(api: Api) -> int:
    return (await api.raw("GET", STATUS, headers=api.token_header("alice")))[0]


# -- outage-hammering -------------------------------------------------------------------------


@pytest.mark.expect_violations("outage-hammering")
@pytest.mark.asyncio
async def test_requests_in_a_503_outage_closer_than_a_probe_interval_are_hammering() -> None:
    async with refereed(fleet_of(alice(), faults=OUTAGE_503)) as api:
        grace = [await status(api) for _ in range(4)]  # cap 2 + 2, all at one instant: forgiven
        fifth = await status(api)
        [violation] = api.fleet.violations()
        api.clock.advance(0.5)
        await status(api)  # half a second later: still too soon
        for _ in range(3):  # then probes a second apart: what a breaker sends
            api.clock.advance(1.0)
            await status(api)
    assert grace == [503] * 4 and fifth == 503
    assert (violation.rule, violation.run, violation.function) == (
        "outage-hammering",
        "r1",
        "get_scan_status",
    )
    assert "request 5 " in violation.message and "503 outage #1" in violation.message
    assert [v.rule for v in api.fleet.violations()] == ["outage-hammering"] * 2


@pytest.mark.asyncio
async def test_a_client_that_backs_off_in_an_outage_and_another_run_are_not_hammering() -> None:
    async with refereed(fleet_of(alice(), faults=OUTAGE_503)) as api:
        for _ in range(3):  # in flight when it began, plus a breaker's few failures
            await status(api)
        for cool_down in (1.0, 2.0, 4.0, 8.0):  # one probe per growing cool-down
            api.clock.advance(cool_down)
            await status(api)
        other = other_run(api, "r2")  # another client: its own grace
        try:
            for _ in range(4):
                await status(other)
        finally:
            await other.http.close()
        api.clock.advance(60)
        answers = [await status(api) for _ in range(10)]  # the outage is over: no limit here
    assert answers == [200] * 10
    assert api.fleet.violations() == []


@pytest.mark.expect_violations("outage-hammering")
@pytest.mark.asyncio
async def test_a_resumed_process_of_the_run_gets_its_own_few_requests_into_an_outage() -> None:
    # the first process met the outage and was killed mid-run; `--resume` starts another
    # process of the same run, which cannot know the host is down: its first requests are
    # forgiven again (the run id is the same, the client tag is not)
    async with refereed(fleet_of(alice(), faults=OUTAGE_503), client="first") as api:
        for _ in range(4):
            await status(api)
        resumed = other_run(api, "r1", client="second")
        try:
            answers = [await status(resumed) for _ in range(4)]
            api.clock.advance(1.0)
            answers.append(await status(resumed))
            hammering = await status(resumed)  # its fifth... sixth, at once: hammering
        finally:
            await resumed.http.close()
    assert answers == [503] * 5 and hammering == 503
    [violation] = api.fleet.violations()
    assert (violation.rule, violation.run) == ("outage-hammering", "r1")
    assert "request 6 " in violation.message


@pytest.mark.expect_violations("outage-hammering")
@pytest.mark.asyncio
async def test_the_probe_interval_is_a_module_constant_tests_may_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(referee_module, "MIN_PROBE_INTERVAL", 5.0)
    async with refereed(fleet_of(alice(), faults=OUTAGE_503)) as api:
        for _ in range(4):
            await status(api)
        api.clock.advance(2.0)  # a second and more: fine by default, not at 5 s
        await status(api)
    assert [v.rule for v in api.fleet.violations()] == ["outage-hammering"]


# -- host-scan-cap ----------------------------------------------------------------------------


def three(**faults: Any) -> FleetSpec:
    return fleet_of(alice(), AccountSpec("bob"), AccountSpec("carol"), faults=Faults(**faults))


@pytest.mark.expect_violations("host-scan-cap")
@pytest.mark.asyncio
async def test_a_third_scan_on_a_host_whose_token_entries_share_a_cap_of_two_is_recorded(
    tmp_path: Path,
) -> None:
    async with refereed(three(), shared_scan_cap=True) as api:
        keys = {"max_concurrent_scans": 2}
        api.fleet.write_inventory(tmp_path / "i.yaml", auth="cpanel_token", extra_server_keys=keys)
        for user in ("alice", "bob", "carol"):  # one entry each, one scan each: three at once
            assert (await api.uapi(user, "start_scan", scan_type="home"))["status"] == 1
    [violation] = api.fleet.violations()
    assert (violation.rule, violation.account) == ("host-scan-cap", "carol")
    assert "2 scan(s) of this run" in violation.message


@pytest.mark.asyncio
async def test_scans_that_ended_died_or_are_not_the_runs_leave_room_under_the_cap(
    tmp_path: Path,
) -> None:
    spec = fleet_of(
        alice(), AccountSpec("bob"), AccountSpec("carol"), AccountSpec("dave"),
        AccountSpec("erin"), faults=Faults(stall_accounts=frozenset({"dave"})),
    )  # fmt: skip
    async with refereed(spec, shared_scan_cap=True) as api:
        keys = {"max_concurrent_scans": 2}
        api.fleet.write_inventory(tmp_path / "i.yaml", auth="cpanel_token", extra_server_keys=keys)
        assert api.fleet.start_scan_as_ui("sim01", "erin") is None  # cPanel's UI: not the run's
        other = other_run(api, "r2")
        try:
            await other.uapi("carol", "start_scan", scan_type="home")  # another run's
        finally:
            await other.http.close()
        await api.uapi("alice", "start_scan", scan_type="home")
        await api.uapi("dave", "start_scan", scan_type="home")  # its child dies near 40 %
        api.clock.advance(5)  # alice's 10 s scan still runs, dave's child is dead
        await api.uapi("bob", "start_scan", scan_type="home")
        api.clock.advance(1000)  # every scan complete
        await api.uapi("alice", "start_scan", scan_type="mail")
        await api.uapi("bob", "start_scan", scan_type="mail")
    assert api.fleet.violations() == []


@pytest.mark.asyncio
async def test_a_fleet_can_judge_each_entrys_own_cap_when_told_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(promises, "SHARED_SCAN_CAP", False)  # the looser reading: caps add up
    async with refereed(three()) as api:
        keys = {"max_concurrent_scans": 1}
        api.fleet.write_inventory(tmp_path / "i.yaml", auth="cpanel_token", extra_server_keys=keys)
        for user in ("alice", "bob", "carol"):
            await api.uapi(user, "start_scan", scan_type="home")
        assert api.fleet.rules("sim01").max_concurrent_scans == 3
        api.fleet.write_inventory(tmp_path / "w.yaml", auth="whm", extra_server_keys=keys)
        assert api.fleet.rules("sim01").max_concurrent_scans == 1  # one entry: its own cap
    assert api.fleet.violations() == []


@pytest.mark.expect_violations("host-scan-cap")
@pytest.mark.asyncio
async def test_one_whm_entrys_cap_is_judged_in_every_fleet(tmp_path: Path) -> None:
    async with refereed(three()) as api:
        api.fleet.write_inventory(
            tmp_path / "i.yaml", extra_server_keys={"max_concurrent_scans": 2}
        )
        for user in ("alice", "bob", "carol"):
            await api.via_whm(user, "start_scan", scan_type="home")
    assert [(v.rule, v.account) for v in api.fleet.violations()] == [("host-scan-cap", "carol")]


# -- one host, several entries: one promise ---------------------------------------------------


def test_a_hosts_token_entries_combine_into_the_smallest_rate_and_scan_cap(tmp_path: Path) -> None:
    spec = three()
    inventory = tmp_path / "inventory.yaml"
    with SimulatorThread(spec, shared_scan_cap=True) as sim:
        keys = {"requests_per_second": 4, "max_concurrent_scans": 3}
        sim.write_inventory(inventory, auth="cpanel_token", extra_server_keys=keys)
        written = sim.fleet.rules("sim01")
        url = sim.base_url("sim01")

        def tighten(data: dict[str, Any]) -> None:
            data["servers"][1].update(requests_per_second=2, max_concurrent_scans=1)

        edit_inventory(inventory, tighten)
        sim.learn_inventory_file(inventory)
        edited = sim.fleet.rules("sim01")
    entries = yaml.safe_load(inventory.read_text())["servers"]
    assert [e["name"] for e in entries] == ["sim01-alice", "sim01-bob", "sim01-carol"]
    assert {e["url"] for e in entries} == {url}, "three entries, one host"
    assert (written.requests_per_second, written.max_concurrent_scans) == (4.0, 3)
    assert (edited.requests_per_second, edited.max_concurrent_scans) == (2.0, 1)


def test_exclusions_and_suspended_accounts_stay_each_entrys_own() -> None:
    url = "http://127.0.0.1:40001"
    document = {
        "defaults": {"include_suspended": False},
        "groups": {"slow": {"requests_per_second": 1}},
        "servers": [
            {"name": "a", "url": url, "accounts": "all", "exclude_accounts": ["bob", "tmp*", "c*"]},
            {"name": "b", "url": url, "accounts": ["bob"], "include_suspended": True},
            {"name": "c", "url": url, "auth": {"method": "cpanel_token", "user": "carol"},
             "accounts": ["carol"], "groups": ["slow"], "exclude_accounts": ["carol"]},
            {"name": "elsewhere", "url": "http://127.0.0.1:40002", "requests_per_second": 0.5},
        ],
    }  # fmt: skip
    rules = host_rules(document, {"sim01": url, "sim09": "http://127.0.0.1:40009"})
    one = rules["sim01"]
    assert one.requests_per_second == 1.0, "the group's rate, the smallest of the host"
    assert not one.excludes("bob"), "entry b reaches bob and keeps him"
    assert one.excludes("tmp1") and not one.excludes("alice")
    assert one.excludes("carol"), "every entry that reaches carol excludes her"
    assert one.allows_suspended("bob") and not one.allows_suspended("alice")
    assert rules["sim09"] == ServerRules(), "no entry points there: nothing learned"
