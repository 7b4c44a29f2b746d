"""Warnings that carry the night: at the default log level, the log says which request was given
up on after how many attempts and why, and when a server's breaker stopped all its requests;
never with a secret in it."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest
import pytest_asyncio
from aioresponses import aioresponses
from structlog.testing import capture_logs

from orchestrator.client import Http, ServerClient
from orchestrator.client.health import BREAKER_THRESHOLD, Hosts
from orchestrator.errors import AuthError, RequestTimeout, TransportError
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
        mocked.get(uapi_url("get_scan_status"), status=503, body="busy", repeat=True)
        client = ServerClient(http, server(), NoLimit())
        with pytest.raises(TransportError):
            await client.get_scan_status("alice")
    (gave_up,) = events(logs, "request.gave_up")
    assert gave_up["log_level"] == "warning"
    assert gave_up["server"] == "web01"
    assert gave_up["function"] == "get_scan_status"
    assert gave_up["attempts"] == 3  # stamina's test mode (conftest)
    assert gave_up["error_kind"] == "unreachable"
    assert gave_up["error"] == "get_scan_status: HTTP 503 Service Unavailable"
    assert gave_up["http_status"] == 503
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


def test_a_tripped_breaker_is_one_warning_with_its_count_and_last_error() -> None:
    health = Hosts().for_server(server())
    with capture_logs() as logs:
        for n in range(BREAKER_THRESHOLD + 2):
            health.record(RequestTimeout(f"request timed out ({n})", server="web01"))
    (tripped,) = events(logs, "server.breaker_open")
    assert tripped["log_level"] == "warning"
    assert tripped["server"] == "web01"
    assert tripped["consecutive_failures"] == BREAKER_THRESHOLD
    assert tripped["error_kind"] == "unreachable"
    assert tripped["error"] == f"request timed out ({BREAKER_THRESHOLD - 1})"
    blocked = health.blocked()
    assert blocked is not None and "consecutive failed requests" in blocked.message


def test_a_success_resets_the_breaker_so_scattered_failures_never_trip_it() -> None:
    health = Hosts().for_server(server())
    with capture_logs() as logs:
        for _ in range(3 * BREAKER_THRESHOLD):
            for _ in range(BREAKER_THRESHOLD - 1):
                health.record(TransportError("reset", server="web01"))
            health.record(None)
    assert events(logs, "server.breaker_open") == []
    assert health.blocked() is None
