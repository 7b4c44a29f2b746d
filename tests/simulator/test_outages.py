"""Simulator: a real night's outages of a server's HTTP face, seen by a raw HTTP client.

A refused outage closes the port (a stopped cpsrvd) and listens again on the same one; a 503
outage is a proxy's page; either starts at a time or on a function's request, or as a upcp run
of a few restarts; the scans go on meanwhile.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from orchestrator.simulator import Faults, Outage, SimFile, generate_fleet
from orchestrator.simulator.knobs import with_fault_args
from orchestrator.simulator.outage import upcp_profile
from tests.simulator.raw import Api, alice, fleet_of, running

STATUS = "/execute/ClamScanner/get_scan_status"
START = 1_750_000_000.0  # ManualClock's start: the fleet's start on its clock


async def refused(api: Api) -> bool:
    """Whether a new TCP connection to the server is refused (ECONNREFUSED)."""
    port = int(api.url.rsplit(":", 1)[1])
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


def slow_alice() -> list[SimFile]:
    return [SimFile(f"public_html/f{i}.php", 1000) for i in range(20)]


@pytest.mark.asyncio
async def test_a_refused_outage_closes_the_port_then_reopens_it_with_the_scan_gone_on() -> None:
    faults = Faults(outage_at=5.0, outage_seconds=20.0)
    spec = fleet_of(alice(files=slow_alice(), scan_seconds=10.0), faults=faults)
    async with running(spec) as api:
        url = api.url
        assert (await api.uapi("alice", "start_scan", scan_type="home"))["status"] == 1
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        api.clock.advance(6)
        await api.fleet.apply_outages()
        down = api.fleet.port_down("sim01"), await refused(api)
        open_connection_dropped = await closed_by_server(reader)
        writer.close()
        api.clock.advance(20)
        await api.fleet.apply_outages()
        status = (await api.uapi("alice", "get_scan_status"))["data"]
        assert api.url == url and not await refused(api)
    assert down == (True, True)
    assert open_connection_dropped
    assert status["scan_complete"] == 1, "the scan went on while the port was away"
    assert api.fleet.outages("sim01") == [Outage(1, START + 5, START + 25, "refused", "at")]


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed (or reset) an idle connection."""
    try:
        return await asyncio.wait_for(reader.read(1), 2) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.asyncio
async def test_a_503_outage_on_a_function_starts_with_its_request_and_answers_all() -> None:
    faults = Faults(
        outage_mode="503", outage_on="list_infected_files", outage_seconds=30, outage_retry_after=7
    )
    async with running(fleet_of(alice(), faults=faults)) as api:
        await api.scan_to_completion("alice")
        before = api.fleet.outages("sim01")
        h = api.token_header("alice")
        async with api.http.get(
            api.url + "/execute/ClamScanner/list_infected_files", headers=h
        ) as r:
            page = (r.status, r.headers.get("Retry-After"), r.content_type, await r.text())
        status_then = (await api.raw("GET", STATUS, headers=h))[0]
        start_then = await api.raw(
            "GET", "/execute/ClamScanner/start_scan?scan_type=home", headers=h
        )
        api.clock.advance(30)
        listed = await api.uapi("alice", "list_infected_files")
        log = api.fleet.request_log("sim01")
    assert before == []
    assert page[:3] == (503, "7", "text/html")
    assert "Service Unavailable" in page[3]
    assert status_then == 503 and start_then[0] == 503
    assert listed["status"] == 1 and listed["data"], "after the outage the list is there"
    assert api.fleet.outages("sim01") == [
        Outage(1, START + 1000, START + 1030, "503", "on list_infected_files")
    ]
    faulted = [(r.function, r.status, r.faulted) for r in log if r.faulted]
    assert faulted == [
        ("list_infected_files", 503, "outage"),
        ("get_scan_status", 503, "outage"),
        ("start_scan", 503, "outage"),
    ]


@pytest.mark.asyncio
async def test_a_function_outage_counts_its_requests_from_outage_at_either_way_in() -> None:
    faults = Faults(
        outage_mode="503", outage_on="get_scan_status", outage_on_count=2, outage_at=10,
        outage_seconds=5,
    )  # fmt: skip
    async with running(fleet_of(alice(), faults=faults)) as api:
        h = api.token_header("alice")
        early = [(await api.raw("GET", STATUS, headers=h))[0] for _ in range(3)]  # before 10 s
        api.clock.advance(10)
        first = (await api.raw("GET", STATUS, headers=h))[0]  # the 1st from then on: not yet
        await api.uapi("alice", "get_scan_paths")  # another function does not count
        second = await api.raw(
            "GET", "/json-api/uapi_cpanel", headers=api.whm_header,
            params={"api.version": "1", "cpanel.user": "alice", "cpanel.module": "ClamScanner",
                    "cpanel.function": "get_scan_status"},
        )  # fmt: skip
    assert early == [200, 200, 200] and first == 200
    assert second[0] == 503, "the 2nd, through WHM's uapi_cpanel, starts the outage"
    assert api.fleet.outages("sim01") == [
        Outage(1, START + 10, START + 15, "503", "on get_scan_status")
    ]


