"""Verdicts that stop requests before they are sent: per host (cPHulk, and the breaker).

cPHulk counts failed logins per source IP per host (README "Troubleshooting": auth). With
`cpanel_password` or `cpanel_token` every account is its own inventory entry, so one host
often carries many entries: they share one refusal budget here, or seven stale passwords
would send seven refused logins and lock the orchestrator's IP out (good passwords included).

    Hosts                  one per run (on the client's `Http`)
      ├── HostLogins       per scheme+host+port: the first refusal, which entries' credentials
      │                    proved good, and a turn that sends unproven logins one at a time
      └── Breaker          per scheme+host+port: a host that went away is waited for
                           (client/breaker.py), given up only after `timeouts.server_down`
    ServerHealth           per inventory entry: its own final verdict (auth, TLS), its host's
                           refusal and its host's breaker's give-up

Only the client sends, so it takes the turns and reports every answer (`check`, `answered` in
client/channel.py `Channel.send`, and the breaker's outcomes); the runner asks
`ServerHealth.blocked()` before each request and reports each outcome with `record()`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import structlog

from orchestrator.client.breaker import Breaker, BreakerTimings
from orchestrator.config import Server
from orchestrator.config.hosts import HostKey, host_key
from orchestrator.errors import (
    AuthError,
    HostRefused,
    TargetError,
    http_status_text,
)
from orchestrator.model import ErrorInfo, ErrorKind

log = structlog.get_logger("clamfleet")


class HostLogins:
    """One host's refusal budget: a single refused login, shared by every entry on the host.

    Until an entry's credentials have been accepted once, its requests take `turn` (one at a
    time per host), so that however many entries start at once, a second unproven login is only
    sent after the first was answered, and never after a refusal. (A host that answers nothing
    at all is the breaker's: it gives the host up after a few silent requests, for every entry
    at once, so they do not each wait out their timeouts in turn.)
    """

    def __init__(self, key: HostKey) -> None:
        self.key = key
        #: The entry whose login was refused first; None while none was.
        self.refused_by: str | None = None
        self.turn = anyio.Lock()
        self._proven: set[str] = set()

    def notice(self) -> str:
        """Why a request of another entry on this host was not sent."""
        return (
            f"not attempted: an earlier login on this host was refused ({self.refused_by}); "
            "another refusal risks a cPHulk lockout of this IP"
        )

    def check(self, server: str, function: str) -> None:
        """Before sending: nothing after a refusal on this host."""
        if self.refused_by is not None:
            raise HostRefused(self.notice(), server=server, function=function)

    async def take_turn(self, server: str, function: str) -> bool:
        """Right before sending: True when this request took the turn (unproven credentials:
        give it back with `give_turn` once answered). Proven credentials only wait until a
        login in flight was answered. Either way nothing is sent after a refusal."""
        if self.proven(server):
            # Another entry's first login may be on its way to this host: wait for its answer,
            # and send nothing if it was refused meanwhile. Without this, a request of accepted
            # credentials could follow a refusal there within the run.
            if self.turn.locked():
                async with self.turn:
                    pass
            self.check(server, function)
            return False
        await self.turn.acquire()
        try:
            self.check(server, function)  # refused while this request waited its turn?
        except BaseException:
            self.turn.release()
            raise
        return True

    def give_turn(self) -> None:
        self.turn.release()

    def answered(self, server: str, function: str, status: int, login_page: bool) -> None:
        """After an answer, before the next login is let through: refused or proven.

        The status-line errors themselves are raised by parse.py; only the refusal of
        credentials accepted earlier is raised here, as that is what a cPHulk lockout of this
        IP looks like (the same 403 as a wrong password, cpanel-api.md 6.2).
        """
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


#: How long validate's checks wait for a host that went away (`Hosts.for_checks`).
CHECK_SERVER_DOWN = 10.0


class Hosts:
    """The run's registry: one `HostLogins` and one `Breaker` per host key, handed to every
    entry on that host. `timings`: the breakers' (`timeouts.server_down` among them)."""

    @classmethod
    def for_checks(cls) -> Hosts:
        """For validate's checks, which judge the servers as they are now: a host that stays
        away CHECK_SERVER_DOWN seconds (a restart, a 503 proxy) is reported down, not waited
        for `timeouts.server_down` as a night's run does."""
        return cls(BreakerTimings(server_down=CHECK_SERVER_DOWN))

    def __init__(
        self,
        timings: BreakerTimings | None = None,
        reached: Callable[[str], None] | None = None,
    ) -> None:
        """`reached(label)`: called at a host's first answer in the run (Breaker.on_reached)."""
        self._logins: dict[HostKey, HostLogins] = {}
        self._breakers: dict[HostKey, Breaker] = {}
        self.timings = timings or BreakerTimings()
        self._reached = reached

    def logins(self, base_url: str) -> HostLogins:
        key = host_key(base_url)
        found = self._logins.get(key)
        if found is None:
            found = self._logins[key] = HostLogins(key)
        return found

    def breaker(self, base_url: str) -> Breaker:
        key = host_key(base_url)
        found = self._breakers.get(key)
        if found is None:
            label = f"{key[1]}:{key[2]}"
            found = self._breakers[key] = Breaker(label, self.timings)
            if self._reached is not None:
                found.on_reached = functools.partial(self._reached, label)
        return found

    def for_server(self, server: Server) -> ServerHealth:
        base = server.base_url
        return ServerHealth(server.name, self.logins(base), self.breaker(base))


@dataclass(slots=True)
class ServerHealth:
    """One entry's verdicts that stop further requests: a refusal (its own or its host's), a
    TLS failure, or its host given up by the breaker (down past `timeouts.server_down`, or
    never answered). A breaker that is merely open stops nothing here: the client's gate
    holds the requests until the host is back."""

    server: str = ""
    host: HostLogins = field(default_factory=lambda: HostLogins(("", "", 0)))
    breaker: Breaker = field(default_factory=lambda: Breaker(""))
    fatal: ErrorInfo | None = None

    def blocked(self) -> ErrorInfo | None:
        if self.fatal is not None:
            return self.fatal
        if self.host.refused_by is not None:
            return ErrorInfo(ErrorKind.AUTH, self.host.notice())
        return self.breaker.verdict

    def record(self, error: TargetError | None) -> None:
        if error is not None and error.kind in (ErrorKind.AUTH, ErrorKind.TLS):
            # One refusal is final: retrying gets the orchestrator's IP blocked by cPHulk.
            self.fatal = self.fatal or ErrorInfo(error.kind, str(error))
            if error.kind is ErrorKind.AUTH and not isinstance(error, HostRefused):
                self.host.refuse(self.server)
