"""The `when` block of policy rules and accepted findings: YAML -> a `When` (one parser).

`virus`, `path`, `account` and `server` are globs; `scan_type` is one of the scan types. Every
error names the file, the line and the field.
"""

from __future__ import annotations

from orchestrator.config.types import When
from orchestrator.config.yamlsrc import Value
from orchestrator.model import ScanType

WHEN_GLOBS = ("virus", "path", "account", "server")
WHEN_KEYS = (*WHEN_GLOBS, "scan_type")


def read_when(value: Value | None) -> tuple[When, dict[str, Value]]:
    """The matcher, and its entries by key (for checks that point at one of them).

    A missing or null `when` matches every file."""
    entries = {} if value is None else value.mapping(WHEN_KEYS, null_ok=True)
    globs = {key: entries[key].text() for key in WHEN_GLOBS if key in entries}
    scan_type = entries["scan_type"].choice(ScanType) if "scan_type" in entries else None
    return When(scan_type=scan_type, **globs), entries
