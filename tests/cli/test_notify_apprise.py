"""Notifications through Apprise, end to end: a real SMTP server on 127.0.0.1 (aiosmtpd, with a
login) receives the mail and the test parses it; a local HTTP receiver gets Apprise's JSON
route; a dead or silent mail server changes no exit code and shows no URL; `settings.notify`;
and Apprise is not imported by `--help`."""

from __future__ import annotations

import email
import email.policy
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from orchestrator.cli import notify_apprise
from orchestrator.simulator import FleetSpec, ServerSpec
from tests.support import Outcome, Sim, edit_inventory, http_receiver, one_server, small_account

SMTP_PASSWORD = "Sm7pPassw0rdNotForLogs"
# The login goes in clear text on loopback, on purpose: the test reads what is sent.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Mailbox:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    def url(self, **query: str) -> str:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return (
            f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:{self.port}"
            f"?from=clamfleet@example.com&to=oncall@example.com{'&' + params if params else ''}"
        )


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """aiosmtpd on 127.0.0.1 that wants a login (PLAIN/LOGIN, no TLS on loopback)."""
    box = Mailbox(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(
                email.message_from_bytes(envelope.content, policy=email.policy.default)
            )
            return "250 OK"

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login, password = auth_data.login.decode(), auth_data.password.decode()
        box.logins.append((login, password))
        return AuthResult(success=password == SMTP_PASSWORD)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=box.port,
        authenticator=authenticator,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    yield box
    controller.stop()


@dataclass
class JsonReceiver:
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    """An HTTP receiver on 127.0.0.1 for Apprise's json:// and for --notify-webhook."""
    box = JsonReceiver()

    async def handle(request: web.Request) -> web.Response:
        box.received.append({"path": request.path, **await request.json()})
        return web.Response(text="ok")

    with http_receiver(lambda app: app.router.add_post("/{tail:.*}", handle)) as port:
        box.url = f"127.0.0.1:{port}"
        yield box


def infected_and_failed(simulate: Callable[..., Sim], monkeypatch: pytest.MonkeyPatch) -> Sim:
    """sim01: alice infected; sim02: its token refused, so the whole server fails."""
    good = ServerSpec("sim01", accounts=(small_account("alice", infected=True),))
    refusing = ServerSpec("sim02", accounts=(small_account("bob"),))
    sim = simulate(FleetSpec(servers=(good, refusing), scan_seconds=0.2))
    monkeypatch.setenv(next(k for k in sim.env if "SIM02" in k), "not-the-token")
    return sim


def test_the_mail_arrives_with_the_verdict_as_subject_and_both_bodies(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = infected_and_failed(simulate, monkeypatch)
    monkeypatch.setenv("OPS_MAIL", mailbox.url())
    result = cli("run", sim.inventory, "--notify", "OPS_MAIL")
    assert result.code == 1
    (mail,) = mailbox.messages
    assert mailbox.logins == [("ops", SMTP_PASSWORD)]
    fleet = sim.inventory.stem
    assert mail["Subject"] == f"[clamfleet] {fleet}: 1 infected file, 1 server failed"
    assert mail["To"] == "oncall@example.com" and mail["From"] == "clamfleet@example.com"
    plain = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert plain is not None and html is not None
    text, markup = plain.get_content(), html.get_content()
    # new findings first, then failures, then where the report is
    order = [text.index(s) for s in ("Infected files (1)", "Failures (1)", "Report: ")]
    assert order == sorted(order)
    assert "sim01/alice: /home/alice/public_html/shell.php (Php.Webshell-1)" in text
    assert "sim02/* (home): auth: listaccts: HTTP 403" in text  # the server's accounts: unlisted
    assert str(result.out / "report.html") in text
    assert "<h3>Infected files (1)</h3>" in markup and "<li>" in markup
    headers = "\n".join(f"{k}: {v}" for k, v in mail.items())
    for secret in (SMTP_PASSWORD, mailbox.url()):
        assert secret not in headers and secret not in text and secret not in markup
        assert secret not in result.stdout + result.stderr
    assert "notify.sent" in result.stderr and "E-Mail" in result.stderr


def test_a_dead_or_silent_mail_server_changes_nothing_and_never_shows_the_url(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = simulate(one_server(small_account("alice", infected=True)))
    dead = (
        f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:{free_port()}?from=a@example.com&to=b@example.com"
    )
    monkeypatch.setenv("OPS_MAIL", dead)
    result = cli("run", sim.inventory, "--notify", "OPS_MAIL")
    assert result.code == 1
    assert "notify.failed" in result.stderr and "E-Mail" in result.stderr
    assert "OPS_MAIL" in result.stderr  # the variable is named: it is where the URL is set
    for text in (result.stdout, result.stderr, (result.out / "report.json").read_text()):
        assert SMTP_PASSWORD not in text and dead not in text and "from=a@example.com" not in text

    # a server that accepts the connection and never says a word: given up, not waited for
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        monkeypatch.setenv(
            "OPS_MAIL", f"mailto://127.0.0.1:{port}?from=a@example.com&to=b@example.com"
        )
        monkeypatch.setattr(notify_apprise, "NOTIFY_SECONDS", 0.5)
        hung = cli("run", sim.inventory, "--notify", "OPS_MAIL")
    assert hung.code == 1
    assert "notify.failed" in hung.stderr and "no answer within 0.5 s" in hung.stderr


def test_chat_services_get_one_short_line_and_the_json_webhook_still_works(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    receiver: JsonReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = simulate(one_server(small_account("alice", infected=True), small_account("bob")))
    monkeypatch.setenv("CHAT_URL", f"json://{receiver.url}/apprise")
    monkeypatch.setenv("HOOK_URL", f"http://{receiver.url}/webhook")
    result = cli("run", sim.inventory, "--notify", "CHAT_URL", "--notify-webhook", "HOOK_URL")
    assert result.code == 1
    by_path = {r["path"]: r for r in receiver.received}
    assert set(by_path) == {"/apprise", "/webhook"}
    chat = by_path["/apprise"]["message"]
    assert "\n" not in chat
    assert chat.startswith(f"clamfleet {sim.inventory.stem}: 1 infected file (exit 1).")
    assert chat.endswith(str(result.out / "report.html"))
    assert by_path["/webhook"]["summary"]["infected_files"] == 1  # the JSON POST, as before


def test_notify_on_failed_and_settings_notify(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    receiver: JsonReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAT_URL", f"json://{receiver.url}/chat")
    clean = simulate(one_server(small_account("alice")))
    assert cli("run", clean.inventory, "--notify", "CHAT_URL", "--notify-on", "failed").code == 0
    assert receiver.received == [], "nothing failed: no news"
    broken = simulate(FleetSpec(servers=(ServerSpec("sim02", (small_account("bob"),)),)))
    monkeypatch.setenv(next(iter(broken.env)), "not-the-token")
    assert cli("run", broken.inventory, "--notify", "CHAT_URL", "--notify-on", "failed").code == 2
    (failed,) = receiver.received
    assert "1 server failed" in failed["message"]

    receiver.received.clear()
    edit_inventory(
        clean.inventory,
        lambda d: d["settings"].update(notify=[{"url_env": "CHAT_URL", "on": "always"}]),
    )
    assert cli("run", clean.inventory).code == 0
    (always,) = receiver.received
    assert "clean (1 target scanned)" in always["message"]

    monkeypatch.delenv("CHAT_URL")
    unset = cli("run", clean.inventory)
    assert unset.code == 3
    assert f"{clean.inventory}:" in unset.stderr and "settings.notify[0].url_env" in unset.stderr
    assert "environment variable CHAT_URL is not set" in unset.stderr


def test_a_url_apprise_cannot_use_stops_the_run_before_any_request(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = simulate(one_server(small_account("alice")))
    # no sender address: Apprise cannot use it (say so now, not in the morning)
    monkeypatch.setenv("OPS_MAIL", f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:25")
    refused = cli("run", sim.inventory, "--notify", "OPS_MAIL")
    assert refused.code == 3
    assert "--notify: the URL in environment variable OPS_MAIL is not one Apprise" in refused.stderr
    assert SMTP_PASSWORD not in refused.stderr
    monkeypatch.setenv("OPS_MAIL", "nonsense://somewhere")
    edit_inventory(sim.inventory, lambda d: d["settings"].update(notify=[{"url_env": "OPS_MAIL"}]))
    unusable = cli("run", sim.inventory)
    assert unusable.code == 3 and "settings.notify[0].url_env" in unusable.stderr
    assert "nonsense" not in unusable.stderr
    assert sim.fleet.calls("sim01") == 0


def test_a_url_on_the_command_line_is_refused_without_being_shown(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome]
) -> None:
    sim = simulate(one_server(small_account("alice")))
    url = f"mailto://ops:{SMTP_PASSWORD}@mail.example.com"
    refused = cli("run", sim.inventory, "--notify", url)
    assert refused.code == 3 and "--notify" in refused.stderr
    assert SMTP_PASSWORD not in refused.stderr
    assert sim.fleet.calls("sim01") == 0


def test_help_does_not_import_apprise() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from orchestrator.cli import main\n"
        "for argv in (['--help'], ['run', '--help'], ['history', '--help']):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main(argv)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('apprise', 'sqlite3')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
