"""`validate --check-api --record DIR`: one JSON transcript per server, to attach to a bug report.

Each file holds the probe's findings and every request and answer of that server, with every
secret, cookie and session id removed (client/transcript.py says how), and with
`--redact-hosts` the host names, the domains listaccts reported and the server names replaced
by stand-ins. Written atomically (a temporary file, then a rename), like the reports.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from orchestrator import __version__
from orchestrator.client.assumptions import ASSUMPTIONS, Finding
from orchestrator.client.transcript import Credential, Exchange, Redactor
from orchestrator.config import Inventory, Server
from orchestrator.model import ErrorInfo

SCHEMA = "clamfleet.api-transcript/1"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
ORDER = [a.key for a in ASSUMPTIONS]


class ServerProbe(Protocol):
    """What the probe (probe.py) found on one server, as a transcript needs it."""

    @property
    def server(self) -> Server: ...
    @property
    def findings(self) -> dict[str, Finding]: ...
    @property
    def error(self) -> ErrorInfo | None: ...
    @property
    def exchanges(self) -> list[Exchange]: ...


def redactor_for(inventory: Inventory, redact_hosts: bool) -> Redactor:
    """Every secret of the inventory, and (asked) its hosts and server names."""
    servers = inventory.servers
    return Redactor(
        (Credential(s.auth.user, s.auth.secret.reveal()) for s in servers),
        hosts=[urlsplit(s.base_url).hostname or "" for s in servers],
        server_names=[s.name for s in servers],
        redact_hosts=redact_hosts,
    )


def transcript(probe: ServerProbe, redactor: Redactor) -> dict[str, Any]:
    """One server's findings and exchanges, redacted (`redactor.learn` done before)."""
    server = probe.server
    error = None
    if probe.error is not None:
        error = {"kind": str(probe.error.kind), "message": redactor.text(probe.error.message)}
    return {
        "schema": SCHEMA,
        "tool_version": __version__,
        "server": redactor.server_name(server.name),
        "auth_method": str(server.auth.method),
        "error": error,
        "findings": [
            {"assumption": f.key, "verdict": str(f.verdict), "detail": redactor.text(f.detail)}
            for f in sorted(probe.findings.values(), key=lambda f: ORDER.index(f.key))
        ],
        "exchanges": [redactor.exchange(e) for e in probe.exchanges],
    }


def write(
    folder: Path, probes: Sequence[ServerProbe], inventory: Inventory, redact_hosts: bool
) -> list[Path]:
    """`DIR/<server>.json` per server (created if missing); the paths written."""
    redactor = redactor_for(inventory, redact_hosts)
    for probe in probes:
        redactor.learn(probe.exchanges)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for probe in probes:
        name = _UNSAFE.sub("_", redactor.server_name(probe.server.name)) or "server"
        path = folder / f"{name}.json"
        _write_atomically(path, json.dumps(transcript(probe, redactor), indent=2) + "\n")
        paths.append(path)
    return paths


def _write_atomically(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
