"""disinfect_files sent or not, known for sure: a run stopped between the session login and the
POST resumes by sending it (once), one stopped as the POST left follows it and calls what it
cannot confirm `interrupted`; a sibling scan type never calls a file "already sent" that no
request carried. The stop is a fault injected in this process at the exact point (the journal
is left as a kill -9 leaves it: nothing is written after the fault)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from orchestrator.client.channel import Channel
from orchestrator.client.route import WhmRoute
from orchestrator.client.transport import Http
from orchestrator.errors import ApiError
from orchestrator.model import EXIT_INTERNAL
from orchestrator.simulator import AccountSpec, SimFile
from tests.support import (
    Outcome,
    Sim,
    assert_outcomes_are_what_the_server_did,
    one_server,
    write_policy,
)

DISINFECT = "disinfect_files"
MAIL_FILE = "/home/alice/mail/example.com/info/inbox"
WEB_FILE = "/home/alice/public_html/shell.php"


class Killed(Exception):
    """The process dies here (the fault): nothing after it reaches the journal or the server."""


def alice() -> AccountSpec:
    """A web shell, and an infected mailbox that `home` and `mail` both find."""
    return AccountSpec(
        "alice",
        files=(
            SimFile("public_html/index.php", 3000),
            SimFile("public_html/shell.php", 900, "Php.Webshell-1"),
            SimFile("mail/example.com/info/inbox", 4000, None, [None, "Html.Phishing.Bank-2"]),
        ),
    )


@contextmanager
def killed_before_the_post() -> Iterator[None]:
    """Dies after create_user_session and the session login, before the POST is sent."""
    original = Channel.post_json

    async def post_json(self: Channel, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("function") == DISINFECT:
            raise Killed("killed between the session login and the POST")
        return await original(self, *args, **kwargs)

    with mock.patch.object(Channel, "post_json", post_json):
        yield


@contextmanager
def killed_as_the_post_leaves() -> Iterator[None]:
    """Dies after the POST was marked as leaving (journaled), before cPanel received it."""
    original = Http.send

    async def send(self: Http, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("where", ("", ""))[1] == DISINFECT:
            raise Killed("killed as the POST left")
        return await original(self, *args, **kwargs)

    with mock.patch.object(Http, "send", send):
        yield


@contextmanager
def first_session_refused() -> Iterator[None]:
    """WHM refuses the run's first create_user_session (an API error, never retried): the
    disinfect_files of that target never leaves; later sessions open as usual."""
    original = WhmRoute.open_session
    calls = 0

    async def open_session(self: WhmRoute, account: str) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ApiError("create_user_session: refused (the WHM token lacks the ACL)")
        return await original(self, account)

    with mock.patch.object(WhmRoute, "open_session", open_session):
        yield


def disinfection_rows(journal: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT state FROM targets WHERE state IS NOT NULL").fetchall()
    states = [json.loads(state) for (state,) in rows]
    return [s["disinfection"] for s in states if s["phase"] == "disinfecting"]


def files_of(report: dict[str, Any], scan_type: str) -> dict[str, dict[str, Any]]:
    (target,) = [t for t in report["targets"] if t["scan_type"] == scan_type]
    return {f["path"]: f for f in target["infected_files"]}


def start(simulate: Callable[..., Sim], tmp_path: Path) -> tuple[Sim, list[str | Path]]:
    sim = simulate(one_server(alice(), seed=5), server_keys={"scan_types": ["home", "mail"]})
    args: list[str | Path] = ["run", sim.inventory, "--policy", write_policy(tmp_path)]
    return sim, [*args, "--journal", tmp_path / "journal.sqlite"]


def test_a_run_killed_between_the_session_login_and_the_post_resumes_by_sending_it_once(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim, args = start(simulate, tmp_path)
    with killed_before_the_post():
        killed = cli(*args)
    assert killed.code == EXIT_INTERNAL, killed.stderr
    assert sim.fleet.calls("sim01", function="create_user_session") == 1
    assert sim.fleet.calls("sim01", function=DISINFECT) == 0
    (task,) = disinfection_rows(tmp_path / "journal.sqlite")
    assert task["sending"] is False, "the journal knows the POST never left"

    resumed = cli(*args, "--resume")
    assert resumed.code == 1, resumed.stderr
    assert sim.fleet.calls("sim01", function=DISINFECT) == 1, "sent on resume, once"
    report = resumed.report
    home, mail = files_of(report, "home"), files_of(report, "mail")
    assert home[WEB_FILE]["outcome"] == "quarantined"
    assert home[MAIL_FILE]["outcome"] == "mailbox-cleansed"
    assert mail == {}, "mail scanned after home's disinfection: nothing left"
    assert all(t["error"] is None for t in report["targets"]), report["targets"]
    assert_outcomes_are_what_the_server_did(sim, report)


def test_a_run_killed_as_the_post_left_resumes_by_following_it_and_says_interrupted(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    sim, args = start(simulate, tmp_path)
    with killed_as_the_post_leaves():
        killed = cli(*args)
    assert killed.code == EXIT_INTERNAL, killed.stderr
    (task,) = disinfection_rows(tmp_path / "journal.sqlite")
    assert task["sending"] is True, "journaled before it left: it may have reached cPanel"

    resumed = cli(*args, "--resume")
    assert resumed.code == 1, resumed.stderr
    assert sim.fleet.calls("sim01", function=DISINFECT) == 0, "maybe sent: never resent"
    report = resumed.report
    (home,) = [t for t in report["targets"] if t["scan_type"] == "home"]
    assert home["error"]["kind"] == "interrupted", home["error"]
    assert {f["outcome"] for f in home["infected_files"]} == {"unknown"}
    mail = files_of(report, "mail")
    assert mail[MAIL_FILE]["outcome"] == "not-requested", "maybe sent by home: not twice"
    assert_outcomes_are_what_the_server_did(sim, report)


def test_a_sibling_scan_type_sends_a_file_whose_first_request_never_left(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    # home's session cannot be opened (WHM refuses create_user_session): its disinfect_files
    # never leaves; mail's, later, opens one
    sim = simulate(one_server(alice(), seed=5), server_keys={"scan_types": ["home", "mail"]})
    with first_session_refused():
        result = cli("run", sim.inventory, "--policy", write_policy(tmp_path))
    report = result.report
    home, mail = files_of(report, "home"), files_of(report, "mail")
    assert home[MAIL_FILE]["outcome"] == "error"
    assert mail[MAIL_FILE]["outcome"] == "mailbox-cleansed", mail[MAIL_FILE]
    assert "already sent" not in (mail[MAIL_FILE]["message"] or "")
    assert sim.fleet.calls("sim01", function=DISINFECT) == 1, "mail's request only"
    mailbox = sim.fleet.account_state("sim01", "alice").files["mail/example.com/info/inbox"]
    assert mailbox.infected_by is None, "cleansed by mail's own request"
