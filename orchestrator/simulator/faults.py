"""Runtime side of the fault knobs: counters, and what a hit request gets instead.

A hit request is answered by the fault (a proxy in front, a dropped connection...) instead of
the server: the call does not run, and the request log says so (`RequestRecord.faulted`). Only
`truncated_json_every` runs the call (its answer is cut on the way back).

The throttling proxy (`throttle_*`) counts start_scan requests per account (the account named by
the request: the `/execute` login or `uapi_cpanel`'s `cpanel.user`), so every target meets it
once whatever the order, and answers the first `throttle_start` of each itself. It comes first:
a proxy sees a request before anything behind it does. systemloadavg readings (`loadavg_fail_*`)
are counted when the call runs; a failed one is WHM's `result: 0` with a reason, as a reading
of the load that went wrong answers (an HTTP-level failure is `status_5xx_every` with
`functions=systemloadavg`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from orchestrator.simulator.spec import Faults

STATUS_5XX = (500, 502, 503)
LOGIN_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>cPanel Login</title></head><body>"
    '<div id="login-wrapper"><form id="login_form" action="/login/?login_only=1" method="post">'
    '<input name="user" id="user"><input name="pass" id="pass" type="password">'
    '<button id="login_submit">Log in</button></form></div></body></html>\n'
)


class Hit(Enum):
    NONE = "none"
    FAIL = "fail"  # fail_next: 503
    RESET = "reset"
    STATUS_5XX = "5xx"
    RETRY_AFTER = "429"
    HTML_LOGIN = "html"
    THROTTLE = "throttle"  # the throttling proxy on start_scan: 429 or 503


@dataclass(frozen=True, slots=True)
class Decision:
    hit: Hit = Hit.NONE
    status: int = 200
    truncate: bool = False
    retry_after: int = 0  # seconds for a Retry-After header (0: none)


NO_FAULT = Decision()


class FaultState:
    """The knobs of one server plus their counters. Replaced whole by `set_faults`."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._matched = 0
        self._fail_left = faults.fail_next
        self._hits_5xx = 0
        self._throttled: dict[str, int] = {}  # account -> start_scan answered by the proxy
        self._readings = 0  # systemloadavg calls that ran

    def matches(self, function: str | None) -> bool:
        only = self.faults.functions
        return only is None or (function is not None and function in only)

    def _every(self, n: int) -> bool:
        return n > 0 and self._matched % n == 0

    def decide(self, function: str | None, account: str | None = None) -> Decision:
        throttled = self._throttle(function, account)
        if throttled is not None:
            return throttled
        if not self.matches(function):
            return NO_FAULT
        self._matched += 1
        f = self.faults
        if self._fail_left > 0:
            self._fail_left -= 1
            return Decision(Hit.FAIL, 503)
        if self._every(f.reset_every):
            return Decision(Hit.RESET, 0)
        if self._every(f.status_5xx_every):
            self._hits_5xx += 1
            return Decision(Hit.STATUS_5XX, STATUS_5XX[(self._hits_5xx - 1) % len(STATUS_5XX)])
        if self._every(f.retry_after_every):
            return Decision(Hit.RETRY_AFTER, 429, retry_after=1)
        if f.html_login:
            return Decision(Hit.HTML_LOGIN, 200)
        return Decision(truncate=self._every(f.truncated_json_every))

    def _throttle(self, function: str | None, account: str | None) -> Decision | None:
        f = self.faults
        if function != "start_scan" or f.throttle_start <= 0:
            return None
        key = account or ""
        if self._throttled.get(key, 0) >= f.throttle_start:
            return None
        self._throttled[key] = self._throttled.get(key, 0) + 1
        return Decision(Hit.THROTTLE, int(f.throttle_mode), retry_after=f.throttle_retry_after)

    def loadavg_fails(self) -> bool:
        """One systemloadavg reading: whether it fails (`loadavg_fail_first`, `_every`)."""
        f = self.faults
        self._readings += 1
        n = self._readings
        return n <= f.loadavg_fail_first or (
            f.loadavg_fail_every > 0 and n % f.loadavg_fail_every == 0
        )


def error_page(status: int) -> str:
    titles = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
    title = f"{status} {titles.get(status, 'Service Unavailable')}"
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
