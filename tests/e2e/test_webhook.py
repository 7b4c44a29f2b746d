"""--notify-webhook through the CLI: the summary posted, the --notify-on modes, a failing or
hanging receiver that changes nothing and never shows its URL, a webhook URL on the command line
or an unset variable refused before any scan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from orchestrator.client import post_webhook
from orchestrator.model import TargetResult
from orchestrator.simulator import generate_fleet
from tests.support import Outcome, Sim, edited_report, http_receiver, target_key

# ---------------------------------------------------------------------------------------------
# Webhook: modes, failures that change nothing, the timeout, the URL kept secret


@dataclass
class Receiver:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    hang: bool = False


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 in its own thread; the path looks like a Slack secret."""
    hook = Receiver(url="")
    release = asyncio.Event()  # a hanging receiver waits for it (set before the server stops)

    async def handle(request: web.Request) -> web.Response:
        hook.received.append(await request.json())
        if hook.hang:
            await release.wait()
        return web.Response(status=hook.status, text="ok")

    path = "/services/T000/B000/SECRETHOOKPATH"
    routes = lambda app: app.router.add_post(path, handle)  # noqa: E731
    with http_receiver(routes, before_stop=lambda _loop: release.set()) as port:
        hook.url = f"http://127.0.0.1:{port}{path}"
        yield hook


def test_webhook_posts_a_summary_and_a_dead_webhook_does_not_change_the_exit_code(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = receiver.url, receiver.received
    spec = generate_fleet(servers=1, accounts=2, infected_ratio=1.0, seed=55, scan_seconds=0.2)
    sim = simulate(spec)
    monkeypatch.setenv("CLAMFLEET_TEST_HOOK", url)
    result = cli(
        "run", sim.inventory, "--notify-webhook", "CLAMFLEET_TEST_HOOK", "--notify-on", "infected"
    )
    assert result.code == 1
    assert len(received) == 1
    assert "text" in received[0] and "infected" in received[0]["text"]
    monkeypatch.setenv("CLAMFLEET_TEST_HOOK", "http://127.0.0.1:9/hook")  # nobody listens
    dead = cli("run", sim.inventory, "--notify-webhook", "CLAMFLEET_TEST_HOOK")
    assert dead.code == 1
    assert url not in dead.stderr
    literal = cli("run", sim.inventory, "--notify-webhook", url)
    assert literal.code == 3, "a webhook URL on the command line is refused (it is a secret)"


def test_notify_on_modes_post_only_when_asked(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("CLAMFLEET_WEBHOOK_URL", receiver.url)
    hook = ("--notify-webhook", "CLAMFLEET_WEBHOOK_URL")
    clean = simulate(
        generate_fleet(servers=1, accounts=2, infected_ratio=0.0, seed=70, scan_seconds=0.2)
    )
    assert cli("run", clean.inventory, *hook, "--notify-on", "infected").code == 0
    assert receiver.received == [], "a clean fleet is no news under --notify-on infected"
    assert cli("run", clean.inventory, *hook, "--notify-on", "always").code == 0
    (always,) = receiver.received
    assert "\n" not in always["text"] and "exit 0" in always["text"]
    assert always["summary"]["exit_code"] == 0

    receiver.received.clear()
    dirty = simulate(
        generate_fleet(servers=1, accounts=3, infected_ratio=1.0, seed=71, scan_seconds=0.2)
    )
    first = cli("run", dirty.inventory)
    same = cli("run", dirty.inventory, "--baseline", first.out / "report.json", *hook,
               "--notify-on", "new")  # fmt: skip
    assert same.code == 1
    assert receiver.received == [], "nothing new since the baseline: no post"
    victim = next(t for t in first.report["targets"] if t["infected_files"])

    def forget_one(t: TargetResult) -> TargetResult:
        if (t.server, t.account, str(t.scan_type)) == target_key(victim):
            return replace(t, infected_files=t.infected_files[1:])
        return t

    changed = edited_report(first.out / "report.json", tmp_path / "baseline", forget_one)
    news = cli("run", dirty.inventory, "--baseline", changed, *hook, "--notify-on", "new")
    assert news.code == 1
    (posted,) = receiver.received
    assert "(1 new)" in posted["text"]
    assert posted["summary"] == news.report["summary"]


def test_a_failing_webhook_changes_nothing_and_never_shows_its_url(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAMFLEET_WEBHOOK_URL", receiver.url)
    sim = simulate(
        generate_fleet(servers=1, accounts=2, infected_ratio=1.0, seed=72, scan_seconds=0.2)
    )
    receiver.status = 500
    broken = cli("run", sim.inventory, "--notify-webhook", "CLAMFLEET_WEBHOOK_URL")
    assert broken.code == 1
    assert len(receiver.received) == 1
    assert "500" in broken.stderr  # the operator learns the notification failed
    for text in (broken.stdout, broken.stderr, (broken.out / "report.json").read_text()):
        assert "SECRETHOOKPATH" not in text

    receiver.status = 200
    receiver.hang = True  # never answers while the run lasts: the run must not wait for it
    monkeypatch.setattr(post_webhook, "__defaults__", (0.5,))
    hung = cli("run", sim.inventory, "--notify-webhook", "env:CLAMFLEET_WEBHOOK_URL")
    assert hung.code == 1
    assert "timed out" in hung.stderr
    assert "SECRETHOOKPATH" not in hung.stdout + hung.stderr


def test_notify_webhook_names_an_unset_variable_and_scans_nothing(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = simulate(generate_fleet(servers=1, accounts=1, seed=73, scan_seconds=0.2))
    monkeypatch.delenv("CLAMFLEET_UNSET_WEBHOOK", raising=False)
    refused = cli("run", sim.inventory, "--notify-webhook", "CLAMFLEET_UNSET_WEBHOOK")
    assert refused.code == 3
    assert "CLAMFLEET_UNSET_WEBHOOK" in refused.stderr
    assert sim.fleet.calls("sim01") == 0
