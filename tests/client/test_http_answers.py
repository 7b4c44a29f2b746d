"""Errors built from an HTTP answer: named by their status, carrying it (and Retry-After), and
not ambiguous, since a status line means the server answered and the call did not run. Only a
lost answer may belong to a call that ran (a start_scan that must be checked, not resent)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
import stamina
from aioresponses import aioresponses

from orchestrator.client import Http, RetryPolicy, ServerClient
from orchestrator.errors import AuthError, ProtocolError, TargetError, TransportError
from orchestrator.model import ScanType
from tests.client.test_client import CANARY, START_URL, NoLimit, recorded, server, uapi_url, whm


@pytest_asyncio.fixture
async def http() -> AsyncIterator[Http]:
    async with Http(request_timeout=5) as h:
        yield h


async def start_scan_answered(http: Http, **answer: object) -> TargetError:
    with aioresponses() as mocked:
        mocked.post(START_URL, **answer)
        client = ServerClient(http, server(), NoLimit())
        with pytest.raises(TargetError) as err:
            await client.start_scan("alice", ScanType.HOME)
        assert sum(len(v) for v in recorded(mocked).values()) == 1, "start_scan is sent once"
    return err.value


@pytest.mark.asyncio
async def test_a_5xx_on_start_scan_is_a_named_answer_not_an_ambiguous_send(http: Http) -> None:
    err = await start_scan_answered(http, status=503, body="<html>busy</html>")
    assert isinstance(err, TransportError)
    assert str(err) == "start_scan: HTTP 503 Service Unavailable"
    assert err.http_status == 503 and err.retry_after is None
    assert err.maybe_sent is False, "the server answered: the call did not run"


@pytest.mark.asyncio
async def test_a_429_on_start_scan_carries_its_retry_after(http: Http) -> None:
    err = await start_scan_answered(http, status=429, body="", headers={"Retry-After": "7"})
    assert isinstance(err, TransportError)
    assert err.http_status == 429 and err.retry_after == 7.0
    assert err.maybe_sent is False
    assert str(err) == "start_scan: HTTP 429 Too Many Requests (Retry-After 7 s)"


@pytest.mark.asyncio
async def test_a_gateway_timeout_may_have_run_the_call_behind_it(http: Http) -> None:
    err = await start_scan_answered(http, status=504, body="")
    assert err.http_status == 504 and "HTTP 504 Gateway Timeout" in str(err)
    assert err.maybe_sent is True


@pytest.mark.asyncio
async def test_a_lost_answer_to_start_scan_stays_ambiguous(http: Http) -> None:
    err = await start_scan_answered(http, exception=aiohttp.ServerDisconnectedError())
    assert isinstance(err, TransportError)
    assert err.maybe_sent is True and err.http_status is None


@pytest.mark.asyncio
async def test_a_truncated_body_stays_ambiguous_though_its_status_was_200(http: Http) -> None:
    err = await start_scan_answered(
        http, status=200, body='{"data": {"uapi": {"stat', content_type="application/json"
    )
    assert isinstance(err, ProtocolError)
    assert err.maybe_sent is True and err.http_status == 200


@pytest.mark.asyncio
async def test_a_refusal_names_its_status_and_carries_no_token(http: Http) -> None:
    err = await start_scan_answered(http, status=403, body="Access denied")
    assert isinstance(err, AuthError)
    assert str(err).startswith("start_scan: HTTP 403 Forbidden: credentials refused")
    assert err.http_status == 403 and err.maybe_sent is False
    assert CANARY not in str(err) and CANARY not in repr(err)


@pytest.mark.asyncio
async def test_retry_after_on_a_poll_is_waited_but_never_beyond_the_policys_longest_backoff(
    http: Http,
) -> None:
    stamina.set_testing(False)
    waits: list[float] = []
    hooks = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([lambda details: waits.append(details.wait_for)])
    try:
        with aioresponses() as mocked:
            mocked.get(
                uapi_url("get_scan_status"), status=429, body="", headers={"Retry-After": "3600"}
            )
            mocked.get(uapi_url("get_scan_status"), payload=whm(None))
            policy = RetryPolicy(attempts=2, total=5, initial=0.001, max=0.02, jitter=0.0)
            client = ServerClient(http, server(), NoLimit(), policy)
            assert await client.get_scan_status("alice") is None
    finally:
        stamina.instrumentation.set_on_retry_hooks(hooks)
    assert waits == [pytest.approx(0.02)]
