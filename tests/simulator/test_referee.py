"""The simulator as a referee: each cPanel rule a client can break is recorded with the request
that broke it, and a correct client sequence records nothing."""

from __future__ import annotations

import asyncio
import html
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestrator.client import user_agent
from orchestrator.simulator import AccountSpec, FleetSpec, ManualClock, SimulatedFleet
from orchestrator.simulator.referee import (
    RATE_WINDOW,
    ServerRules,
    Violation,
    client_of,
    over_rate,
    run_of,
    summary_lines,
)
from tests.simulator.raw import SHELL, Api, alice, fleet_of


@asynccontextmanager
async def refereed(spec: FleetSpec, run: str | None = "r1") -> AsyncIterator[Api]:
    """The fleet on a manual clock, and a client that says which run it belongs to."""
    clock = ManualClock()
    headers = {"User-Agent": user_agent(run)}
    async with (
        SimulatedFleet(spec, clock=clock) as fleet,
        aiohttp.ClientSession(headers=headers) as http,
    ):
        yield Api(fleet, http, clock)


def as_run(api: Api, run: str | None) -> Api:
    """The same fleet seen by a client of another run (shares the first one's connector)."""
    http = aiohttp.ClientSession(
        headers={"User-Agent": user_agent(run)}, connector=api.http.connector, connector_owner=False
    )
    return Api(api.fleet, http, api.clock)


def rules(api: Api) -> list[tuple[str, str | None]]:
    return [(v.rule, v.account) for v in api.fleet.violations()]


async def wait_disinfection_done(api: Api, user: str = "alice") -> None:
    for _ in range(100):
        api.clock.advance(1)
        answer = await api.uapi(user, "check_disinfection_status")
        if answer["data"]["status"] == "done":
            return
    raise AssertionError("the disinfection never finished")


# -- no false positives -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_correct_client_sequence_records_no_violation() -> None:
    async with refereed(fleet_of(alice(), AccountSpec("bob"))) as api:
        for scan_type in ("home", "mail"):  # two targets of one account: one after the other
            await api.scan_to_completion("alice", scan_type)
            listed = (await api.uapi("alice", "list_infected_files"))["data"]
            assert listed
        # the latest list's paths, unescaped as the client must, absolute and relative
        paths = [html.unescape(x["file"]) for x in listed]
        actions = dict.fromkeys(paths, "ignore") | {paths[0].removeprefix("/home/alice/"): "ignore"}
        await api.disinfect("alice", actions)
        await wait_disinfection_done(api)
        await api.via_whm("bob", "start_scan", scan_type="home")  # another account meanwhile
        await api.uapi("alice", "start_scan", scan_type="public_html")
        await api.whm("listaccts")
        assert api.fleet.violations() == []


# -- one scan per account ---------------------------------------------------------------------


@pytest.mark.expect_violations("scan-overlap")
@pytest.mark.asyncio
async def test_a_second_scan_type_while_the_account_scans_is_an_overlap() -> None:
    async with refereed(fleet_of(alice())) as api:
        await api.uapi("alice", "start_scan", scan_type="home")
        refused = await api.via_whm("alice", "start_scan", scan_type="mail")
        [violation] = api.fleet.violations()
    assert refused["data"]["uapi"]["status"] == 0  # the server refused it, quietly
    assert violation.rule == "scan-overlap"
    assert (violation.server, violation.account, violation.run) == ("sim01", "alice", "r1")
    assert (violation.method, violation.path, violation.function) == (
        "GET",
        "/json-api/uapi_cpanel",
        "start_scan",
    )
    assert "mail" in violation.message


@pytest.mark.expect_violations("scan-restarted")
@pytest.mark.asyncio
async def test_restarting_a_finished_target_in_the_same_run_is_recorded_but_not_across_runs() -> (
    None
):
    async with refereed(fleet_of(alice())) as api:
        await api.scan_to_completion("alice", "home")
        other = as_run(api, "r2")
        try:
            await other.scan_to_completion("alice", "home")  # a new run may scan it again
            assert api.fleet.violations() == []
            await api.scan_to_completion("alice", "home")  # run r1 a second time
        finally:
            await other.http.close()
    assert [(v.rule, v.run, v.function) for v in api.fleet.violations()] == [
        ("scan-restarted", "r1", "start_scan")
    ]


# -- results only of a complete scan ----------------------------------------------------------


