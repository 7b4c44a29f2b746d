"""One error tree for clamfleet.

    ClamfleetError             base: never raised itself
    ├── ConfigError            bad invocation, inventory, policy, --out/--journal   exit 3
    ├── JournalError           the journal cannot be written mid-run (disk full)   exit 70
    └── TargetError            ends a request, target or server; carries a kind    kind=internal
        ├── AuthError          credentials refused, login page, cPHulk lockout      kind=auth
        │   └── HostRefused    not sent: another login on the host was refused     kind=auth
        ├── TransportError     connection refused/reset, 5xx, 429                   kind=unreachable
        │   ├── ServerDown     not sent: the host was given up (down, or silent)   kind=unreachable
        │   ├── TlsError       certificate or handshake failure                    kind=tls
        │   └── RequestTimeout one request exceeded timeouts.request               kind=unreachable
        ├── ApiError           the call ran and answered status 0                  kind=api
        │   └── FeatureMissing the account lacks the scanner feature or scan type  kind=api
        └── ProtocolError      a body that is not the envelope cPanel sends        kind=protocol

Outside the tree: `cli.UsageError` (argparse refused the command line: usage line, one-line
error, exit 3, like a ConfigError), and any other exception, which is a bug: one line, exit 70.

Not every error kind of the report comes from an exception. These are verdicts, returned as
values by the pure code that decides them, never raised:

    timeout        workflow: the scan or the disinfection ran past its timeout
    stalled        workflow: the scan's counters stopped moving for timeouts.stall
    policy_limit   workflow (from policy.py's plan): a destructive cap left the actions unsent
    interrupted    runner: the run was stopped (SIGINT/SIGTERM, max_duration, or clamfleet
                   failed) first
    skipped        targets.py: a suspended account, or one matching exclude_accounts
    deferred       pacer.py: the finish-by window closed before the target could start (or
                   it would not finish before it), or the load stayed over load.max for
                   load.patience
    internal       workflow: a reply its transition table does not allow (also TargetError's
                   own kind, for a TargetError raised without a subclass)

`api` is both: raised as ApiError, and a workflow verdict too (start_scan refused three times by
someone else's scan, a disinfection task that never started).

aiohttp exceptions are translated into these at exactly one boundary (client/transport.py);
nothing else sees them. Messages never contain credentials: they are built from the server
name, the function and the server's own error text, never from request headers.

An error built from an HTTP answer carries its `http_status` (and `Retry-After`, when sent) and
names the status in its message. A non-2xx status line means the server answered and the call
did not run, so such an error is not an ambiguous send (`maybe_sent` False); only a lost answer
(reset, timeout after sending, truncated body) or a 2xx body that is not what cPanel sends is.
Every error is complete when it is raised: `maybe_sent` and the rest are constructor arguments,
never patched onto an exception after it was caught.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Self

from orchestrator.model import ErrorKind

#: 504: a gateway in front of cPanel stopped waiting for it; cPanel may still have run the call.
_MAYBE_RAN = frozenset({HTTPStatus.GATEWAY_TIMEOUT})


def http_status_text(status: int) -> str:
    """`HTTP 503 Service Unavailable`; just `HTTP 599` for a status without a standard name."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def answered_without_running(status: int | None) -> bool:
    """True for a status line that says the call did not run: any non-2xx but a gateway timeout."""
    return status is not None and not 200 <= status < 300 and status not in _MAYBE_RAN


class ClamfleetError(Exception):
    """Base of every error clamfleet raises on purpose; never raised itself."""


class ConfigError(ClamfleetError):
    """Raised when an inventory, policy or invocation is invalid; rendered as one line, exit 3."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.render())

    def render(self) -> str:
        """`file:line: field: message`, leaving out the parts that are unknown."""
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class JournalError(ClamfleetError):
    """Raised when the --journal file cannot be written (disk full, read-only, I/O error)."""

    # Before the first request it becomes a ConfigError (exit 3: nothing was scanned); mid-run
    # it stops the run like a crash (partial report, exit 70: no verdict), in words a user
    # understands ("cannot write the journal: No space left on device"), not as a bug.


class TargetError(ClamfleetError):
    """Raised when one request or target cannot go on; `kind` goes into the report."""

    kind: ErrorKind = ErrorKind.INTERNAL
    #: Whether a retry of an idempotent request may help.
    transient: bool = False
    #: False only when the call certainly never reached the server (connection refused, or it
    #: failed in a step before the request itself): then even a non-idempotent call did not
    #: happen. A lost or garbled answer may belong to a call that ran.
    maybe_sent: bool = True

    def __init__(
        self,
        message: str,
        *,
        server: str | None = None,
        function: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        maybe_sent: bool | None = None,
    ) -> None:
        self.message = message
        self.server = server
        self.function = function
        #: The status line's code when the error was built from an HTTP answer, else None.
        self.http_status = http_status
        #: The answer's Retry-After in seconds (429/503), else None.
        self.retry_after = retry_after
        if maybe_sent is not None:
            self.maybe_sent = maybe_sent
        elif answered_without_running(http_status):
            self.maybe_sent = False
        super().__init__(message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, server={self.server!r})"

    def never_sent(self) -> Self:
        """A new, complete error like this one, for a call an earlier step's failure kept from
        being sent (so `maybe_sent` is False): errors are built whole, never patched."""
        return type(self)(
            self.message,
            server=self.server,
            function=self.function,
            http_status=self.http_status,
            retry_after=self.retry_after,
            maybe_sent=False,
        )


class AuthError(TargetError):
    """Raised when the server refuses the credentials (403, login page, lockout). Never retried."""

    kind = ErrorKind.AUTH


class HostRefused(AuthError):
    """Raised instead of sending: an earlier login on the same host was refused this run."""

    # cPHulk counts failed logins per source IP per host; a second refusal brings the lockout of
    # the orchestrator's IP (which then refuses good credentials too) one step closer.

    maybe_sent = False


class TransportError(TargetError):
    """Raised when the server cannot be reached or answers 5xx/429; retried for idempotent calls."""

    kind = ErrorKind.UNREACHABLE
    transient = True


class ServerDown(TransportError):
    """Raised instead of sending: the host was down past `timeouts.server_down`, or silent."""

    # Final for the run: the breaker (client/breaker.py) gave the host up; waiting cannot help.

    transient = False
    maybe_sent = False


class TlsError(TransportError):
    """Raised when certificate verification or the TLS handshake fails. Never retried."""

    kind = ErrorKind.TLS
    transient = False


class RequestTimeout(TransportError):
    """Raised when one request takes longer than `timeouts.request`."""


class ApiError(TargetError):
    """Raised when the call ran and reported failure (`status: 0` or `metadata.result: 0`)."""

    kind = ErrorKind.API


class ProtocolError(TargetError):
    """Raised when a body is not the JSON envelope cPanel sends (HTML, truncated, wrong shape)."""

    kind = ErrorKind.PROTOCOL
    transient = True


class FeatureMissing(ApiError):
    """Raised when the account lacks the `clamavconnector_scan` feature or the scan type."""
