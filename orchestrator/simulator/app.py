"""The HTTP face of one simulated server: routing, auth, envelopes, fault injection.

What a request meets, in order: the referee's rates (at arrival), then its login and account
rules (once parsed), then an outage (a 503 proxy answers, or a refused outage drops it and
takes the port away), then the throttling proxy and the other fault knobs, and only then the
server. Whatever answered instead of the server is in `RequestRecord.faulted`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from orchestrator.simulator import uapi, whm
from orchestrator.simulator.auth import COOKIE, parse_authorization
from orchestrator.simulator.faults import LOGIN_PAGE, NO_FAULT, Decision, Hit, error_page
from orchestrator.simulator.outage import REFUSED
from orchestrator.simulator.referee import Request, client_of, redact, run_of
from orchestrator.simulator.runtime import RequestRecord, ServerRuntime

RUNTIME = web.AppKey("runtime", ServerRuntime)
ACCESS_DENIED = (
    '{"cpanelresult":{"apiversion":"2","error":"Access denied",'
    '"data":{"reason":"Access denied","result":"0"},"type":"text"}}'
)
EXPIRED_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Invalid security token</title></head><body>"
    "<h1>Invalid security token</h1><p>The security token in your request is invalid or has "
    "expired. Log in again.</p></body></html>\n"
)
SESSION_PATH = re.compile(r"^(/cpsess\d{10})(/.*)$")
WHM_FUNCTIONS = ("listaccts", "uapi_cpanel", "create_user_session", "systemloadavg")


@dataclass(frozen=True, slots=True)
class Parsed:
    route: str
    function: str | None
    account: str | None
    args: dict[str, Any]
    token: str | None = None  # the /cpsessNNN prefix
    module: str | None = None


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(obj: Any) -> web.Response:
    return web.Response(body=dumps(obj), content_type="application/json")


def access_denied() -> web.Response:
    return web.Response(status=403, body=ACCESS_DENIED.encode(), content_type="text/plain")


def invalid_token() -> web.Response:
    return web.Response(status=401, text=EXPIRED_PAGE, content_type="text/html")


async def read_args(request: web.Request) -> dict[str, Any]:
    """Query plus body: a JSON object only for exactly `application/json`, else a form."""
    args: dict[str, Any] = dict(request.query)
    if request.method != "POST":
        return args
    body = await request.read()
    if request.headers.get("Content-Type") == "application/json":
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            parsed = None
        args.update(parsed if isinstance(parsed, dict) else {"__invalid_json__": True})
    else:
        args.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return args


def classify(
    path: str, args: Mapping[str, Any], auth_user: str | None, cookie: str | None
) -> Parsed:
    token = None
    if m := SESSION_PATH.match(path):
        token, path = m.group(1), m.group(2)
    parts = path.strip("/").split("/")
    if parts[0] == "execute" and len(parts) == 3:
        user = (cookie or "").partition(":")[0] if token else auth_user
        route = "cpsess_execute" if token else "execute"
        return Parsed(route, parts[2], user or None, dict(args), token, parts[1])
    if token and parts[0] == "login":
        user = str(args.get("session", "")).partition(":")[0]
        return Parsed("session_login", "login", user or None, dict(args), token)
    if token and parts[0] == "logout":
        user = (cookie or "").partition(":")[0]
        return Parsed("session_logout", "logout", user or None, dict(args), token)
    if parts[0] == "json-api" and len(parts) == 2 and not token:
        name = parts[1]
        if name == "uapi_cpanel":
            return Parsed(
                name, _opt(args, "cpanel.function"), _opt(args, "cpanel.user"), dict(args)
            )
        route = name if name in WHM_FUNCTIONS else "json_api"
        return Parsed(route, name, _opt(args, "user"), dict(args))
    return Parsed("unknown", None, None, dict(args), token)


def _opt(args: Mapping[str, Any], key: str) -> str | None:
    value = args.get(key)
    return str(value) if value else None


def _parse(request: web.Request, args: Mapping[str, Any]) -> Parsed:
    creds = parse_authorization(request.headers.get("Authorization"))
    return classify(request.path, args, creds.user if creds else None, request.cookies.get(COOKIE))


def _judged(request: web.Request, parsed: Parsed, now: float) -> Request:
    agent = request.headers.get("User-Agent")
    return Request(
        request.method, redact(request.path), parsed.route, parsed.function, parsed.account,
        run_of(agent), now, client_of(agent),
    )  # fmt: skip


async def handle(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    arrived = time.monotonic()
    status, content_type, faulted = 0, "", ""
    parsed = _parse(request, request.query)  # the body is not read yet: counted at arrival
    with rt.lock:
        rt.referee.arrival(_judged(request, parsed, rt.clock.time()), arrived)
    try:
        args = await read_args(request)
        parsed = _parse(request, args)
        with rt.lock:
            judged = _judged(request, parsed, rt.clock.time())
            rt.referee.request(judged)
            outage = rt.outage.check(judged.t, parsed.function) if rt.faults.outages else None
            if outage is not None and outage.mode != REFUSED:
                rt.referee.outage(judged, outage)
            decision = (
                NO_FAULT if outage else rt.fault_state.decide(parsed.function, parsed.account)
            )
            slow = rt.faults.slow_seconds
            retry_after = rt.faults.outage_retry_after
        if outage is not None:
            faulted = "outage"
            if outage.mode == REFUSED:  # in flight when cpsrvd stopped: dropped, port closed
                if rt.refuse_now is not None:
                    await rt.refuse_now()
                _drop(request)
                return web.Response()  # never sent
            response = _page(503, retry_after)
            status, content_type = response.status, response.content_type
            return response
        if decision.hit is not Hit.NONE:
            faulted = decision.hit.value
        if slow > 0:
            await asyncio.sleep(slow)
        if decision.hit is Hit.RESET:
            _drop(request)
            return web.Response()  # never sent: aiohttp sees the closed transport and gives up
        response = _faulted(decision) or _dispatch(rt, request, parsed, judged)
        if decision.truncate and isinstance(response, web.Response) and response.body:
            body = bytes(response.body)  # type: ignore[arg-type]
            response.body = body[: len(body) // 2]
        status, content_type = response.status, response.content_type
        return response
    finally:
        rt.record(
            RequestRecord(
                arrived,
                request.method,
                request.path,
                parsed.route,
                parsed.function,
                parsed.account,
                status,
                content_type,
                run_of(request.headers.get("User-Agent")),
                faulted,
            )
        )


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _faulted(decision: Decision) -> web.Response | None:
    match decision.hit:
        case Hit.NONE:
            return None
        case Hit.HTML_LOGIN:
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        case _:
            return _page(decision.status, decision.retry_after)


def _page(status: int, retry_after: int = 0) -> web.Response:
    """An HTTP error page (a proxy's or cpsrvd's), with `Retry-After` when it is > 0."""
    headers = {"Retry-After": str(retry_after)} if retry_after > 0 else None
    return web.Response(
        status=status, text=error_page(status), content_type="text/html", headers=headers
    )


def _dispatch(
    rt: ServerRuntime, request: web.Request, parsed: Parsed, req: Request
) -> web.Response:
    ip = request.remote or "?"
    with rt.lock:
        now = rt.now()
        if rt.hulk.locked(ip, now):
            rt.referee.refused_login(req)
            return access_denied()
        match parsed.route:
            case "execute":
                return _execute(rt, request, parsed, ip, now, req)
            case "cpsess_execute":
                return _session_execute(rt, request, parsed, now, req)
            case "session_login":
                return _session_login(rt, parsed, now)
            case "session_logout":
                return _session_logout(rt, request, parsed)
            case "unknown":
                raise web.HTTPNotFound
            case _:
                return _json_api(rt, request, parsed, ip, now, req)


def _uapi(rt: ServerRuntime, parsed: Parsed, user: str, now: float, req: Request) -> web.Response:
    if parsed.module != uapi.MODULE:
        module = parsed.module
        return json_response(
            uapi.failure(f"Failed to load module “{module}”: Can't locate Cpanel/API/{module}.pm")
        )
    if parsed.args.pop("__invalid_json__", False):
        return json_response(uapi.failure("The system could not parse the JSON request body."))
    answer = rt.call_uapi(user, parsed.function or "", parsed.args, now, req)
    if rt.faults.uapi_envelope_legacy:
        return json_response({"cpanelresult": answer})
    return json_response(answer)


def _execute(
    rt: ServerRuntime, request: web.Request, parsed: Parsed, ip: str, now: float, req: Request
) -> web.Response:
    creds = parse_authorization(request.headers.get("Authorization"))
    account = rt.accounts.get(creds.user) if creds else None
    if creds is None or account is None or creds.scheme == "whm":
        return _refuse(rt, ip, now, req)
    expected = account.spec.cpanel_token if creds.scheme == "cpanel" else account.spec.password
    if creds.secret != expected:
        return _refuse(rt, ip, now, req)
    if account.spec.suspended:
        rt.referee.denied_suspended(req)
        return access_denied()  # a suspended account cannot log in (right secret: no cPHulk count)
    return _uapi(rt, parsed, creds.user, now, req)


def _refuse(rt: ServerRuntime, ip: str, now: float, req: Request) -> web.Response:
    rt.hulk.fail(ip, now, rt.faults)
    rt.referee.refused_login(req)
    return access_denied()


def _session_execute(
    rt: ServerRuntime, request: web.Request, parsed: Parsed, now: float, req: Request
) -> web.Response:
    session = rt.sessions.lookup(parsed.token or "", request.cookies.get(COOKIE), now)
    if session is None:
        return invalid_token()
    return _uapi(rt, parsed, session.user, now, req)


def _session_login(rt: ServerRuntime, parsed: Parsed, now: float) -> web.Response:
    session = rt.sessions.login(parsed.token or "", str(parsed.args.get("session", "")), now)
    if session is None:
        return invalid_token()
    response = web.Response(status=302, headers={"Location": f"{session.token}/"})
    if not rt.faults.session_login_no_cookie:
        response.set_cookie(COOKIE, session.name, path="/", httponly=True)
    return response


def _session_logout(rt: ServerRuntime, request: web.Request, parsed: Parsed) -> web.Response:
    """cpsrvd destroys the session and sends the browser to the login page."""
    rt.sessions.logout(parsed.token or "", request.cookies.get(COOKIE))
    response = web.Response(status=302, headers={"Location": "/"})
    response.del_cookie(COOKIE, path="/")
    return response


def _json_api(
    rt: ServerRuntime, request: web.Request, parsed: Parsed, ip: str, now: float, req: Request
) -> web.Response:
    creds = parse_authorization(request.headers.get("Authorization"))
    spec = rt.spec
    if (
        creds is None
        or creds.scheme != "whm"
        or (creds.user, creds.secret) != (spec.whm_user, spec.whm_token)
    ):
        return _refuse(rt, ip, now, req)
    name, args = parsed.function or "", parsed.args
    if str(args.get("api.version", "")) != "1":
        return json_response(
            whm.fail(name, "This simulator speaks WHM API 1 only: send “api.version=1”.")
        )
    match parsed.route:
        case "listaccts":
            return json_response(whm.listaccts(rt, args))
        case "uapi_cpanel":
            return json_response(whm.uapi_cpanel(rt, args, now, req))
        case "create_user_session":
            return json_response(whm.create_user_session(rt, args, now))
        case "systemloadavg":
            return json_response(whm.systemloadavg(rt, now))
    return json_response(
        whm.fail(name, f'Unknown app ("{name}") requested for this version (1) of the API.')
    )


def make_app(rt: ServerRuntime) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[RUNTIME] = rt
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
