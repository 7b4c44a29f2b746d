"""The simulator's server load: scans share a server, the load average follows them."""

from __future__ import annotations

import math

import pytest

from orchestrator.cli import main
from orchestrator.client import Http, ServerClient
from orchestrator.config import AuthMethod, Credentials, Server
from orchestrator.errors import ApiError
from orchestrator.model import Secret
from orchestrator.simulator import (
    AccountSpec,
    FleetSpec,
    LoadSpec,
    ServerSpec,
    SimFile,
    generate_fleet,
)
from orchestrator.simulator.load import LoadModel
from tests.simulator.raw import running

START = 1_750_000_000.0
FILES = (SimFile("public_html/index.php", 50_000), SimFile("tmp/x", 50_000))


def accounts(n: int) -> tuple[AccountSpec, ...]:
    return tuple(AccountSpec(f"user{i}", files=FILES, scan_seconds=100.0) for i in range(n))


def fleet(load: LoadSpec | None, n: int = 4, time_scale: float = 1.0) -> FleetSpec:
    server = ServerSpec("sim01", accounts=accounts(n), load=load)
    return FleetSpec(servers=(server,), scan_seconds=100.0, time_scale=time_scale)


# -- the model alone ---------------------------------------------------------------------------


def test_load_average_rises_towards_running_scans_plus_background_with_kernel_smoothing() -> None:
    model = LoadModel(LoadSpec(cores=8, background=1.0), START)
    assert model.loadavg(START)[0] == 1.0  # an idle server's steady state
    model.start_scan("a", START, 1e6)
    model.start_scan("b", START, 1e6)
    one, five, fifteen = model.loadavg(START + 60)
    # 12 ticks of exp(-5/60): 1 + 2 * (1 - e^-1)
    assert one == pytest.approx(1 + 2 * (1 - math.exp(-1)))
    assert one > five > fifteen > 1.0
    assert model.loadavg(START + 3600)[0] == pytest.approx(3.0, abs=0.01)


def test_load_average_decays_when_scans_end() -> None:
    model = LoadModel(LoadSpec(cores=8), START)
    model.start_scan("a", START, 600.0)  # alone: rate 1, ends after 600 s
    assert model.loadavg(START + 600)[0] == pytest.approx(1.0, abs=0.01)
    assert model.running(START + 601) == 0
    assert model.loadavg(START + 660)[0] == pytest.approx(math.exp(-1), abs=0.01)


def test_scans_slow_down_when_the_server_is_oversubscribed() -> None:
    model = LoadModel(LoadSpec(cores=2), START)
    meters = [model.start_scan(k, START, 100.0) for k in "abcd"]  # 4 scans, capacity 2
    model.advance(START + 100)
    assert all(m.work_at(START + 100) == pytest.approx(50.0) for m in meters)
    model.advance(START + 200)
    assert all(not m.active for m in meters)
    assert meters[0].time_at(100.0) == pytest.approx(START + 200)


def test_background_takes_cpu_from_scans_and_a_profile_changes_it_over_time() -> None:
    spec = LoadSpec(cores=4, background=1.0, profile=((1200.0, 3.5),))  # a spike at minute 20
    model = LoadModel(spec, START, time_scale=10.0)  # compressed: minute 20 at 120 s real
    assert model.background(START + 119) == 1.0
    assert model.background(START + 121) == 3.5
    meters = [model.start_scan(k, START, 1e6) for k in "ab"]
    model.advance(START + 120)
    assert meters[0].work_at(START + 120) == pytest.approx(120.0)  # capacity 3 >= 2 scans
    model.advance(START + 130)
    assert meters[0].work_at(START + 130) == pytest.approx(122.5)  # capacity 0.5 / 2 each
    # compressed ticks: the 1-minute average reaches the new level in ~6 real seconds
    assert model.loadavg(START + 180)[0] == pytest.approx(5.5, abs=0.05)


def test_a_new_scan_of_an_account_replaces_its_old_one_in_the_load() -> None:
    model = LoadModel(LoadSpec(cores=4), START)
    model.start_scan("a", START, 10.0)
    model.start_scan("a", START + 5, 100.0)  # a new scan of the account replaces the old
    assert model.running(START + 6) == 1


# -- over HTTP ---------------------------------------------------------------------------------


def whm_server(url: str, token: str) -> Server:
    return Server(
        name="sim01", base_url=url, auth=Credentials(AuthMethod.WHM_TOKEN, "root", Secret(token))
    )


class NoLimit:
    async def acquire(self) -> None:
        return None


