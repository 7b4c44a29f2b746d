"""Runtime side of the fault knobs: counters, and what a hit request gets instead."""

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


@dataclass(frozen=True, slots=True)
class Decision:
    hit: Hit = Hit.NONE
    status: int = 200
    truncate: bool = False


NO_FAULT = Decision()


class FaultState:
    """The knobs of one server plus their counters. Replaced whole by `set_faults`."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._matched = 0
        self._fail_left = faults.fail_next
        self._hits_5xx = 0

    def matches(self, function: str | None) -> bool:
        only = self.faults.functions
        return only is None or (function is not None and function in only)

    def _every(self, n: int) -> bool:
        return n > 0 and self._matched % n == 0

    def decide(self, function: str | None) -> Decision:
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
            return Decision(Hit.RETRY_AFTER, 429)
        if f.html_login:
            return Decision(Hit.HTML_LOGIN, 200)
        return Decision(truncate=self._every(f.truncated_json_every))


def error_page(status: int) -> str:
    titles = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
    title = f"{status} {titles.get(status, 'Service Unavailable')}"
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>\n"
