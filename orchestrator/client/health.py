"""Verdicts that stop requests before they are sent: per host (cPHulk) and per server (breaker).

cPHulk counts failed logins per source IP per host (README "Troubleshooting": auth). With
`cpanel_password` or `cpanel_token` every account is its own inventory entry, so one host
often carries many entries: they share one refusal budget here, or seven stale passwords
would send seven refused logins and lock the orchestrator's IP out (good passwords included).

    Hosts                  one per run (on the client's `Http`)
      └── HostLogins       per scheme+host+port: the first refusal, which entries' credentials
                           proved good, and a turn that sends unproven logins one at a time
    ServerHealth           per inventory entry: its own final verdict (auth, TLS), its breaker
                           (consecutive failed requests) and its host's refusal

Only the client sends, so it takes the turns and reports every answer (`check`, `answered` in
client/channel.py `Channel.send`); the runner asks `ServerHealth.blocked()` before each request
and reports each outcome with `record()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio
import structlog

from orchestrator.config import Server
from orchestrator.errors import (
    AuthError,
    HostRefused,
    HostSilent,
    TargetError,
    TransportError,
    http_status_text,
)
from orchestrator.model import ErrorInfo, ErrorKind

log = structlog.get_logger("clamfleet")

#: Consecutive failed requests (retries spent) after which a server is given up on.
BREAKER_THRESHOLD = 3

#: Requests in a row with no answer at all (timeout, reset, refused connection) after which a
#: host's not-yet-accepted credentials are not tried any more: they take turns (one at a time),
#: and a silent host would otherwise cost every entry its full timeouts, one after another.
HOST_SILENCE_LIMIT = 5

#: (scheme, host, port): one host, as cPHulk's budget is counted here.
HostKey = tuple[str, str, int]


def host_key(base_url: str) -> HostKey:
    """`https://Web01.example.com:2083` -> ("https", "web01.example.com", 2083)."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


class HostLogins:
    """One host's refusal budget: a single refused login, shared by every entry on the host.

    Until an entry's credentials have been accepted once, its requests take `turn` (one at a
    time per host), so that however many entries start at once, a second unproven login is only
    sent after the first was answered, and never after a refusal.
    """

    def __init__(self, key: HostKey) -> None:
        self.key = key
        #: The entry whose login was refused first; None while none was.
        self.refused_by: str | None = None
        self.turn = anyio.Lock()
        self._proven: set[str] = set()
        self._unanswered = 0  # consecutive requests of unproven credentials without an answer

    def notice(self) -> str:
        """Why a request of another entry on this host was not sent."""
        return (
            f"not attempted: an earlier login on this host was refused ({self.refused_by}); "
            "another refusal risks a cPHulk lockout of this IP"
        )

    def check(self, server: str, function: str) -> None:
        """Before sending: nothing after a refusal on this host, and no credentials that were
        never accepted to a host that stopped answering."""
        if self.refused_by is not None:
            raise HostRefused(self.notice(), server=server, function=function)
        if self._unanswered >= HOST_SILENCE_LIMIT and server not in self._proven:
            raise HostSilent(
                f"not attempted: the last {self._unanswered} requests to this host got no answer",
                server=server,
                function=function,
            )

    def unanswered(self) -> None:
        """A request of unproven credentials got no answer (no status line) at all."""
        self._unanswered += 1

    def answered(self, server: str, function: str, status: int, login_page: bool) -> None:
        """After an answer, before the next login is let through: refused or proven.

        The status-line errors themselves are raised by parse.py; only the refusal of
        credentials accepted earlier is raised here, as that is what a cPHulk lockout of this
        IP looks like (the same 403 as a wrong password, cpanel-api.md 6.2).
        """
        self._unanswered = 0
        if status in (401, 403) or login_page:
            proven = self.proven(server)
            self.refuse(server)
            if proven:
                raise AuthError(
                    f"{function}: {http_status_text(status)}: credentials accepted earlier in "
                    "this run were refused: likely a cPHulk lockout of this IP (or the "
                    "credentials were revoked mid-run)",
                    server=server,
                    function=function,
                    http_status=status,
                )
        elif 200 <= status < 300:
            self._proven.add(server)

    def refuse(self, server: str) -> None:
        if self.refused_by is None:
            self.refused_by = server
            log.warning(
                "host.login_refused",
                server=server,
                host=f"{self.key[1]}:{self.key[2]}",
                hint="no further requests to this host in this run (cPHulk)",
            )

    def proven(self, server: str) -> bool:
        return server in self._proven


class Hosts:
    """The run's registry: one `HostLogins` per host key, handed to every entry on that host."""

    def __init__(self) -> None:
        self._logins: dict[HostKey, HostLogins] = {}

    def logins(self, base_url: str) -> HostLogins:
        key = host_key(base_url)
        found = self._logins.get(key)
        if found is None:
            found = self._logins[key] = HostLogins(key)
        return found

    def for_server(self, server: Server) -> ServerHealth:
        return ServerHealth(server.name, self.logins(server.base_url))


@dataclass(slots=True)
class ServerHealth:
    """One entry's verdicts that stop further requests: a refusal (its own or its host's), a
    TLS failure, or a tripped breaker."""

    server: str = ""
    host: HostLogins = field(default_factory=lambda: HostLogins(("", "", 0)))
    fatal: ErrorInfo | None = None
    consecutive_failures: int = 0

    def blocked(self) -> ErrorInfo | None:
        if self.fatal is not None:
            return self.fatal
        if self.host.refused_by is not None:
            return ErrorInfo(ErrorKind.AUTH, self.host.notice())
        if self.consecutive_failures >= BREAKER_THRESHOLD:
            message = f"given up after {self.consecutive_failures} consecutive failed requests"
            return ErrorInfo(ErrorKind.UNREACHABLE, message)
        return None

    def record(self, error: TargetError | None) -> None:
        if error is None:
            self.consecutive_failures = 0
        elif error.kind in (ErrorKind.AUTH, ErrorKind.TLS):
            # One refusal is final: retrying gets the orchestrator's IP blocked by cPHulk.
            self.fatal = self.fatal or ErrorInfo(error.kind, str(error))
            if error.kind is ErrorKind.AUTH and not isinstance(error, HostRefused):
                self.host.refuse(self.server)
        elif isinstance(error, TransportError):
            self.consecutive_failures += 1
            if self.consecutive_failures == BREAKER_THRESHOLD:
                log.warning(
                    "server.breaker_open",
                    server=self.server,
                    consecutive_failures=self.consecutive_failures,
                    error_kind=str(error.kind),
                    error=str(error),
                    hint="no further requests to this server in this run",
                )
