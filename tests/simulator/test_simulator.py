"""The simulator's fidelity to cpanel-api.md: envelopes, auth, scans. Raw HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import html
import json

import pytest

from orchestrator.simulator import AccountSpec, Faults, SimFile
from tests.simulator.raw import HOMEFILE, MBOX, SHELL, WEB, alice, fleet_of, running

ACCESS_DENIED = (
    '{"cpanelresult":{"apiversion":"2","error":"Access denied",'
    '"data":{"reason":"Access denied","result":"0"},"type":"text"}}'
)
UAPI_KEYS = ["data", "errors", "messages", "metadata", "status", "warnings"]


def asset(i: int) -> SimFile:
    return SimFile(f"public_html/assets/f{i:02d}.js", 2000 + i)


ALREADY = (
    "A virus scan is already in progress! Please wait until it completes before scanning again."
)


@pytest.mark.asyncio
async def test_execute_answers_the_bare_uapi_object() -> None:
    async with running(fleet_of(alice())) as api:
        answer = await api.uapi("alice", "get_scan_paths")
    assert sorted(answer) == UAPI_KEYS
    assert answer["status"] == 1
    assert answer["metadata"] == {"transformed": 1}
    assert [p["id"] for p in answer["data"]] == ["home", "mail", "public_ftp", "public_html"]
    assert answer["data"][0] == {"id": "home", "message": "Scan Entire Home Directory"}


@pytest.mark.asyncio
@pytest.mark.expect_violations("after-refused-login")  # on purpose: the server side
async def test_basic_auth_and_the_403_for_bad_credentials() -> None:
    async with running(fleet_of(alice())) as api:
        password = api.spec.accounts[0].password
        good = base64.b64encode(f"alice:{password}".encode()).decode()
        bad = base64.b64encode(b"alice:nope").decode()
        path = "/execute/ClamScanner/get_scan_status"
        ok = await api.raw("GET", path, headers={"Authorization": f"Basic {good}"})
        refused = await api.raw("GET", path, headers={"Authorization": f"Basic {bad}"})
        whm_on_execute = await api.raw("GET", path, headers=api.whm_header)
        bad_whm = await api.raw("GET", "/json-api/listaccts?api.version=1")
    assert ok[0] == 200
    assert json.loads(ok[2])["messages"] == ["No active scans."]
    for status, ctype, body in (refused, whm_on_execute, bad_whm):
        assert (status, ctype, body) == (403, "text/plain", ACCESS_DENIED)


@pytest.mark.asyncio
@pytest.mark.expect_violations("after-refused-login")  # on purpose: the server side
async def test_cphulk_lockout_refuses_good_credentials_until_it_expires() -> None:
    spec = fleet_of(alice(), faults=Faults(lockout_failures=3, lockout_seconds=60))
    async with running(spec) as api:
        wrong = {"Authorization": "whm root:WRONG"}
        for _ in range(2):
            assert (await api.raw("GET", "/json-api/listaccts", headers=wrong))[0] == 403
        assert (await api.whm("listaccts"))["metadata"]["result"] == 1  # not yet locked
        assert (await api.raw("GET", "/json-api/listaccts", headers=wrong))[0] == 403
        locked = await api.raw("GET", "/json-api/listaccts?api.version=1", headers=api.whm_header)
        locked_uapi = await api.raw(
            "GET", "/execute/ClamScanner/get_scan_status", headers=api.token_header("alice")
        )
        api.clock.advance(61)
        after = await api.whm("listaccts")
    assert locked == (403, "text/plain", ACCESS_DENIED)
    assert locked_uapi[0] == 403
    assert after["metadata"]["result"] == 1
    assert api.fleet.calls("sim01", function="listaccts") == 6


@pytest.mark.asyncio
async def test_whm_envelope_keeps_result_1_when_the_inner_call_failed() -> None:
    async with running(fleet_of(alice())) as api:
        answer = await api.via_whm("alice", "start_scan")  # no scan_type
        good = await api.via_whm("alice", "get_scan_paths")
    assert answer["metadata"] == {
        "command": "uapi_cpanel",
        "reason": "OK",
        "result": 1,
        "version": 1,
    }
    inner = answer["data"]["uapi"]
    assert sorted(inner) == UAPI_KEYS
    assert inner["status"] == 0
    assert inner["errors"] == ["Provide the “scan_type” argument."]
    assert good["data"]["uapi"]["metadata"] == {"transformed": 1}


@pytest.mark.asyncio
async def test_whm_level_failures_have_result_0_and_no_uapi() -> None:
    async with running(fleet_of(alice())) as api:
        unknown = await api.via_whm("nobody", "get_scan_status")
        missing = await api.whm("uapi_cpanel", **{"cpanel.user": "alice"})
        _, _, body = await api.raw(
            "GET", "/json-api/listaccts", headers=api.whm_header
        )  # no api.version
    for answer in (unknown, missing, json.loads(body)):
        assert answer["metadata"]["result"] == 0
        assert answer["metadata"]["reason"]
        assert "data" not in answer
    assert "nobody" in unknown["metadata"]["reason"]


@pytest.mark.asyncio
async def test_listaccts_fields_order_search_and_empty_result() -> None:
    spec = fleet_of(alice(), AccountSpec("bob", suspended=True), AccountSpec("carol"))
    async with running(spec) as api:
        everyone = await api.whm("listaccts")
        bob = await api.whm("listaccts", searchtype="user", search="bob", searchmethod="exact")
        nobody = await api.whm("listaccts", searchtype="user", search="zed", searchmethod="exact")
        bad = await api.whm("listaccts", searchtype="shoe", search="x")
    accts = everyone["data"]["acct"]
    assert [a["user"] for a in accts] == ["alice", "bob", "carol"]
    assert everyone["metadata"] == {
        "command": "listaccts",
        "reason": "OK",
        "result": 1,
        "version": 1,
    }
    assert accts[0]["suspended"] == 0 and accts[0]["suspendreason"] == "not suspended"
    assert accts[1]["suspended"] == 1
    assert accts[2]["diskused"] == "none"
    assert accts[0]["diskused"].endswith("M")
    assert {"domain", "owner", "plan", "email", "ip", "unix_startdate"} <= set(accts[0])
    assert [a["user"] for a in bob["data"]["acct"]] == ["bob"]
    assert nobody["metadata"]["result"] == 1
    assert "acct" not in nobody.get("data", {})
    assert (bad["metadata"]["result"], bad["metadata"]["reason"]) == (0, "Unknown search type.")


@pytest.mark.asyncio
@pytest.mark.expect_violations("results-before-complete")  # on purpose: the server side
async def test_never_scanned_status_is_null_with_a_message() -> None:
    async with running(fleet_of(alice())) as api:
        status = await api.uapi("alice", "get_scan_status")
        infected = await api.uapi("alice", "list_infected_files")
    assert (status["status"], status["data"], status["messages"]) == (1, None, ["No active scans."])
    assert (infected["data"], infected["metadata"]) == ([], {"transformed": 1})


@pytest.mark.asyncio
async def test_progress_advances_and_the_final_status_persists() -> None:
    files = [WEB, SHELL, HOMEFILE] + [asset(i) for i in range(20)]
    async with running(fleet_of(alice(files=files, scan_seconds=10.0))) as api:
        assert (await api.uapi("alice", "start_scan", scan_type="home"))["data"] is None
        counting = (await api.uapi("alice", "get_scan_status"))["data"]
        seen = []
        for _ in range(12):
            api.clock.advance(0.9)
            seen.append((await api.uapi("alice", "get_scan_status"))["data"])
        api.clock.advance(3600)
        later = (await api.uapi("alice", "get_scan_status"))["data"]
    assert counting["total_file_count"] == 0 and counting["scan_complete"] == 0
    assert isinstance(counting["time_started"], int)
    counts = [s["scanned_file_count"] for s in seen]
    assert counts == sorted(counts) and 0 < counts[3] < len(files)
    running_one = next(s for s in seen if 0 < s["scanned_file_count"] < len(files))
    total_bytes = sum(f.size for f in files)
    assert running_one["total_file_count"] == len(files)
    assert running_one["total_file_size_MiB"] == total_bytes  # bytes, as cPanel really does
    assert running_one["current_file"].startswith("/home/alice/")
    final = seen[-1]
    assert final["scan_complete"] == 1 and final["current_file"] == ""
    assert final["scanned_file_count"] == len(files) and final["scanned_file_size"] == total_bytes
    assert later == final


@pytest.mark.asyncio
@pytest.mark.expect_violations("scan-overlap", "scan-restarted")  # on purpose: the server side
async def test_one_scan_per_account_and_the_refused_start_resets_the_status() -> None:
    files = [asset(i) for i in range(30)]
    async with running(fleet_of(alice(files=files, scan_seconds=10.0))) as api:
        await api.uapi("alice", "start_scan", scan_type="home")
        api.clock.advance(5)
        before = (await api.uapi("alice", "get_scan_status"))["data"]
        refused = await api.uapi("alice", "start_scan", scan_type="home")
        reset = (await api.uapi("alice", "get_scan_status"))["data"]
        api.clock.advance(1)  # the running scanner writes its own status again
        resumed = (await api.uapi("alice", "get_scan_status"))["data"]
        api.clock.advance(100)
        final = (await api.uapi("alice", "get_scan_status"))["data"]
    assert 0 < before["scanned_file_count"] < 30
    assert (refused["status"], refused["errors"]) == (0, [ALREADY])
    assert reset["scan_complete"] == 0 and reset["scanned_file_count"] == 0
    assert reset["infected_files"] == [] and reset["total_file_count"] == 0
    assert reset["time_started"] > before["time_started"]
    assert resumed["scanned_file_count"] > before["scanned_file_count"]
    assert final["scan_complete"] == 1


@pytest.mark.asyncio
@pytest.mark.expect_violations("scan-restarted")  # on purpose: the server side
async def test_stale_window_then_a_strictly_newer_time_started() -> None:
    spec = fleet_of(alice(scan_seconds=0.5), faults=Faults(stale_seconds=2.0))
    async with running(spec) as api:
        first = (await api.scan_to_completion("alice"))["data"]
        await api.uapi("alice", "start_scan", scan_type="home")
        stale = (await api.uapi("alice", "get_scan_status"))["data"]
        api.clock.advance(2.01)
        fresh = (await api.uapi("alice", "get_scan_status"))["data"]
        api.clock.advance(10)  # second scan complete within the same epoch second? no matter:
        done = (await api.uapi("alice", "get_scan_status"))["data"]
        await api.uapi("alice", "start_scan", scan_type="home")  # third scan, same second
        api.clock.advance(2.01)
        third = (await api.uapi("alice", "get_scan_status"))["data"]
    assert stale == first
    assert fresh["time_started"] > first["time_started"]
    assert done["scan_complete"] == 1
    assert third["time_started"] > done["time_started"]


@pytest.mark.asyncio
async def test_infected_paths_are_absolute_and_html_escaped() -> None:
    async with running(fleet_of(alice())) as api:
        status = (await api.scan_to_completion("alice"))["data"]
        listed = await api.uapi("alice", "list_infected_files")
    # cPanel's encoder writes the quote as &#39; (Python's html.escape: &#x27;)
    expected = {
        html.escape(f"/home/alice/{f.relpath}", quote=True).replace(
            "&#x27;", "&#39;"
        ): f.infected_by
        for f in (SHELL, MBOX, HOMEFILE)
    }
    assert {x["file"]: x["virus_type"] for x in listed["data"]} == expected
    assert "/home/alice/public_html/up&amp;load/it&#39;s.php" in expected
    assert sorted(status["infected_files"]) == sorted(expected)
    assert listed["metadata"] == {"transformed": 1}


@pytest.mark.asyncio
async def test_partial_infected_list_while_running_and_scan_type_scope() -> None:
    async with running(fleet_of(alice())) as api:
        await api.uapi("alice", "start_scan", scan_type="mail")
        api.clock.advance(1000)
        mail_only = (await api.uapi("alice", "list_infected_files"))["data"]
    assert [x["file"] for x in mail_only] == ["/home/alice/mail/inbox"]


@pytest.mark.asyncio
@pytest.mark.expect_violations("results-before-complete")  # on purpose: the server side
async def test_missing_feature_refuses_every_function() -> None:
    async with running(fleet_of(alice(has_feature=False))) as api:
        answers = [
            await api.uapi("alice", fn)
            for fn in (
                "get_scan_paths",
                "start_scan",
                "get_scan_status",
                "list_infected_files",
                "check_disinfection_status",
            )
        ]
        answers.append(await api.disinfect("alice", {"x": "delete"}))
    for answer in answers:
        assert answer["status"] == 0
        assert answer["errors"] == ["You do not have the feature “clamavconnector_scan”."]


@pytest.mark.asyncio
async def test_scan_type_validation_messages() -> None:
    no_mail = alice(allowed_scan_types=("home", "public_html"))
    async with running(fleet_of(no_mail, AccountSpec("bob", allowed_scan_types=()))) as api:
        missing = await api.uapi("alice", "start_scan")
        empty = await api.uapi("alice", "start_scan", scan_type="")
        invalid = await api.uapi("alice", "start_scan", scan_type="disk")
        disabled = await api.uapi("alice", "start_scan", scan_type="mail")
        paths = await api.uapi("alice", "get_scan_paths")
        none_allowed = await api.uapi("bob", "get_scan_paths")
        status = await api.uapi("alice", "get_scan_status")
    assert missing["errors"] == ["Provide the “scan_type” argument."]
    assert empty["errors"] == ["The “scan_type” argument cannot be empty."]
    assert invalid["errors"][0].startswith("“disk” is not a valid “scan_type” parameter value.")
    assert disabled["errors"] == ["The scan type “mail” is disabled for this account."]
    assert [p["id"] for p in paths["data"]] == ["home", "public_html"]
    assert none_allowed["errors"] == ["ClamAV® is disabled for this account."]
    assert status["data"] is None, "validation failures come before the status reset"


@pytest.mark.asyncio
async def test_clamd_down_fails_start_scan_after_resetting_the_status() -> None:
    async with running(fleet_of(alice(), faults=Faults(clamd_down=True))) as api:
        answer = await api.uapi("alice", "start_scan", scan_type="home")
        api.clock.advance(1000)
        status = (await api.uapi("alice", "get_scan_status"))["data"]
    assert answer["errors"] == ["The system failed to connect to the “ClamAV®” service"]
    assert status["scan_complete"] == 0 and status["scanned_file_count"] == 0


@pytest.mark.asyncio
async def test_unknown_function_and_module() -> None:
    async with running(fleet_of(alice())) as api:
        fn = await api.uapi("alice", "cancel_scan")
        _, _, body = await api.raw(
            "GET", "/execute/Email/list_pops", headers=api.token_header("alice")
        )
    assert fn["errors"] == [
        "The system could not find the function “cancel_scan” in the module “ClamScanner”."
    ]
    assert json.loads(body)["errors"][0].startswith("Failed to load module “Email”")
