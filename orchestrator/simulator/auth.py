"""Credentials, cPHulk (failed logins per client IP) and create_user_session sessions."""

from __future__ import annotations

import base64
import binascii
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

from orchestrator.simulator.spec import Faults

PREAUTH_SECONDS = 300.0
IDLE_SECONDS = 900.0
COOKIE = "cpsession"


@dataclass(frozen=True, slots=True)
class Credentials:
    scheme: str  # "cpanel" | "whm" | "basic"
    user: str
    secret: str


def parse_authorization(header: str | None) -> Credentials | None:
    """`cpanel USER:TOKEN`, `whm USER:TOKEN` or `Basic base64(USER:PASSWORD)`; else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        try:
            value = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    if scheme not in ("cpanel", "whm", "basic") or ":" not in value:
        return None
    user, _, secret = value.strip().partition(":")
    return Credentials(scheme, user, secret)


class Hulk:
    """cPHulk by IP: `lockout_failures` failures within the window lock the IP for a while;
    while locked, every request is refused, good credentials included."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def locked(self, ip: str, now: float) -> bool:
        return now < self._locked_until.get(ip, float("-inf"))

    def fail(self, ip: str, now: float, faults: Faults) -> None:
        window = self._failures.setdefault(ip, deque())
        window.append(now)
        while window and window[0] <= now - faults.lockout_window:
            window.popleft()
        if faults.lockout_failures > 0 and len(window) >= faults.lockout_failures:
            self._locked_until[ip] = now + faults.lockout_seconds
            window.clear()


@dataclass(slots=True)
class Session:
    user: str
    token: str  # "/cpsess1234567890"
    name: str  # "user:hex"
    expires: float  # the login URL's deadline
    last_used: float | None = None  # set by the login; then the idle rule applies


class Sessions:
    def __init__(self, seed: str) -> None:
        self._rng = random.Random(seed)  # noqa: S311 (simulated session ids)
        self._by_name: dict[str, Session] = {}

    def create(self, user: str, now: float, base_url: str) -> dict[str, Any]:
        token = f"/cpsess{self._rng.randrange(10**9, 10**10)}"
        name = f"{user}:{self._rng.getrandbits(128):032x}"
        self._by_name[name] = Session(user, token, name, now + PREAUTH_SECONDS)
        return {
            "cp_security_token": token,
            "expires": int(now + PREAUTH_SECONDS),
            "service": "cpaneld",
            "session": name,
            "url": f"{base_url}{token}/login/?session={name}",
        }

    def login(self, token: str, name: str, now: float) -> Session | None:
        session = self._by_name.get(name)
        if session is None or session.token != token or session.last_used is not None:
            return None
        if now > session.expires:
            return None
        session.last_used = now
        return session

    def logout(self, token: str, name: str | None) -> bool:
        """The session ends (its cookie and token stop working); False: no such session."""
        session = self._by_name.get(name or "")
        if session is None or session.token != token:
            return False
        del self._by_name[session.name]
        return True

    @property
    def open_sessions(self) -> int:
        """Sessions created and not ended (a test's view; expiry is not counted here)."""
        return len(self._by_name)

    def lookup(self, token: str, name: str | None, now: float) -> Session | None:
        session = self._by_name.get(name or "")
        if session is None or session.token != token or session.last_used is None:
            return None
        if now - session.last_used > IDLE_SECONDS:
            del self._by_name[session.name]
            return None
        session.last_used = now
        return session
