"""The runner's edge of pacing: a load reading fed to the controller, a deferred target."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from orchestrator.client import Http, ServerClient
from orchestrator.engine.pacer import deferred_result, load_message, take_reading
from orchestrator.model import ErrorKind, LoadReading, ScanType, Status, Target
from orchestrator.simulator import Faults, LoadSpec
from orchestrator.workflow.pacing import LoadController, Window
from tests.simulator.raw import running
from tests.simulator.test_load import NoLimit, fleet, whm_server


@pytest.mark.asyncio
async def test_a_reading_feeds_the_controller_and_a_failed_one_keeps_the_limit_and_warns_once() -> (
    None
):
    spec = fleet(LoadSpec(cores=8, background=2.0))
    async with running(spec) as api, Http(request_timeout=5) as http:
        client = ServerClient(http, whm_server(api.url, api.spec.whm_token), NoLimit())
        ctl = LoadController(6.4, cap=8, check_interval=30)
        reading = await take_reading(client, ctl, 0.0, running=0)
        assert reading is not None and reading.one == 2.0
        assert ctl.limit() == 4  # 2 + 4 = 6 < 6.4
        api.fleet.set_faults("sim01", Faults(loadavg_unavailable=True))
        with capture_logs() as logs:
            assert await take_reading(client, ctl, 30.0, running=4) is None
            assert await take_reading(client, ctl, 60.0, running=4) is None
        assert ctl.limit() == 4  # the last good reading's, never the cap of 8
    assert [e["event"] for e in logs] == ["load.unreadable"]
    assert "systemloadavg" in logs[0]["error"]


@pytest.mark.asyncio
async def test_a_reading_that_fails_transiently_is_not_retried_within_the_check() -> None:
    spec = fleet(LoadSpec(cores=8, background=2.0))
    async with running(spec) as api, Http(request_timeout=5) as http:
        client = ServerClient(http, whm_server(api.url, api.spec.whm_token), NoLimit())
        api.fleet.set_faults("sim01", Faults(fail_next=2, functions=frozenset({"systemloadavg"})))
        ctl = LoadController(6.4, cap=8, check_interval=30)
        assert await take_reading(client, ctl, 0.0, running=0) is None  # a 503: one request
        assert api.fleet.calls("sim01", function="systemloadavg") == 1
        assert ctl.limit() == 1 and ctl.may_start(0) and not ctl.may_start(1)
        assert await take_reading(client, ctl, 30.0, running=1) is None  # the next check's
        assert await take_reading(client, ctl, 60.0, running=1) is not None
        assert api.fleet.calls("sim01", function="systemloadavg") == 3


def test_a_target_the_load_deferred_is_named_by_the_load_not_the_window() -> None:
    ctl = LoadController(3.0, cap=4, check_interval=30, patience=3600)
    ctl.observe(LoadReading(3.62, 3.5, 3.4), 0.0, running=0)
    message = load_message(ctl, datetime(2026, 12, 5, 2, 10, tzinfo=UTC))
    assert message.startswith("load 3.6 over max 3 since 02:10")
    assert "window" not in message
    result = deferred_result(Target("web01", "alice", ScanType.HOME), message)
    assert result.status is Status.SKIPPED
    assert result.error is not None and result.error.kind is ErrorKind.DEFERRED


def test_a_deferred_target_is_skipped_with_the_windows_message() -> None:
    window = Window(datetime(2026, 12, 5, 6, 0, tzinfo=UTC))
    result = deferred_result(Target("web01", "alice", ScanType.HOME), window)
    assert result.status is Status.SKIPPED
    assert result.error is not None and result.error.kind is ErrorKind.DEFERRED
    assert result.error.message == "window closed at 06:00"
