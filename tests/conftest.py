"""Shared fixtures: every simulated fleet refereed, retries without waits, an Http client, a
simulated fleet on 127.0.0.1 with its inventory, and the real CLI run in this process. The
helpers they use, and that tests import, are in `tests/support.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import stamina

from orchestrator.cli import main
from orchestrator.client import Http
from orchestrator.simulator import (
    FleetSpec,
    SimulatedFleet,
    SimulatorThread,
)
from orchestrator.simulator.referee import RULES, Violation
from tests.support import FAST_SERVER, FAST_SETTINGS, Outcome, Sim


@pytest.fixture(autouse=True)
def _fast_retries() -> Iterator[None]:
    """Retries keep their attempts but not their waits (stamina's test mode)."""
    stamina.set_testing(True, attempts=3)
    yield
    stamina.set_testing(False)


@pytest.fixture(autouse=True)
def referee(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every simulated fleet a test starts (fixture, SimulatorThread, SimulatedFleet, demo) is
    watched; at teardown the test fails when any recorded a protocol violation.

    A test that breaks a rule on purpose says so with `@pytest.mark.expect_violations(RULE,
    ...)`: then every rule named must have been recorded, and no other.
    """
    fleets: list[SimulatedFleet] = []
    original = SimulatedFleet.__init__

    def watched(self: SimulatedFleet, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        fleets.append(self)

    monkeypatch.setattr(SimulatedFleet, "__init__", watched)
    yield
    found = [v for fleet in fleets for v in fleet.violations()]
    marker = request.node.get_closest_marker("expect_violations")
    expected = set(marker.args) if marker else set()
    if unknown := expected - set(RULES):
        pytest.fail(f"expect_violations names unknown rules: {sorted(unknown)}")
    unexpected = [v for v in found if v.rule not in expected]
    missing = expected - {v.rule for v in found}
    if unexpected or missing:
        pytest.fail(_referee_message(unexpected, missing), pytrace=False)


def _referee_message(unexpected: list[Violation], missing: set[str]) -> str:
    lines = [f"the simulator recorded {len(unexpected)} protocol violation(s):"]
    lines += [f"  {v}" for v in unexpected[:50]]
    if len(unexpected) > 50:
        lines.append(f"  ... and {len(unexpected) - 50} more")
    if missing:
        lines.append(f"expected but not recorded: {', '.join(sorted(missing))}")
    return "\n".join(lines)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[Http]:
    """The run's one HTTP session, for client tests (aioresponses or the simulator behind it)."""
    async with Http(request_timeout=5) as h:
        yield h


@pytest.fixture
def simulate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Sim]]:
    """Start a simulated fleet in a background thread and write an inventory for it."""
    threads: list[SimulatorThread] = []

    def start(
        spec: FleetSpec,
        *,
        auth: str = "whm",
        tls: bool = False,
        settings: dict[str, Any] | None = None,
        server_keys: dict[str, Any] | None = None,
    ) -> Sim:
        thread = SimulatorThread(spec, tls=tls)
        fleet = thread.__enter__()
        threads.append(thread)
        inventory = tmp_path / f"inventory-{len(threads)}.yaml"
        env = fleet.write_inventory(
            inventory,
            auth=auth,
            settings={**FAST_SETTINGS, **(settings or {})},
            extra_server_keys={**FAST_SERVER, **(server_keys or {})},
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return Sim(fleet, inventory, dict(env))

    yield start
    for thread in reversed(threads):
        thread.__exit__(None, None, None)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Run `clamfleet ARGS` in this process (signals aside, exactly what the command does)."""
    counter = iter(range(1000))

    def run(*args: str | Path, out: Path | None = None) -> Outcome:
        argv = [str(a) for a in args]
        if out is None and argv and argv[0] in ("run", "merge", "demo"):
            out = tmp_path / f"out-{next(counter)}"
            argv += ["--out", str(out)]
        if argv and argv[0] == "run" and "--no-progress" not in argv:
            argv.append("--no-progress")
        code = main(argv)
        captured = capsys.readouterr()
        return Outcome(code, out or tmp_path, captured.out, captured.err)

    return run