@pytest.mark.expect_violations("results-before-complete")
@pytest.mark.asyncio
async def test_listing_before_any_scan_while_running_or_in_the_stale_window_is_recorded() -> None:
    async with refereed(fleet_of(alice())) as api:
        await api.uapi("alice", "list_infected_files")  # no scan ran
        await api.uapi("alice", "start_scan", scan_type="home")
        api.clock.advance(5)
        await api.uapi("alice", "list_infected_files")  # running
        api.clock.advance(1000)
        await api.uapi("alice", "list_infected_files")  # complete: fine
        await api.uapi("alice", "start_scan", scan_type="mail")
        stale = (await api.uapi("alice", "get_scan_status"))["data"]
        await api.disinfect("alice", {SHELL.relpath: "delete"})  # trusting the stale status
    assert stale["scan_complete"] == 1  # what misled the client
    assert [(v.rule, v.function) for v in api.fleet.violations()] == [
        ("results-before-complete", "list_infected_files"),
        ("results-before-complete", "list_infected_files"),
        ("results-before-complete", "disinfect_files"),
    ]


# -- disinfection -----------------------------------------------------------------------------


@pytest.mark.expect_violations("disinfect-unlisted-path")
@pytest.mark.asyncio
async def test_disinfecting_a_path_not_listed_even_one_left_html_escaped_is_recorded() -> None:
    async with refereed(fleet_of(alice())) as api:
        await api.scan_to_completion("alice")
        listed = (await api.uapi("alice", "list_infected_files"))["data"]
        escaped = next(x["file"] for x in listed if "&amp;" in x["file"])
        await api.disinfect("alice", {escaped: "quarantine", "tmp/eicar.com": "delete"})
        [violation] = api.fleet.violations()
    assert violation.rule == "disinfect-unlisted-path"
    assert (violation.method, violation.function) == ("POST", "disinfect_files")
    assert escaped in violation.message and "eicar" not in violation.message


@pytest.mark.expect_violations("disinfect-overlap", "disinfect-unlisted-path")
@pytest.mark.asyncio
async def test_disinfecting_again_before_the_previous_disinfection_is_done_is_recorded() -> None:
    async with refereed(fleet_of(alice())) as api:
        await api.scan_to_completion("alice")
        await api.disinfect("alice", {SHELL.relpath: "quarantine"})
        await api.disinfect("alice", {"tmp/eicar.com": "delete"})  # the first still queued
        await wait_disinfection_done(api)
        # done: the infected list is gone, so a third request names unlisted paths only
        await api.disinfect("alice", {"tmp/eicar.com": "delete"})
    assert [v.rule for v in api.fleet.violations()] == [
        "disinfect-overlap",
        "disinfect-unlisted-path",
    ]


@pytest.mark.expect_violations("scan-during-disinfection")
@pytest.mark.asyncio
async def test_a_scan_started_while_the_accounts_disinfection_is_pending_is_recorded() -> None:
    async with refereed(fleet_of(alice())) as api:
        await api.scan_to_completion("alice", "public_html")
        await api.disinfect("alice", {SHELL.relpath: "quarantine"})
        await api.uapi("alice", "start_scan", scan_type="home")  # the task is still queued
        [violation] = api.fleet.violations()
        await wait_disinfection_done(api)
        api.clock.advance(1000)  # the home scan ends too
        await api.scan_to_completion("alice", "mail")  # no disinfection pending: fine
    assert (violation.rule, violation.account, violation.function) == (
        "scan-during-disinfection",
        "alice",
        "start_scan",
    )
    assert [v.rule for v in api.fleet.violations()] == ["scan-during-disinfection"]


# -- logins and accounts ----------------------------------------------------------------------


@pytest.mark.expect_violations("after-refused-login")
@pytest.mark.asyncio
async def test_any_request_after_a_refused_login_in_the_same_run_is_recorded() -> None:
    async with refereed(fleet_of(alice(), AccountSpec("bob"))) as api:
        bad = {"Authorization": "cpanel alice:WRONG"}
        status, _, _ = await api.raw("GET", "/execute/ClamScanner/get_scan_status", headers=bad)
        other = as_run(api, "r2")
        try:
            await other.uapi("bob", "get_scan_status")  # another run: its own budget
        finally:
            await other.http.close()
        assert api.fleet.violations() == []
        await api.uapi("bob", "get_scan_status")  # same run, other account, same host
    assert status == 403
    [violation] = api.fleet.violations()
    assert (violation.rule, violation.account, violation.run) == (
        "after-refused-login",
        "bob",
        "r1",
    )


