"""The inventory and policy files, read into resolved, validated values (no network).

Every error names the file, the line and the field (`inventory.yaml:14: servers[2].auth...`).
Inheritance (defaults -> groups -> server) is resolved once, at load time. Imports only the
shared vocabulary (model, errors, secretref).

Inner layers, top down:

    inventory.py      the inventory loader: YAML -> a fully resolved Inventory
    credentials.py    an entry's auth block: secret references, read from env or file once
    settings_keys.py  the `settings:` block: fleet-wide caps, poll interval, timeouts
    canary_keys.py    the `canary` key: the planted test file, and which entry scans it
    policy.py         the policy file (its rules' `when` read by when.py)
    accepted.py       the accepted-findings file: when, reason, expires
    pacing_keys.py    the `load` and `settings.window` keys, and --finish-by
    when.py           the `when` block of policy rules and accepted findings: one parser
    yamlsrc.py        YAML with line numbers: typed reads that fail as file:line: field: message
    types.py          the resolved values every other package reads
"""

from orchestrator.config.accepted import load_accepted
from orchestrator.config.inventory import load_inventory, select_servers
from orchestrator.config.pacing_keys import with_finish_by
from orchestrator.config.policy import load_policy
from orchestrator.config.types import (
    REPORT_ONLY,
    Accepted,
    AcceptedEntry,
    AuthMethod,
    Canary,
    Credentials,
    Inventory,
    Limits,
    LoadLimit,
    NotifyOn,
    NotifySetting,
    Policy,
    PollInterval,
    Rule,
    Server,
    Settings,
    Timeouts,
    TlsConfig,
    When,
    WindowSetting,
)

__all__ = [
    "REPORT_ONLY",
    "Accepted",
    "AcceptedEntry",
    "AuthMethod",
    "Canary",
    "Credentials",
    "Inventory",
    "Limits",
    "LoadLimit",
    "NotifyOn",
    "NotifySetting",
    "Policy",
    "PollInterval",
    "Rule",
    "Server",
    "Settings",
    "Timeouts",
    "TlsConfig",
    "When",
    "WindowSetting",
    "load_accepted",
    "load_inventory",
    "load_policy",
    "select_servers",
    "with_finish_by",
]
