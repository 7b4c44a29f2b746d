"""Warnings that carry the night: at the default log level, the log says which request was given
up on after how many attempts and why (a host that went away and came back, or was given up, is
logged by its breaker: tests/client/test_breaker.py); never with a secret in it."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest
import pytest_asyncio
from aioresponses import aioresponses
from structlog.testing import capture_logs

from orchestrator.client import Http, ServerClient
from orchestrator.errors import AuthError, TransportError
from tests.client.test_client import CANARY, NoLimit, server, uapi_url, whm


@pytest_asyncio.fixture
async def http() -> AsyncIterator[Http]:
    async with Http(request_timeout=5) as h:
        yield h


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


def assert_no_secret(logs: list[MutableMapping[str, Any]]) -> None:
    for entry in logs:
        assert all(CANARY not in str(value) for value in entry.values()), entry


@pytest.mark.asyncio
async def test_a_poll_given_up_after_its_retries_is_one_warning_naming_call_attempts_and_cause(
    http: Http,
) -> None:
    with aioresponses() as mocked, capture_logs() as logs:
        mocked.get(uapi_url("get_scan_status"), status=500, body="busy", repeat=True)
        client = ServerClient(http, server(), NoLimit())
        with pytest.raises(TransportError):
            await client.get_scan_status("alice")
    (gave_up,) = events(logs, "request.gave_up")
    assert gave_up["log_level"] == "warning"
    assert gave_up["server"] == "web01"
    assert gave_up["function"] == "get_scan_status"
    assert gave_up["attempts"] == 3  # stamina's test mode (conftest)
    assert gave_up["error_kind"] == "unreachable"
    assert gave_up["error"] == "get_scan_status: HTTP 500 Internal Server Error"
    assert gave_up["http_status"] == 500
    assert_no_secret(logs)


@pytest.mark.asyncio
async def test_a_poll_that_succeeds_on_a_retry_and_a_refusal_never_retried_are_not_given_up(
    http: Http,
) -> None:
    with aioresponses() as mocked, capture_logs() as logs:
        mocked.get(uapi_url("get_scan_status"), status=502, body="")
        mocked.get(uapi_url("get_scan_status"), payload=whm(None))
        mocked.get(uapi_url("list_infected_files"), status=403, body="Access denied")
        client = ServerClient(http, server(), NoLimit())
        assert await client.get_scan_status("alice") is None
        with pytest.raises(AuthError):  # one attempt, final: a refusal, not a give-up
            await client.list_infected("alice")
    assert events(logs, "request.gave_up") == []