@pytest.mark.expect_violations("suspended-account")
@pytest.mark.asyncio
async def test_requests_for_a_suspended_account_are_recorded_unless_included() -> None:
    spec = fleet_of(alice(), AccountSpec("bob", suspended=True))
    async with refereed(spec) as api:
        await api.whm("listaccts")  # seeing that bob is suspended is fine
        own = api.token_header("bob")
        for _ in range(2):  # with bob's own token the first 403 is how a client learns it
            await api.raw("GET", "/execute/ClamScanner/get_scan_status", headers=own)
        await api.via_whm("bob", "get_scan_status")
        found = [(v.rule, v.account, v.path) for v in api.fleet.violations()]
        api.fleet.set_rules("sim01", ServerRules(include_suspended=True))
        await api.via_whm("bob", "get_scan_status")
    assert found == [
        ("suspended-account", "bob", "/execute/ClamScanner/get_scan_status"),
        ("suspended-account", "bob", "/json-api/uapi_cpanel"),
    ]
    assert len(api.fleet.violations()) == 2


@pytest.mark.expect_violations("excluded-account")
@pytest.mark.asyncio
async def test_requests_for_an_excluded_account_are_recorded() -> None:
    spec = fleet_of(alice(), AccountSpec("backup-7"))
    async with refereed(spec) as api:
        api.fleet.set_rules("sim01", ServerRules(exclude_accounts=("backup-*",)))
        await api.whm("listaccts")
        await api.via_whm("alice", "get_scan_status")
        await api.via_whm("backup-7", "get_scan_status")
    assert rules(api) == [("excluded-account", "backup-7")]


@pytest.mark.expect_violations("excluded-account", "suspended-account", "server-rate")
@pytest.mark.asyncio
async def test_the_inventory_written_teaches_the_referee_its_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orchestrator.simulator.app.time", SimpleNamespace(monotonic=lambda: 7.0))
    spec = fleet_of(alice(), AccountSpec("bob", suspended=True))
    async with refereed(spec) as api:
        keys = {"exclude_accounts": ["al*"], "include_suspended": True, "requests_per_second": 3}
        api.fleet.write_inventory(tmp_path / "inv.yaml", extra_server_keys=keys)
        await api.via_whm("bob", "get_scan_status")  # included
        await api.via_whm("alice", "get_scan_status")  # excluded
        await api.whm("listaccts")
        await api.whm("listaccts")  # the 4th request at one instant: over 3/s
        learned = rules(api)
        api.fleet.write_inventory(tmp_path / "defaults.yaml")  # the defaults apply again
        await api.via_whm("bob", "get_scan_status")  # 5th: not over the default 5/s
    assert learned == [("excluded-account", "alice"), ("server-rate", None)]
    assert rules(api)[2:] == [("suspended-account", "bob")]


# -- request rates ----------------------------------------------------------------------------


@pytest.mark.expect_violations("server-rate", "fleet-rate")
@pytest.mark.asyncio
async def test_a_burst_beyond_the_server_or_fleet_rate_is_recorded_per_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # every request arrives at the same instant: no real timing in the test
    monkeypatch.setattr("orchestrator.simulator.app.time", SimpleNamespace(monotonic=lambda: 7.0))
    async with refereed(fleet_of(alice())) as api:
        api.fleet.set_rules("sim01", ServerRules(requests_per_second=2))
        for _ in range(3):
            await api.uapi("alice", "get_scan_status")  # three at once: one too many
        [violation] = api.fleet.violations()
        other = as_run(api, "r2")
        try:
            await other.uapi("alice", "get_scan_status")  # another run's own budget
        finally:
            await other.http.close()
        api.fleet.set_rules("sim01", ServerRules(requests_per_second=1000))
        api.fleet.set_fleet_rate(3)
        await api.uapi("alice", "get_scan_status")  # the 4th of r1 within the window
    assert (violation.rule, violation.run) == ("server-rate", "r1")
    assert [v.rule for v in api.fleet.violations()] == ["server-rate", "fleet-rate"]


@given(
    rate=st.integers(1, 50),
    jitter=st.lists(st.floats(0, (1 - RATE_WINDOW) * 0.99), min_size=1, max_size=120),
)
def test_requests_sent_at_the_promised_pace_never_count_as_too_fast_despite_jitter(
    rate: int, jitter: list[float]
) -> None:
    """Sent exactly 1/R apart, arriving up to the documented tolerance late: never flagged."""
    window: deque[float] = deque()
    arrivals = sorted(i / rate + j for i, j in enumerate(jitter))
    assert not any(over_rate(window, t, rate) for t in arrivals)


