"""Simulator fidelity: disinfect_files, check_disinfection_status and the WHM session route."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.simulator import AccountSpec, Faults
from tests.simulator.raw import HOMEFILE, SHELL, WEB, Api, alice, fleet_of, running

HASHREF = "The parameter “actions” is required and must be a non-empty hashref."


async def records_until_done(api: Api, user: str = "alice") -> list[dict[str, Any]]:
    for _ in range(100):
        answer = (await api.uapi(user, "check_disinfection_status"))["data"]
        if answer["status"] == "done":
            details: list[dict[str, Any]] = answer["details"]
            return details
        api.clock.advance(0.05)
    raise AssertionError("disinfection never finished")


@pytest.mark.asyncio
async def test_transient_none_then_records_then_done_and_the_last_id_pitfall() -> None:
    spec = fleet_of(alice(), faults=Faults(disinfect_start_delay=1.0, disinfect_step_seconds=0.1))
    async with running(spec) as api:
        await api.scan_to_completion("alice")
        queued = await api.disinfect(
            "alice", {"/home/alice/public_html/up&load/it's.php": "quarantine"}
        )
        early = (await api.uapi("alice", "check_disinfection_status"))["data"]
        api.clock.advance(1.15)
        partial = (await api.uapi("alice", "check_disinfection_status"))["data"]
        api.clock.advance(1.0)
        full = (await api.uapi("alice", "check_disinfection_status"))["data"]
        last = full["details"][-1]["id"]
        after_one = await api.uapi("alice", "check_disinfection_status", last_id="1")
        after_done = await api.uapi("alice", "check_disinfection_status", last_id=str(last))
        infected = await api.uapi("alice", "list_infected_files")
    assert queued["status"] == 1
    assert queued["data"]["log"] == "/home/alice/.clamavconnector.disinfection.log"
    assert queued["data"]["task_id"].startswith("00000000/")
    assert (early["status"], early["details"]) == ("none", [])
    assert partial["status"] == "running" and len(partial["details"]) == 1
    steps = {r["file"]: r for r in full["details"] if r["type"] == "step"}
    assert full["status"] == "done"
    assert full["details"][-1] == {"id": 4, "type": "done", "state": "success"}
    assert [r["id"] for r in full["details"]] == [1, 2, 3, 4]
    assert steps["public_html/up&load/it's.php"]["state"] == "quarantined"
    assert steps["mail/inbox"]["state"] == "no-action"
    assert steps["mail/inbox"]["message"] == "No action specified for file."
    assert after_one["data"]["status"] == "done" and after_one["data"]["details"][0]["id"] == 2
    assert (after_done["data"]["status"], after_done["data"]["details"]) == ("none", [])
    assert infected["data"] == []


@pytest.mark.asyncio
@pytest.mark.expect_violations(
    "disinfect-unlisted-path", "scan-restarted"
)  # on purpose: the server side
async def test_actions_apply_to_the_virtual_files_and_the_next_scan_is_clean() -> None:
    async with running(fleet_of(alice())) as api:
        await api.scan_to_completion("alice")
        await api.disinfect(
            "alice",
            {
                "public_html/up&load/it's.php": "quarantine",
                "/home/alice/mail/inbox": "cleanse_mailbox",
                "tmp/eicar.com": "delete",
                "public_html/not-scanned.php": "delete",
            },
        )
        details = await records_until_done(api)
        state = api.fleet.account_state("sim01", "alice")
        rescan = (await api.scan_to_completion("alice"))["data"]
    assert {r.get("file"): r["state"] for r in details} == {
        "public_html/up&load/it's.php": "quarantined",
        "mail/inbox": "mailbox-cleansed",
        "tmp/eicar.com": "deleted",
        None: "success",
    }
    assert SHELL.relpath not in state.files and HOMEFILE.relpath not in state.files
    assert "quarantine_clamavconnector/public_html_up&load_it's.php" in state.files
    assert list(state.files["mail/inbox"].mail_messages or []) == [None, None]
    assert state.files[WEB.relpath] == WEB
    assert rescan["infected_files"] == []
    assert rescan["total_file_count"] == 2  # index.php and the cleansed mbox


@pytest.mark.asyncio
async def test_cleanse_mailbox_outside_mail_is_an_error_step() -> None:
    async with running(fleet_of(alice(files=(WEB, SHELL)))) as api:
        await api.scan_to_completion("alice")
        await api.disinfect("alice", {SHELL.relpath: "cleanse_mailbox"})
        details = await records_until_done(api)
    assert details[0]["state"] == "error"
    assert details[0]["message"] == f"The file “{SHELL.relpath}” is not in a mailbox."


@pytest.mark.asyncio
@pytest.mark.expect_violations("disinfect-unlisted-path")  # on purpose: the server side
async def test_nothing_infected_gives_done_info_without_running() -> None:
    async with running(fleet_of(alice(files=(WEB,)))) as api:
        await api.scan_to_completion("alice")
        await api.disinfect("alice", {"x": "delete"})
        details = await records_until_done(api)
    assert details == [
        {"id": 1, "type": "done", "state": "info", "message": "No infected files found"}
    ]


@pytest.mark.asyncio
async def test_disinfect_needs_exactly_application_json_and_the_actions_wrapper() -> None:
    async with running(fleet_of(alice())) as api:
        await api.scan_to_completion("alice")
        headers = api.token_header("alice")
        path = "/execute/ClamScanner/disinfect_files"
        body = json.dumps({"actions": {"tmp/eicar.com": "delete"}})
        answers = [
            await api.raw("POST", path, data=body, headers={**headers, "Content-Type": ctype})
            for ctype in ("application/json; charset=utf-8", "text/plain")
        ]
        answers.append(await api.raw("GET", path, params={"actions": body}, headers=headers))
        answers.append(await api.raw("POST", path, data={"actions": body}, headers=headers))
        unwrapped = await api.raw(
            "POST",
            path,
            data=json.dumps({"tmp/eicar.com": "delete"}),
            headers={**headers, "Content-Type": "application/json"},
        )
        bad_value = await api.disinfect("alice", {"tmp/eicar.com": "cure"})
        empty = await api.disinfect("alice", {})
    for _, _, text in [*answers, unwrapped]:
        assert json.loads(text)["errors"] == [HASHREF]
    assert empty["errors"] == [HASHREF]
    assert bad_value["errors"][0].startswith(
        "“cure” is not a valid “actions” parameter value. Select from one of the following:"
    )
    assert api.fleet.account_state("sim01", "alice").disinfection == "none"


@pytest.mark.asyncio
async def test_uapi_cpanel_cannot_carry_nested_actions() -> None:
    async with running(fleet_of(alice())) as api:
        await api.scan_to_completion("alice")
        as_string = await api.via_whm(
            "alice", "disinfect_files", actions=json.dumps({"tmp/eicar.com": "delete"})
        )
        body = {
            "api.version": 1,
            "cpanel.user": "alice",
            "cpanel.module": "ClamScanner",
            "cpanel.function": "disinfect_files",
            "actions": {"tmp/eicar.com": "delete"},
        }
        _, _, text = await api.raw(
            "POST",
            "/json-api/uapi_cpanel",
            data=json.dumps(body),
            headers={**api.whm_header, "Content-Type": "application/json"},
        )
    nested = json.loads(text)
    assert as_string["metadata"]["result"] == 1
    assert as_string["data"]["uapi"]["errors"] == [HASHREF]
    assert nested["metadata"]["result"] == 1
    assert nested["data"]["uapi"]["status"] == 0
    assert nested["data"]["uapi"]["errors"][0].endswith("does not expect nested data structures.")


@pytest.mark.asyncio
@pytest.mark.expect_violations("suspended-account")  # on purpose: the server side
async def test_create_user_session_cookie_then_disinfect_through_cpsess() -> None:
    spec = fleet_of(alice(), AccountSpec("bob", suspended=True))
    async with running(spec) as api:
        await api.scan_to_completion("alice")
        created = await api.whm("create_user_session", user="alice", service="cpaneld")
        suspended = await api.whm("create_user_session", user="bob", service="cpaneld")
        data = created["data"]
        token = data["cp_security_token"]
        login_path = data["url"].removeprefix(api.url)
        async with api.http.get(data["url"], allow_redirects=False) as login:
            cookie = login.cookies["cpsession"].value
            login_status = login.status
        body = json.dumps({"actions": {"/home/alice/tmp/eicar.com": "delete"}})
        post = {"Cookie": f"cpsession={cookie}", "Content-Type": "application/json"}
        ok = await api.raw(
            "POST", f"{token}/execute/ClamScanner/disinfect_files", data=body, headers=post
        )
        wrong_cookie = await api.raw(
            "GET", f"{token}/execute/ClamScanner/get_scan_status", headers={"Cookie": "cpsession=x"}
        )
        wrong_token = await api.raw(
            "GET",
            "/cpsess0000000000/execute/ClamScanner/get_scan_status",
            headers={"Cookie": f"cpsession={cookie}"},
        )
        replay = await api.raw("GET", login_path)
        details = await records_until_done(api)
    assert created["metadata"]["reason"] == "Created session"
    assert token.startswith("/cpsess") and len(token) == len("/cpsess") + 10
    assert data["service"] == "cpaneld" and data["session"].startswith("alice:")
    assert data["url"].startswith(f"{api.url}{token}/login/?session=alice:")
    assert data["expires"] == int(api.clock.time() + 300)
    assert login_status in (200, 302)
    assert ok[0] == 200 and json.loads(ok[2])["status"] == 1
    for status, ctype, text in (wrong_cookie, wrong_token):
        assert status == 401 and ctype.startswith("text/html") and "Invalid security token" in text
    assert replay[0] == 401
    assert suspended["metadata"]["result"] == 0
    assert suspended["metadata"]["reason"].endswith("because they are currently suspended.")
    assert {r.get("file"): r["state"] for r in details}["tmp/eicar.com"] == "deleted"
    assert (
        api.fleet.calls("sim01", route="cpsess_execute", account="alice") == 2
    )  # ok + wrong token


@pytest.mark.asyncio
async def test_sessions_expire() -> None:
    async with running(fleet_of(alice())) as api:
        data = (await api.whm("create_user_session", user="alice", service="cpaneld"))["data"]
        api.clock.advance(301)
        late = await api.raw("GET", data["url"].removeprefix(api.url))
        data = (await api.whm("create_user_session", user="alice", service="cpaneld"))["data"]
        async with api.http.get(data["url"], allow_redirects=False) as login:
            cookie = {"Cookie": f"cpsession={login.cookies['cpsession'].value}"}
        path = f"{data['cp_security_token']}/execute/ClamScanner/get_scan_status"
        api.clock.advance(800)
        fresh = await api.raw("GET", path, headers=cookie)
        api.clock.advance(901)
        idle = await api.raw("GET", path, headers=cookie)
    assert late[0] == 401
    assert fresh[0] == 200
    assert idle[0] == 401