@pytest.mark.asyncio
async def test_systemloadavg_answers_the_whm_envelope_and_follows_running_scans() -> None:
    async with running(fleet(LoadSpec(cores=4, background=0.5))) as api:
        answer = await api.whm("systemloadavg")
        assert answer["metadata"]["result"] == 1
        assert answer["data"] == {"one": 0.5, "five": 0.5, "fifteen": 0.5}
        for i in range(3):
            assert (await api.uapi(f"user{i}", "start_scan", scan_type="home"))["status"] == 1
        api.clock.advance(30)
        async with Http(request_timeout=5) as http:
            client = ServerClient(http, whm_server(api.url, api.spec.whm_token), NoLimit())
            reading = await client.system_load()
        assert reading is not None
        assert reading.one == pytest.approx(0.5 + 3 * (1 - math.exp(-0.5)), abs=0.01)
        assert reading.one > reading.five > reading.fifteen


@pytest.mark.asyncio
async def test_scans_on_an_oversubscribed_server_take_longer_than_alone() -> None:
    async with running(fleet(LoadSpec(cores=2), n=4)) as api:
        for i in range(4):
            await api.uapi(f"user{i}", "start_scan", scan_type="home")
        api.clock.advance(100)  # alone a scan takes 100 s; four share two cores
        status = await api.uapi("user0", "get_scan_status")
        assert status["data"]["scan_complete"] == 0
        api.clock.advance(100)
        status = await api.uapi("user0", "get_scan_status")
        assert status["data"]["scan_complete"] == 1


@pytest.mark.asyncio
async def test_a_stalled_scans_dead_child_stops_loading_the_server() -> None:
    spec = fleet(LoadSpec(cores=4)).with_faults("sim01", stall_accounts=frozenset({"user0"}))
    async with running(spec) as api:
        await api.uapi("user0", "start_scan", scan_type="home")
        assert api.fleet.running_scans("sim01") == 1
        api.clock.advance(60)  # the child dies at ~40 % of its 100 s
        assert api.fleet.running_scans("sim01") == 0
        status = await api.uapi("user0", "get_scan_status")
        assert status["data"]["scan_complete"] == 0


@pytest.mark.asyncio
async def test_without_load_modelling_scans_keep_their_fixed_duration() -> None:
    async with running(fleet(None, n=4)) as api:
        for i in range(4):
            await api.uapi(f"user{i}", "start_scan", scan_type="home")
        assert (await api.whm("systemloadavg"))["data"]["one"] == 4.0
        api.clock.advance(100)
        status = await api.uapi("user0", "get_scan_status")
        assert status["data"]["scan_complete"] == 1


@pytest.mark.asyncio
async def test_a_server_whose_systemloadavg_fails_gives_the_client_an_api_error() -> None:
    spec = fleet(LoadSpec()).with_faults("sim01", loadavg_unavailable=True)
    async with running(spec) as api, Http(request_timeout=5) as http:
        client = ServerClient(http, whm_server(api.url, api.spec.whm_token), NoLimit())
        with pytest.raises(ApiError, match="systemloadavg"):
            await client.system_load()


@pytest.mark.asyncio
async def test_cpanel_login_servers_have_no_load_reading() -> None:
    async with running(fleet(LoadSpec())) as api, Http(request_timeout=5) as http:
        server = Server(
            name="sim01",
            base_url=api.url,
            auth=Credentials(AuthMethod.CPANEL_TOKEN, "user0", Secret("x")),
        )
        assert await ServerClient(http, server, NoLimit()).system_load() is None
        assert api.fleet.calls("sim01", "systemloadavg") == 0


def test_generate_fleet_gives_each_server_its_load_spec_and_the_time_scale() -> None:
    small, big = LoadSpec(cores=2), LoadSpec(cores=16, background=3.0)
    spec = generate_fleet(servers=3, accounts=1, load=[small, big], time_scale=60.0)
    assert [s.load for s in spec.servers] == [small, big, small]
    assert spec.time_scale == 60.0
    assert all(s.load is None for s in generate_fleet(servers=2, accounts=1).servers)


def test_simulate_command_models_load_with_cores_and_background(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import orchestrator.simulator

    served: list[FleetSpec] = []

    async def fake_serve(spec: FleetSpec, **_: object) -> None:
        served.append(spec)

    monkeypatch.setattr(orchestrator.simulator, "serve", fake_serve)
    argv = ["simulate", "--servers", "2", "--cores", "8", "--background", "1.5"]
    assert main([*argv, "--time-scale", "10"]) == 0
    (spec,) = served
    assert {s.load for s in spec.servers} == {LoadSpec(cores=8, background=1.5)}
    assert spec.time_scale == 10.0
    assert main(["simulate", "--cores", "0"]) == 3
