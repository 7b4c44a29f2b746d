"""The accepted-findings file (README "Accepted findings"): YAML -> a validated `Accepted`.

    accepted:
      - when: {server: web01, path: "/home/alice/public_html/vendor/*/tests/*"}
        reason: "PHPMailer test fixture, not reachable from the web (OPS-123)"
        expires: 2027-03-01

`when` is the policy's matcher (when.py); `reason` and `expires` are required: an acceptance
always says why, and until when (a far date is the user's explicit choice). An empty `when`
is refused: it would accept every infected file of the fleet. Pure apart from reading the
file; every error names the file, the line and the field.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import yaml

from orchestrator.config.types import Accepted, AcceptedEntry
from orchestrator.config.when import WHEN_KEYS, read_when
from orchestrator.config.yamlsrc import Value, read_document
from orchestrator.errors import ConfigError

TOP_KEYS = ("accepted",)
ENTRY_KEYS = ("when", "reason", "expires")
#: `validate` lists entries that expire within this many days.
EXPIRING_DAYS = 14
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TAGS = ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:str")


def load_accepted(path: str | Path) -> Accepted:
    """Read and validate an accepted-findings file; raises ConfigError naming file and line."""
    root = read_document(path, "accepted-findings file")
    if root is None:
        return Accepted(source=str(path))
    top = root.mapping(TOP_KEYS)
    if "accepted" not in top or top["accepted"].is_null:
        return Accepted(source=str(path))
    entries = tuple(_entry(item) for item in top["accepted"].items())
    return Accepted(source=str(path), entries=entries)


def _entry(item: Value) -> AcceptedEntry:
    entries = item.mapping(ENTRY_KEYS)
    for key in ENTRY_KEYS:
        if key not in entries:
            raise _missing(item, key)
    when, written = read_when(entries["when"])
    if not written:
        raise entries["when"].error(
            f"names nothing: give at least one of {', '.join(WHEN_KEYS)}"
            " (an empty when would accept every infected file)"
        )
    return AcceptedEntry(
        when=when,
        reason=entries["reason"].text(what="a reason (why this finding is accepted)"),
        expires=read_date(entries["expires"]),
        line=item.line,
    )


def _missing(item: Value, key: str) -> ConfigError:
    why = {
        "when": "is required: which files this entry accepts",
        "reason": "is required: say why the finding is accepted",
        "expires": "is required: a date YYYY-MM-DD from which the file counts again"
        " (a far date is your explicit choice)",
    }[key]
    return ConfigError(why, file=item.file, line=item.line, field=f"{item.field}.{key}")


def read_date(value: Value) -> date:
    """A calendar date: YAML's `2027-03-01` or the string "2027-03-01"."""
    node = value.node
    text = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
    if node.tag not in _DATE_TAGS or not _DATE.fullmatch(text):
        raise value.expected("a date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise value.error(f"{text} is not a valid date") from None


def expiring(accepted: Accepted, today: date, days: int = EXPIRING_DAYS) -> list[AcceptedEntry]:
    """Entries still in force that expire within `days` days of `today`."""
    horizon = today + timedelta(days=days)
    return [e for e in accepted.entries if e.in_force(today) and e.expires <= horizon]


def expired(accepted: Accepted, today: date) -> list[AcceptedEntry]:
    """Entries no longer in force: the files they match count as findings again."""
    return [e for e in accepted.entries if not e.in_force(today)]
