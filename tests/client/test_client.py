"""The client's routes, retries and error mapping, against aioresponses (no sockets); the
retries' total time cap against one real always-busy server on 127.0.0.1."""

from __future__ import annotations

import re
import urllib.parse

import aiohttp
import pytest
import stamina
from aiohttp import web
from aioresponses import aioresponses
from aioresponses.core import RequestCall
from yarl import URL

from orchestrator.client import Http, RetryPolicy, ServerClient
from orchestrator.config import AuthMethod, Credentials, Server
from orchestrator.errors import ApiError, AuthError, RequestTimeout, TargetError, TransportError
from orchestrator.model import Action, ScanType, Secret

CANARY = "CANARY-TOKEN-5f1e9a"
BASE = "https://web01.test:2087"
UAPI_OK: dict[str, object] = {
    "data": None,
    "errors": None,
    "messages": None,
    "metadata": {},
    "status": 1,
    "warnings": None,
}


class NoLimit:
    async def acquire(self) -> None:
        return None


def whm(data: object, status: int = 1) -> dict[str, object]:
    return {
        "data": {
            "uapi": {
                **UAPI_OK,
                "data": data,
                "status": status,
                "errors": None if status else ["bad"],
            }
        },
        "metadata": {"command": "uapi_cpanel", "reason": "OK", "result": 1, "version": 1},
    }


def server(method: AuthMethod = AuthMethod.WHM_TOKEN, base: str = BASE) -> Server:
    return Server(name="web01", base_url=base, auth=Credentials(method, "root", Secret(CANARY)))


def uapi_url(function: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(BASE)}/json-api/uapi_cpanel\?.*cpanel\.function={function}.*$")


def recorded(mocked: aioresponses) -> dict[tuple[str, URL], list[RequestCall]]:
    """The requests `mocked` saw, keyed by (method, URL); set once the context is entered."""
    assert mocked.requests is not None
    return mocked.requests


def assert_no_secret(exc: BaseException) -> None:
    for text in (
        str(exc),
        repr(exc),
        str(exc.__cause__),
        str(exc.__context__ if exc.__suppress_context__ is False else ""),
    ):
        assert CANARY not in text


@pytest.mark.asyncio
async def test_whm_route_sends_whm_header_and_reads_data_uapi(http: Http) -> None:
    with aioresponses() as mocked:
        mocked.get(
            uapi_url("get_scan_status"), payload=whm({"scan_complete": 1, "time_started": 5})
        )
        client = ServerClient(http, server(), NoLimit())
        status = await client.get_scan_status("alice")
        assert status is not None and status.scan_complete
        ((key, calls),) = recorded(mocked).items()
        assert calls[0].kwargs["headers"]["Authorization"] == f"whm root:{CANARY}"
        assert "cpanel.user=alice" in str(key[1])


@pytest.mark.asyncio
async def test_cpanel_token_route_uses_execute(http: Http) -> None:
    base = "https://web01.test:2083"
    with aioresponses() as mocked:
        mocked.get(
            f"{base}/execute/ClamScanner/list_infected_files",
            payload={**UAPI_OK, "data": [{"file": "/home/a/x&amp;y", "virus_type": "V"}]},
        )
        client = ServerClient(http, server(AuthMethod.CPANEL_TOKEN, base), NoLimit())
        assert await client.list_infected("alice") == (("/home/a/x&amp;y", "V"),)
        ((_, calls),) = recorded(mocked).items()
        assert calls[0].kwargs["headers"]["Authorization"] == f"cpanel root:{CANARY}"


@pytest.mark.asyncio
async def test_idempotent_polls_are_retried_on_5xx(http: Http) -> None:
    with aioresponses() as mocked:
        mocked.get(uapi_url("get_scan_status"), status=503, body="busy")
        mocked.get(uapi_url("get_scan_status"), payload=whm(None))
        client = ServerClient(http, server(), NoLimit())
        assert await client.get_scan_status("alice") is None
        assert sum(len(v) for v in recorded(mocked).values()) == 2


START_URL = f"{BASE}/json-api/uapi_cpanel"


@pytest.mark.asyncio
async def test_a_persistent_5xx_gets_exactly_the_configured_attempts(http: Http) -> None:
    """The first attempt is made outside stamina; the count must not change for that. (A 500
    is cPanel's own answer; a gateway's 502/503/504 again and again is an outage, which the
    host's breaker waits through: tests/client/test_breaker.py.)"""
    with aioresponses() as mocked:
        mocked.get(uapi_url("get_scan_status"), status=500, body="busy", repeat=True)
        client = ServerClient(http, server(), NoLimit())
        with pytest.raises(TransportError):
            await client.get_scan_status("alice")
        assert sum(len(v) for v in recorded(mocked).values()) == 3  # stamina test mode: 3


