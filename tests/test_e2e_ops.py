"""Shards and merge, reruns of failures, baseline delta, webhook: the operator's toolbox."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from orchestrator.simulator import generate_fleet

from .conftest import Outcome, Sim, comparable, run_subprocess


def test_shards_in_separate_processes_merge_into_the_unsharded_report(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=5, accounts=2, infected_ratio=0.5, seed=51, scan_seconds=0.3)
    sim = simulate(spec)
    whole = cli("run", sim.inventory)
    shards = []
    for i in (1, 2, 3):
        out = tmp_path / f"shard-{i}"
        proc = run_subprocess(
            "run", sim.inventory, "--shard", f"{i}/3", "--out", out, "--no-progress", env=sim.env
        )
        assert proc.returncode in (0, 1, 2), proc.stderr
        shards.append(out / "report.json")
    servers_per_shard = [
        {t["server"] for t in json.loads(p.read_text())["targets"]} for p in shards
    ]
    assert set().union(*servers_per_shard) == {s.name for s in spec.servers}
    assert sum(len(s) for s in servers_per_shard) == len(spec.servers), (
        "a server lands in exactly one shard"
    )
    merged = cli("merge", *shards)
    assert comparable(merged.report) == comparable(whole.report)
    assert merged.code == whole.code
    assert merged.report["run"]["shard"] == "1/1"


def test_merge_names_missing_shards_and_refuses_overlaps(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=4, accounts=1, infected_ratio=0.0, seed=52, scan_seconds=0.2)
    sim = simulate(spec)
    one = cli("run", sim.inventory, "--shard", "1/2")
    partial = cli("merge", one.out / "report.json")
    assert partial.code == 2
    assert "missing shards: 2" in partial.stdout
    again = cli("run", sim.inventory, "--shard", "1/2")
    refused = cli("merge", one.out / "report.json", again.out / "report.json")
    assert refused.code == 3
    (line,) = refused.stderr.strip().splitlines()  # one line, naming both files
    assert "shard" in line.lower()
    assert str(one.out / "report.json") in line and str(again.out / "report.json") in line


def test_only_failed_reruns_exactly_the_failed_targets_and_merge_folds_them(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = generate_fleet(servers=2, accounts=3, infected_ratio=0.0, seed=53, scan_seconds=0.2)
    sim = simulate(spec)
    token_var = next(k for k in sim.env if "SIM02" in k)
    monkeypatch.setenv(token_var, "wrong")
    first = cli("run", sim.inventory)
    failed = {k for k, t in first.targets().items() if t["status"] == "failed"}
    assert failed and all(server == "sim02" for server, _, _ in failed)
    monkeypatch.setenv(token_var, sim.env[token_var])
    starts_before = sim.fleet.calls("sim01", function="start_scan")
    rerun = cli("run", sim.inventory, "--only-failed", first.out / "report.json")
    assert set(rerun.targets()) == failed or {("sim02", "*", "home")} == failed
    assert sim.fleet.calls("sim01", function="start_scan") == starts_before, (
        "sim01 is not scanned again"
    )
    assert rerun.report["run"]["rerun_of"] == first.report["run"]["id"]
    folded = cli("merge", first.out / "report.json", rerun.out / "report.json")
    assert {t["status"] for t in folded.report["targets"]} == {"clean"}
    assert folded.code == 0


def test_baseline_marks_new_recurring_and_resolved(
    simulate: Callable[..., Sim], cli: Callable[..., Outcome], tmp_path: Path
) -> None:
    spec = generate_fleet(servers=1, accounts=3, infected_ratio=1.0, seed=54, scan_seconds=0.2)
    sim = simulate(spec)
    first = cli("run", sim.inventory)
    policy = tmp_path / "p.yaml"
    victim = spec.servers[0].accounts[0].user
    policy.write_text(
        f"default: report\nrules:\n  - when: {{account: {victim}}}\n    action: delete\n"
    )
    cli("run", sim.inventory, "--policy", policy)  # deletes the victim's files
    third = cli("run", sim.inventory, "--baseline", first.out / "report.json")
    deltas = {f["delta"] for t in third.report["targets"] for f in t["infected_files"]}
    assert deltas == {"recurring"}
    assert third.report["summary"]["delta"]["resolved"] >= 1
    assert third.report["summary"]["delta"]["new"] == 0


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook receiver on 127.0.0.1 in its own thread."""
    import asyncio

    received: list[dict[str, Any]] = []
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    def serve() -> None:
        loop = asyncio.new_event_loop()
        state["loop"] = loop
        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        state["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    yield f"http://127.0.0.1:{state['port']}/hook", received
    state["loop"].call_soon_threadsafe(state["loop"].stop)
    thread.join(10)


def test_webhook_posts_a_summary_and_a_dead_webhook_does_not_change_the_exit_code(
    simulate: Callable[..., Sim],
    cli: Callable[..., Outcome],
    receiver: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = receiver
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