@pytest.mark.asyncio
async def test_a_refused_outage_on_a_function_drops_its_request_and_closes_the_port() -> None:
    faults = Faults(outage_on="start_scan", outage_seconds=3)
    async with running(fleet_of(alice(), faults=faults)) as api:
        await api.uapi("alice", "get_scan_status")
        with pytest.raises(aiohttp.ClientError):  # dropped, then (a GET re-sent) refused
            await api.raw(
                "GET", "/execute/ClamScanner/start_scan?scan_type=home",
                headers=api.token_header("alice"),
            )  # fmt: skip
        down = await refused(api)
        state = api.fleet.account_state("sim01", "alice")
        api.clock.advance(3)
        await api.fleet.apply_outages()
        back = not await refused(api)
        log = api.fleet.request_log("sim01")
    assert down and back
    assert not state.scan_running, "a dropped start_scan never reached the server"
    assert [(r.function, r.status, r.faulted) for r in log] == [
        ("get_scan_status", 200, ""),
        ("start_scan", 0, "outage"),
    ]


def test_a_upcp_profile_is_a_few_restarts_spread_over_the_span_and_the_same_per_seed() -> None:
    one = upcp_profile(7, "sim01", 600.0)
    assert one == upcp_profile(7, "sim01", 600.0)
    assert {tuple(upcp_profile(s, "sim01", 600.0)) for s in range(8)} != {tuple(one)}
    for seed in range(30):
        restarts = upcp_profile(seed, "sim02", 600.0)
        assert 2 <= len(restarts) <= 4
        assert restarts[0][0] == 0.0
        ends = [offset + seconds for offset, seconds in restarts]
        assert all(5.0 <= seconds <= 40.0 for _, seconds in restarts)
        assert all(e <= o for e, (o, _) in zip(ends, restarts[1:], strict=False)), "no overlap"
        assert ends[-1] <= 600.0
    squeezed = upcp_profile(7, "sim01", 10.0)  # a short span: short restarts
    assert all(seconds <= 0.8 * 10.0 / len(squeezed) + 1e-9 for _, seconds in squeezed)
    assert all(s <= 40.0 / 60 for _, s in upcp_profile(7, "sim01", 600.0, time_scale=60.0))


@pytest.mark.asyncio
async def test_a_upcp_run_on_a_fleet_takes_the_windows_of_its_seed() -> None:
    spec = generate_fleet(servers=1, accounts=1, seed=5, scan_seconds=0.5)
    spec = spec.with_faults("sim01", outage_mode="503", upcp_seconds=300.0, outage_at=60.0)
    async with running(spec) as api:
        api.clock.advance(400)
        windows = api.fleet.outages("sim01")
    expected = upcp_profile(5, "sim01", 300.0)
    assert [(w.start, w.end) for w in windows] == [
        (START + 60 + offset, START + 60 + offset + seconds) for offset, seconds in expected
    ]
    n = len(expected)
    assert [w.cause for w in windows] == [f"upcp {i}/{n}" for i in range(1, n + 1)]
    assert {w.mode for w in windows} == {"503"}


@pytest.mark.asyncio
async def test_new_knobs_end_a_running_outage_and_the_windows_stay_recorded() -> None:
    faults = Faults(outage_mode="503", outage_seconds=100)
    async with running(fleet_of(alice(), faults=faults)) as api:
        h = api.token_header("alice")
        during = (await api.raw("GET", STATUS, headers=h))[0]
        api.clock.advance(10)
        api.fleet.set_faults("sim01", Faults())
        after = (await api.raw("GET", STATUS, headers=h))[0]
    assert (during, after) == (503, 200)
    assert api.fleet.outages("sim01") == [Outage(1, START, START + 10, "503", "at")]


def test_the_outage_and_throttle_knobs_are_settable_from_the_command_line() -> None:
    spec = generate_fleet(servers=2, accounts=1, seed=1)
    args = [
        "sim02:outage_mode=503", "sim02:outage_on=start_scan", "sim02:outage_seconds=2.5",
        "sim02:upcp_seconds=90", "sim02:throttle_start=2", "sim02:throttle_mode=503",
        "sim02:busy_load=3.5", "sim02:loadavg_fail_every=4",
    ]  # fmt: skip
    faults = with_fault_args(spec, args).server("sim02").faults
    assert (faults.outage_mode, faults.outage_on, faults.outage_seconds) == (
        "503", "start_scan", 2.5
    )  # fmt: skip
    assert (faults.upcp_seconds, faults.throttle_start, faults.throttle_mode) == (90.0, 2, "503")
    assert (faults.busy_load, faults.loadavg_fail_every) == (3.5, 4)
    with pytest.raises(ValueError, match="outage_mode"):
        with_fault_args(spec, ["sim01:outage_mode=down"])
    with pytest.raises(ValueError, match="throttle_mode"):
        with_fault_args(spec, ["sim01:throttle_mode=418"])
    with pytest.raises(ValueError, match="outage_on: one of"):
        with_fault_args(spec, ["sim01:outage_on=list_infected"])  # a typo never triggers