@given(rate=st.integers(1, 50), start=st.floats(0, 1000), spread=st.floats(0, 0.999))
def test_more_than_the_rate_inside_the_window_is_always_too_fast(
    rate: int, start: float, spread: float
) -> None:
    window: deque[float] = deque()
    span = spread * RATE_WINDOW
    arrivals = [start + span * i / rate for i in range(rate + 1)]
    flags = [over_rate(window, t, rate) for t in arrivals]
    assert flags == [False] * rate + [True]


# -- run identity and the printout ------------------------------------------------------------


def test_the_run_id_comes_from_clamfleets_user_agent_and_is_anonymous_otherwise() -> None:
    assert run_of(user_agent("0123abcd")) == "0123abcd"
    assert run_of(user_agent("0123abcd", "beef")) == "0123abcd"
    assert client_of(user_agent("0123abcd", "beef")) == "beef"
    assert client_of(user_agent("0123abcd")) == ""
    assert run_of(user_agent(None)) == "anonymous"
    assert run_of("Python/3.11 aiohttp/3.9") == "anonymous"
    assert run_of(None) == "anonymous"


def test_the_printout_names_every_violation_and_counts_them_per_run_and_rule() -> None:
    message = "start_scan mail while a scan of the account runs"
    v = Violation("sim01", "scan-overlap", "alice", "GET", "/execute/ClamScanner/start_scan",
                  "start_scan", 1.0, "r1", message)  # fmt: skip
    lines = summary_lines([v, v], limit=1)
    assert lines[0].startswith("violation run=r1 server=sim01 rule=scan-overlap account=alice")
    assert lines[1:] == [
        "... and 1 more",
        "violations run=r1 rule=scan-overlap count=2",
        "2 protocol violations",
    ]


@pytest.mark.asyncio
@pytest.mark.expect_violations("after-refused-login")
async def test_a_session_token_in_the_path_never_reaches_a_violation() -> None:
    async with refereed(fleet_of(alice())) as api:
        bad = {"Authorization": "cpanel alice:WRONG"}
        await api.raw("GET", "/execute/ClamScanner/get_scan_status", headers=bad)
        await api.raw("GET", "/cpsess1234567890/execute/ClamScanner/get_scan_status")
        [violation] = api.fleet.violations()
    assert "1234567890" not in str(violation)
    assert violation.path == "/cpsess…/execute/ClamScanner/get_scan_status"


# -- a model of the scan rules: a violation iff the rule says so ------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.sampled_from(["alice", "bob"]),
                  st.sampled_from(["home", "mail", "public_html"])),
        st.tuples(st.just("status"), st.sampled_from(["alice", "bob"]), st.just("")),
        st.tuples(st.just("list"), st.sampled_from(["alice", "bob"]), st.just("")),
        st.tuples(st.just("wait"), st.just(""), st.sampled_from(["1", "4", "30"])),
    ),
    max_size=14,
)  # fmt: skip

EVERY_RULE_ONCE = [
    ("list", "alice", ""),
    ("start", "alice", "home"),
    ("start", "alice", "mail"),
    ("wait", "", "30"),
    ("start", "alice", "home"),
]


Found = list[tuple[str, str | None]]


async def _scenario(ops: list[tuple[str, str, str]]) -> tuple[Found, Found]:
    """Run `ops`; the violations a model of the rules expects, and those recorded."""
    expected: Found = []
    took: set[tuple[str, str]] = set()
    async with refereed(fleet_of(alice(), AccountSpec("bob", files=(SHELL,)))) as api:
        for op, user, arg in ops:
            if op == "wait":
                api.clock.advance(float(arg))
                continue
            running = api.fleet.account_state("sim01", user).scan_running
            if op == "start":
                if running:
                    expected.append(("scan-overlap", user))
                if (user, arg) in took:
                    expected.append(("scan-restarted", user))
                answer = await api.uapi(user, "start_scan", scan_type=arg)
                if answer["status"] == 1:
                    took.add((user, arg))
            elif op == "list":
                scanned = any(u == user for u, _ in took)
                if running or not scanned:  # complete: a scan took and its child has finished
                    expected.append(("results-before-complete", user))
                await api.uapi(user, "list_infected_files")
            else:
                await api.uapi(user, "get_scan_status")
        return expected, rules(api)


@pytest.mark.expect_violations("scan-overlap", "scan-restarted", "results-before-complete")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(ops=EVERY_RULE_ONCE)
@given(ops=OPS)
def test_random_interleavings_record_exactly_the_broken_scan_rules(
    ops: list[tuple[str, str, str]],
) -> None:
    expected, found = asyncio.run(_scenario(ops))
    assert found == expected
