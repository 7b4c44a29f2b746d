"""The runner's edge of pacing: a load reading fed to the controller, a deferred target."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from orchestrator.client import Http, ServerClient
from orchestrator.engine.pacer import deferred_result, take_reading
from orchestrator.model import ErrorKind, ScanType, Status, Target
from orchestrator.simulator import Faults, LoadSpec
from orchestrator.workflow.pacing import LoadController, Window
from tests.simulator.raw import running
from tests.simulator.test_load import NoLimit, fleet, whm_server


@pytest.mark.asyncio
async def test_a_reading_feeds_the_controller_and_a_failed_one_falls_back_and_warns_once() -> None:
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
        assert ctl.limit() == 8  # the fixed cap
    assert [e["event"] for e in logs] == ["load.unreadable"]
    assert "systemloadavg" in logs[0]["error"]


def test_a_deferred_target_is_skipped_with_the_windows_message() -> None:
    window = Window(datetime(2026, 12, 5, 6, 0, tzinfo=UTC))
    result = deferred_result(Target("web01", "alice", ScanType.HOME), window)
    assert result.status is Status.SKIPPED
    assert result.error is not None and result.error.kind is ErrorKind.DEFERRED
    assert result.error.message == "window closed at 06:00"
