"""One error tree for clamfleet.

    ClamfleetError
    ├── ConfigError            bad invocation, inventory or policy (exit 3, nothing scanned)
    └── TargetError            ends one target (or a whole server's targets); carries an ErrorKind
        ├── AuthError          credentials refused, login page, cPHulk lockout      kind=auth
        ├── TransportError     connection refused/reset, 5xx, request timed out     kind=unreachable
        │   ├── TlsError       certificate or handshake failure                    kind=tls
        │   └── RequestTimeout one request exceeded timeouts.request              kind=unreachable
        ├── ApiError           the call ran and answered status 0                  kind=api
        └── ProtocolError      a body that is not the envelope cPanel sends         kind=protocol

aiohttp exceptions are translated into these at exactly one boundary (client.py); nothing else
sees them. Messages never contain credentials: they are built from the server name, the function
and the server's own error text, never from request headers.
"""

from __future__ import annotations

from orchestrator.model import ErrorKind


class ClamfleetError(Exception):
    """Base of every error clamfleet raises on purpose."""


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
        self, message: str, *, server: str | None = None, function: str | None = None
    ) -> None:
        self.message = message
        self.server = server
        self.function = function
        super().__init__(message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, server={self.server!r})"


class AuthError(TargetError):
    """Raised when the server refuses the credentials (403, login page, lockout). Never retried."""

    kind = ErrorKind.AUTH


class TransportError(TargetError):
    """Raised when the server cannot be reached or answers 5xx/429; retried for idempotent calls."""

    kind = ErrorKind.UNREACHABLE
    transient = True

    def __init__(
        self,
        message: str,
        *,
        server: str | None = None,
        function: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, server=server, function=function)
        self.retry_after = retry_after


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