@pytest.mark.asyncio
async def test_start_scan_is_one_form_post(http: Http) -> None:
    """POST, never GET: aiohttp silently re-sends a GET whose kept-alive connection dropped."""
    with aioresponses() as mocked:
        mocked.post(START_URL, payload=whm(None))
        client = ServerClient(http, server(), NoLimit())
        await client.start_scan("alice", ScanType.MAIL)
        ((key, calls),) = recorded(mocked).items()
        assert key[0] == "POST"
        form = dict(urllib.parse.parse_qsl(calls[0].kwargs["data"].decode()))
        assert form["cpanel.user"] == "alice"
        assert form["cpanel.function"] == "start_scan"
        assert form["scan_type"] == "mail"
        headers = calls[0].kwargs["headers"]
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert headers["Authorization"] == f"whm root:{CANARY}"


@pytest.mark.asyncio
async def test_start_scan_is_never_retried(http: Http) -> None:
    with aioresponses() as mocked:
        mocked.post(START_URL, status=503, body="busy")
        mocked.post(START_URL, payload=whm(None))
        client = ServerClient(http, server(), NoLimit())
        with pytest.raises(TransportError) as err:
            await client.start_scan("alice", ScanType.HOME)
        assert "503" in str(err.value)
        assert sum(len(v) for v in recorded(mocked).values()) == 1


@pytest.mark.asyncio
async def test_auth_failure_is_not_retried_and_carries_no_token(http: Http) -> None:
    with aioresponses() as mocked:
        mocked.get(
            uapi_url("get_scan_status"),
            status=403,
            body='{"cpanelresult":{"error":"Access denied"}}',
            repeat=True,
        )
        client = ServerClient(http, server(), NoLimit())
        with pytest.raises(AuthError) as err:
            await client.get_scan_status("alice")
        assert sum(len(v) for v in recorded(mocked).values()) == 1
        assert_no_secret(err.value)


@pytest.mark.asyncio
async def test_inner_uapi_failure_is_an_api_error(http: Http) -> None:
    with aioresponses() as mocked:
        mocked.post(START_URL, payload=whm(None, status=0))
        client = ServerClient(http, server(), NoLimit())
        with pytest.raises(ApiError):
            await client.start_scan("alice", ScanType.HOME)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (aiohttp.ServerDisconnectedError(), TransportError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), TransportError),
        (TimeoutError(), RequestTimeout),
    ],
)
async def test_aiohttp_errors_are_translated_without_chaining(
    http: Http, exception: Exception, expected: type[TargetError]
) -> None:
    with aioresponses() as mocked:
        mocked.get(uapi_url("get_scan_status"), exception=exception, repeat=True)
        client = ServerClient(http, server(), NoLimit())
        with pytest.raises(expected) as err:
            await client.get_scan_status("alice")
        assert err.value.__cause__ is None and err.value.__suppress_context__
        assert not isinstance(err.value, aiohttp.ClientError)
        assert_no_secret(err.value)


@pytest.mark.asyncio
async def test_retry_after_is_honoured_as_the_backoff(http: Http) -> None:
    stamina.set_testing(False)
    with aioresponses() as mocked:
        mocked.get(
            uapi_url("get_scan_status"), status=429, body="", headers={"Retry-After": "0.01"}
        )
        mocked.get(uapi_url("get_scan_status"), payload=whm(None))
        client = ServerClient(
            http, server(), NoLimit(), RetryPolicy(attempts=2, total=5, initial=30, max=30)
        )
        assert await client.get_scan_status("alice") is None  # 30 s backoff would not finish here


@pytest.mark.asyncio
async def test_disinfect_posts_exact_json_through_execute(http: Http) -> None:
    base = "https://web01.test:2083"
    with aioresponses() as mocked:
        mocked.post(
            f"{base}/execute/ClamScanner/disinfect_files",
            payload={**UAPI_OK, "data": {"task_id": "0/ab", "log": "/x"}},
        )
        client = ServerClient(http, server(AuthMethod.CPANEL_TOKEN, base), NoLimit())
        task = await client.disinfect("alice", {"/home/alice/public_html/x.php": Action.QUARANTINE})
        assert task == "0/ab"
        ((_, calls),) = recorded(mocked).items()
        assert calls[0].kwargs["headers"]["Content-Type"] == "application/json"
        assert (
            calls[0].kwargs["data"]
            == b'{"actions": {"/home/alice/public_html/x.php": "quarantine"}}'
        )


# ---------------------------------------------------------------------------------------------
# Retries: the total time cap, against a real always-busy server on 127.0.0.1


@pytest.mark.asyncio
async def test_retries_stop_at_the_total_time_cap_before_the_attempt_cap() -> None:
    stamina.set_testing(False)
    hits = 0

    async def busy(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(status=500, text="busy")  # cPanel's own error: not an outage

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", busy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server = Server(
        name="busy",
        base_url=f"http://127.0.0.1:{port}",
        auth=Credentials(AuthMethod.CPANEL_TOKEN, "alice", Secret("t" * 32)),
    )

    policy = RetryPolicy(attempts=1000, total=0.4, initial=0.05, max=0.05, jitter=0.0)
    try:
        async with Http(request_timeout=5) as http:
            client = ServerClient(http, server, NoLimit(), policy)
            with pytest.raises(TransportError):
                await client.get_scan_status("alice")
    finally:
        await runner.cleanup()
    assert 2 <= hits < 100, hits
