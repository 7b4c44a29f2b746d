"""Simulator: a throttling proxy in front of start_scan (the call not run), busy servers whose
load stays over a pacing maximum all night, and systemloadavg readings that fail now and then."""

from __future__ import annotations

import pytest

from orchestrator.simulator import AccountSpec, Faults, FleetSpec, LoadSpec, ServerSpec, SimFile
from tests.simulator.raw import alice, fleet_of, running

START_SCAN = "/execute/ClamScanner/start_scan?scan_type=home"


@pytest.mark.asyncio
async def test_a_throttled_start_scan_is_answered_503_by_the_proxy_and_not_run() -> None:
    faults = Faults(throttle_start=2, throttle_mode="503", throttle_retry_after=0)
    async with running(fleet_of(alice(), AccountSpec("bob"), faults=faults)) as api:
        h = api.token_header("alice")
        answers = []
        for _ in range(2):
            async with api.http.get(api.url + START_SCAN, headers=h) as r:
                answers.append((r.status, r.headers.get("Retry-After"), r.content_type))
            status = await api.uapi("alice", "get_scan_status")
            assert status["data"] is None, "a throttled start_scan started nothing"
        third = await api.uapi("alice", "start_scan", scan_type="home")
        bob = (await api.raw("GET", START_SCAN, headers=api.token_header("bob")))[0]
        log = api.fleet.request_log("sim01")
        started = api.fleet.scans_started("sim01")
    assert answers == [(503, None, "text/html")] * 2
    assert third["status"] == 1
    assert bob == 503, "the first N start_scan of each account"
    assert [(r.account, r.status, r.faulted) for r in log if r.function == "start_scan"] == [
        ("alice", 503, "throttle"),
        ("alice", 503, "throttle"),
        ("alice", 200, ""),
        ("bob", 503, "throttle"),
    ]
    assert [key[1] for key in started] == ["alice"]


@pytest.mark.asyncio
async def test_a_throttled_start_scan_through_whm_is_a_429_with_retry_after() -> None:
    faults = Faults(throttle_start=1, throttle_retry_after=3)
    async with running(fleet_of(alice(), faults=faults)) as api:
        params = {
            "api.version": "1", "cpanel.user": "alice", "cpanel.module": "ClamScanner",
            "cpanel.function": "start_scan", "scan_type": "home",
        }  # fmt: skip
        async with api.http.get(
            api.url + "/json-api/uapi_cpanel", params=params, headers=api.whm_header
        ) as r:
            throttled = (r.status, r.headers.get("Retry-After"))
        untouched = api.fleet.account_state("sim01", "alice").scan_running
        second = await api.via_whm("alice", "start_scan", scan_type="home")
    assert throttled == (429, "3")
    assert not untouched
    assert second["data"]["uapi"]["status"] == 1


def busy_fleet(load: LoadSpec | None, busy: float) -> FleetSpec:
    files = tuple(SimFile(f"public_html/f{i}.php", 1000) for i in range(20))
    accounts = tuple(AccountSpec(u, files=files, scan_seconds=600.0) for u in ("ann", "ben"))
    server = ServerSpec("sim01", accounts=accounts, faults=Faults(busy_load=busy), load=load)
    return FleetSpec(servers=(server,), scan_seconds=600.0)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("load", "busy"),
    [
        pytest.param(LoadSpec(cores=4, background=3.5), 0.0, id="background"),
        pytest.param(LoadSpec(cores=4), 3.5, id="busy_load-knob"),
        pytest.param(None, 3.5, id="busy_load-without-a-load-model"),
    ],
)
async def test_a_busy_server_stays_over_its_maximum_the_whole_night(
    load: LoadSpec | None, busy: float
) -> None:
    """A shop server at 3.5 on 4 cores, with `load.max: 3`: every reading is over 3."""
    async with running(busy_fleet(load, busy)) as api:
        readings = []
        for minute in range(8 * 60):  # a night, one reading a minute
            scan_type = {30: "home", 200: "public_html"}.get(minute)
            if scan_type is not None:  # two scans, twice in the night
                await api.uapi("ann", "start_scan", scan_type=scan_type)
                await api.uapi("ben", "start_scan", scan_type=scan_type)
            answer = await api.whm("systemloadavg")
            readings.append(answer["data"])
            api.clock.advance(60)
    lowest = min(min(r["one"], r["five"], r["fifteen"]) for r in readings)
    assert lowest >= 3.5 > 3
    if load is not None:  # the background takes the CPU: two scans on 0.5 core are slowed
        assert max(r["one"] for r in readings) > 5


@pytest.mark.asyncio
async def test_systemloadavg_readings_fail_first_and_every_nth_at_whm_level() -> None:
    faults = Faults(loadavg_fail_first=2, loadavg_fail_every=3)
    async with running(fleet_of(alice(), faults=faults)) as api:
        answers = [await api.whm("systemloadavg") for _ in range(7)]
    results = [a["metadata"]["result"] for a in answers]
    assert results == [0, 0, 0, 1, 1, 0, 1]
    assert all("load average" in a["metadata"]["reason"] for a in answers[:3])
    assert all(set(a["data"]) == {"one", "five", "fifteen"} for a in answers if "data" in a)
