"""Simulator: fault knobs, TLS, determinism, SimulatorThread, serve and write_inventory."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from orchestrator.simulator import Faults, SimFile, SimulatorThread, generate_fleet, serve
from tests.simulator.raw import alice, fleet_of, running

STATUS = "/execute/ClamScanner/get_scan_status"
ONLY_STATUS = frozenset({"get_scan_status"})


@pytest.mark.asyncio
async def test_every_nth_5xx_429_and_truncation_hit_only_the_named_functions() -> None:
    faults = Faults(
        status_5xx_every=2, retry_after_every=3, truncated_json_every=5, functions=ONLY_STATUS
    )
    async with running(fleet_of(alice(), faults=faults)) as api:
        h = api.token_header("alice")
        answers = [await api.raw("GET", STATUS, headers=h) for _ in range(10)]
        async with api.http.get(api.url + STATUS, headers=h) as r429:
            pass
        others = [
            await api.raw("GET", "/execute/ClamScanner/get_scan_paths", headers=h) for _ in range(4)
        ]
    statuses = [a[0] for a in answers]
    assert statuses == [200, 500, 429, 502, 200, 503, 200, 500, 429, 502]
    assert answers[4][0] == 200 and not _parses(answers[4][2])  # truncated
    assert _parses(answers[6][2])
    assert r429.status == 200  # the 11th request matches no knob
    assert all(a[0] == 200 and _parses(a[2]) for a in others)


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.asyncio
async def test_retry_after_header_and_fail_next() -> None:
    async with running(fleet_of(alice(), faults=Faults(retry_after_every=1))) as api:
        async with api.http.get(api.url + STATUS, headers=api.token_header("alice")) as r:
            assert (r.status, r.headers["Retry-After"]) == (429, "1")
        api.fleet.set_faults("sim01", Faults(fail_next=2))
        statuses = [
            (await api.raw("GET", STATUS, headers=api.token_header("alice")))[0] for _ in range(3)
        ]
    assert statuses == [503, 503, 200]


@pytest.mark.asyncio
async def test_reset_drops_the_connection_before_the_call_runs() -> None:
    spec = fleet_of(alice(), faults=Faults(reset_every=1, functions=frozenset({"start_scan"})))
    async with running(spec) as api:
        with pytest.raises(aiohttp.ClientError):
            await api.raw(
                "GET",
                "/execute/ClamScanner/start_scan?scan_type=home",
                headers=api.token_header("alice"),
            )
        status = await api.uapi("alice", "get_scan_status")
        log = api.fleet.request_log("sim01")
    assert status["data"] is None, "a dropped start_scan started nothing"
    assert {r.status for r in log if r.function == "start_scan"} == {0}


@pytest.mark.asyncio
async def test_slow_replies_and_html_login_page() -> None:
    async with running(fleet_of(alice(), faults=Faults(slow_seconds=0.1))) as api:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await api.uapi("alice", "get_scan_status"))["status"] == 1
        assert loop.time() - started >= 0.09
        api.fleet.set_faults("sim01", Faults(html_login=True))
        status, ctype, text = await api.raw("GET", STATUS, headers=api.token_header("alice"))
    assert (status, ctype.split(";")[0]) == (200, "text/html")
    assert "login_form" in text


@pytest.mark.asyncio
async def test_stalled_scans_stop_near_40_percent_and_never_complete() -> None:
    files = [SimFile(f"public_html/f{i}.js", 1000) for i in range(20)]
    spec = fleet_of(
        alice(files=files, scan_seconds=10.0), faults=Faults(stall_accounts=frozenset({"alice"}))
    )
    async with running(spec) as api:
        await api.uapi("alice", "start_scan", scan_type="home")
        api.clock.advance(100)
        first = (await api.uapi("alice", "get_scan_status"))["data"]
        api.clock.advance(10_000)
        later = (await api.uapi("alice", "get_scan_status"))["data"]
    assert first == later
    assert first["scan_complete"] == 0
    assert 4 <= first["scanned_file_count"] <= 10


@pytest.mark.asyncio
async def test_a_blind_server_scans_every_file_and_detects_none() -> None:
    async with running(fleet_of(alice(), faults=Faults(blind=True))) as api:
        status = (await api.scan_to_completion("alice"))["data"]
        listed = (await api.uapi("alice", "list_infected_files"))["data"]
        there = api.fleet.account_state("sim01", "alice").infected()
    assert status["scanned_file_count"] == status["total_file_count"] == 4
    assert status["infected_files"] == [] and listed == []
    assert len(there) == 3, "the infected files are there all along"


def test_blind_is_a_simulate_fault_knob() -> None:
    from orchestrator.simulator.knobs import with_fault_args

    spec = with_fault_args(generate_fleet(servers=2, accounts=1), ["sim02:blind=true"])
    assert [s.faults.blind for s in spec.servers] == [False, True]


@pytest.mark.asyncio
async def test_stop_server_refuses_connections() -> None:
    spec = generate_fleet(servers=2, accounts=1, seed=3, scan_seconds=0.2)
    async with running(spec) as api:
        url = api.fleet.base_url("sim01")
        await api.fleet.stop_server("sim01")
        with pytest.raises(aiohttp.ClientConnectionError):
            await api.http.get(url + STATUS)
        api.server = "sim02"
        assert (await api.whm("listaccts"))["metadata"]["result"] == 1


@pytest.mark.asyncio
async def test_tls_with_the_generated_ca() -> None:
    async with running(fleet_of(alice()), tls=True) as api:
        assert api.url.startswith("https://127.0.0.1:")
        assert api.fleet.ca_file is not None and api.fleet.ca_file.exists()
        trusted = ssl.create_default_context(cafile=str(api.fleet.ca_file))
        async with api.http.get(
            api.url + STATUS, headers=api.token_header("alice"), ssl=trusted
        ) as r:
            assert r.status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await api.http.get(api.url + STATUS, ssl=ssl.create_default_context())
        ca_file = api.fleet.ca_file
    assert not ca_file.exists(), "the CA's temp dir is removed on exit"


def test_generate_fleet_is_deterministic_and_realistic() -> None:
    args: dict[str, Any] = {
        "servers": 3,
        "accounts": 6,
        "infected_ratio": 0.5,
        "seed": 11,
        "scan_seconds": 2.0,
        "suspended_ratio": 0.2,
        "no_feature_ratio": 0.2,
    }
    one, two = generate_fleet(**args), generate_fleet(**args)
    assert one == two
    assert generate_fleet(**{**args, "seed": 12}) != one
    accounts = [a for s in one.servers for a in s.accounts]
    assert [s.name for s in one.servers] == ["sim01", "sim02", "sim03"]
    for server in one.servers:
        users = [a.user for a in server.accounts]
        assert len(set(users)) == len(users)
    infected = [f for a in accounts for f in a.files if f.infected_by]
    assert sum(1 for a in accounts if any(f.infected_by for f in a.files)) == 9
    assert any("&" in f.relpath or "'" in f.relpath for f in infected)
    assert sum(a.suspended for a in accounts) == 4
    assert sum(not a.has_feature for a in accounts) == 4
    durations = [a.scan_seconds or 0 for a in accounts]
    assert abs(sum(durations) / len(durations) - 2.0) < 0.01
    assert len({a.cpanel_token for a in accounts}) == len(accounts)


def test_simulator_thread_from_sync_code_and_write_inventory(tmp_path: Path) -> None:
    spec = generate_fleet(servers=2, accounts=2, infected_ratio=0.0, seed=5, scan_seconds=0.2)
    with SimulatorThread(spec) as fleet:
        env = fleet.write_inventory(tmp_path / "inv.yaml", settings={"poll_interval": {"min": 0.1}})
        doc = yaml.safe_load((tmp_path / "inv.yaml").read_text())
        per_account = fleet.write_inventory(
            tmp_path / "acc.yaml",
            auth="cpanel_token",
            extra_server_keys={"requests_per_second": 50},
        )
        acc_doc = yaml.safe_load((tmp_path / "acc.yaml").read_text())
        request = urllib.request.Request(
            fleet.base_url("sim01") + "/json-api/listaccts?api.version=1",
            headers={"Authorization": f"whm root:{env['CLAMFLEET_SIM01_TOKEN']}"},
        )
        with urllib.request.urlopen(request) as answer:
            listed = json.loads(answer.read())
        fleet.set_faults("sim01", Faults(fail_next=1))
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(request)
        assert fleet.calls("sim01", function="listaccts") == 2
        assert [r.status for r in fleet.request_log("sim01")] == [200, 503]
    assert [a["user"] for a in listed["data"]["acct"]] == [a.user for a in spec.servers[0].accounts]
    assert doc["settings"] == {"poll_interval": {"min": 0.1}}
    first = doc["servers"][0]
    assert first["url"] == fleet.base_url("sim01") and first["accounts"] == "all"
    assert first["auth"] == {
        "method": "whm_token",
        "user": "root",
        "token_env": "CLAMFLEET_SIM01_TOKEN",
    }
    assert set(env) == {"CLAMFLEET_SIM01_TOKEN", "CLAMFLEET_SIM02_TOKEN"}
    assert all(v not in (tmp_path / "inv.yaml").read_text() for v in env.values())
    user = spec.servers[0].accounts[0].user
    entry = acc_doc["servers"][0]
    assert entry["name"] == f"sim01-{user}" and entry["accounts"] == [user]
    assert entry["auth"]["method"] == "cpanel_token" and entry["requests_per_second"] == 50
    assert per_account[entry["auth"]["token_env"]] == spec.servers[0].accounts[0].cpanel_token


@pytest.mark.asyncio
async def test_serve_announces_urls_inventory_and_exports(tmp_path: Path) -> None:
    lines: list[str] = []
    spec = generate_fleet(servers=2, accounts=1, seed=2, scan_seconds=0.2)
    task = asyncio.create_task(
        serve(spec, write_inventory=tmp_path / "i.yaml", announce=lines.append)
    )
    for _ in range(100):
        if any(line.startswith("export ") for line in lines):
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert any(line.startswith("sim01 http://127.0.0.1:") for line in lines)
    assert f"inventory: {tmp_path / 'i.yaml'}" in lines
    assert sum(line.startswith("export CLAMFLEET_SIM0") for line in lines) == 2
