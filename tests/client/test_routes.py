"""The route a server's credentials allow is chosen once, and the WHM route's cPanel session
(for disinfection) never sends credentials anywhere but the inventory's host; a failure before
`disinfect_files` is sent says so (it certainly did not run)."""

from __future__ import annotations

import pytest
from aioresponses import aioresponses

from orchestrator.client import Http, ServerClient
from orchestrator.client.channel import Channel
from orchestrator.client.retry import RetryPolicy
from orchestrator.client.route import ExecuteRoute, WhmRoute, route_for, session_origin
from orchestrator.config import AuthMethod, Credentials, Server
from orchestrator.errors import RequestTimeout, TransportError
from orchestrator.model import Action, Secret
from tests.client.test_client import NoLimit

BASE = "https://web01.test:2087"


def server(method: AuthMethod, base: str = BASE) -> Server:
    return Server(name="web01", base_url=base, auth=Credentials(method, "root", Secret("t0ken")))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "route"),
    [
        (AuthMethod.WHM_TOKEN, WhmRoute),
        (AuthMethod.CPANEL_TOKEN, ExecuteRoute),
        (AuthMethod.CPANEL_PASSWORD, ExecuteRoute),
    ],
)
async def test_the_route_follows_the_servers_credentials(
    http: Http, method: AuthMethod, route: type
) -> None:
    channel = Channel(http, server(method), NoLimit())
    assert type(route_for(channel, RetryPolicy())) is route


@pytest.mark.parametrize(
    ("base", "login", "origin"),
    [
        pytest.param(
            "https://web01.test:2087",
            "https://203.0.113.7:2083/cpsess1/login/?session=x",
            "https://web01.test:2083",
            id="their-ip-our-host",
        ),
        pytest.param(
            "https://[2001:db8::1]:2087",
            "https://[2001:db8::9]:2083/cpsess1/login/",
            "https://[2001:db8::1]:2083",
            id="ipv6-bracketed",
        ),
        pytest.param(
            "http://127.0.0.1:8080", "/cpsess1/login/", "http://127.0.0.1:8080", id="relative"
        ),
    ],
)
def test_the_session_login_goes_to_the_inventorys_host_only(
    base: str, login: str, origin: str
) -> None:
    assert session_origin(base, login) == origin


@pytest.mark.asyncio
async def test_a_session_that_cannot_be_opened_reports_disinfection_as_never_sent(
    http: Http,
) -> None:
    with aioresponses() as mocked:
        mocked.get(
            f"{BASE}/json-api/create_user_session?api.version=1&service=cpaneld&user=alice",
            exception=TimeoutError(),
            repeat=True,
        )
        client = ServerClient(http, server(AuthMethod.WHM_TOKEN), NoLimit())
        with pytest.raises(TransportError) as err:
            await client.disinfect("alice", {"/home/alice/x.php": Action.QUARANTINE})
    assert type(err.value) is RequestTimeout, "the error's class survives"
    assert err.value.maybe_sent is False, "disinfect_files itself was never sent"
    assert err.value.function == "create_user_session" and err.value.server == "web01"


def test_a_never_sent_copy_is_a_new_complete_error() -> None:
    original = TransportError(
        "HTTP 504", server="web01", function="create_user_session", http_status=504
    )
    copy = original.never_sent()
    assert original.maybe_sent is True, "the original is left as it was"
    assert type(copy) is TransportError and copy is not original
    assert (copy.message, copy.server, copy.function, copy.http_status) == (
        "HTTP 504",
        "web01",
        "create_user_session",
        504,
    )
    assert copy.maybe_sent is False


SESSION = {
    "data": {
        "cp_security_token": "/cpsess1234567890",
        "url": "https://web01.test:2083/cpsess1234567890/login/?session=alice:abc",
        "expires": 1,
        "service": "cpaneld",
        "session": "alice:abc",
    },
    "metadata": {"result": 1, "reason": "Created session", "command": "create_user_session"},
}
CREATE = f"{BASE}/json-api/create_user_session?api.version=1&service=cpaneld&user=alice"
LOGIN = "https://web01.test:2083/cpsess1234567890/login/?session=alice:abc"
SESSION_BASE = "https://web01.test:2083/cpsess1234567890"


@pytest.mark.asyncio
async def test_disinfect_says_sending_once_right_before_the_post_and_never_when_it_never_left(
    http: Http,
) -> None:
    calls: list[str] = []
    with aioresponses() as mocked:
        mocked.get(CREATE, exception=TimeoutError(), repeat=True)
        client = ServerClient(http, server(AuthMethod.WHM_TOKEN), NoLimit())
        with pytest.raises(TransportError):
            await client.disinfect(
                "alice", {"/home/alice/x.php": Action.QUARANTINE}, sending=lambda: calls.append("x")
            )
    assert calls == [], "create_user_session failed: the POST never left"
    # a new run's session: the host that never answered above is given up in that one
    async with Http(request_timeout=5) as fresh, aioresponses() as mocked:
        mocked.get(CREATE, payload=SESSION)
        mocked.get(LOGIN, status=302, headers={"Set-Cookie": "cpsession=alice:abc; path=/"})
        mocked.post(
            f"{SESSION_BASE}/execute/ClamScanner/disinfect_files",
            payload={"status": 1, "data": {"task_id": "t1"}, "errors": None},
        )
        client = ServerClient(fresh, server(AuthMethod.WHM_TOKEN), NoLimit())
        task = await client.disinfect(
            "alice", {"/home/alice/x.php": Action.QUARANTINE}, sending=lambda: calls.append("x")
        )
    assert task == "t1" and calls == ["x"]


@pytest.mark.asyncio
async def test_a_logout_answered_with_the_login_page_is_no_refused_login(http: Http) -> None:
    with aioresponses() as mocked:
        mocked.get(CREATE, payload=SESSION)
        mocked.get(LOGIN, status=302, headers={"Set-Cookie": "cpsession=alice:abc; path=/"})
        mocked.get(
            f"{SESSION_BASE}/logout/?locale=en",
            body="<html><form id='login_form' action='/login/?login_only=1'></form></html>",
            content_type="text/html",
        )
        client = ServerClient(http, server(AuthMethod.WHM_TOKEN), NoLimit())
        assert await client.try_session("alice") is True
    assert http.hosts.logins(BASE).refused_by is None, "a logout says nothing of the token"
