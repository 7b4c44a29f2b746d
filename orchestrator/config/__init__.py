"""The inventory and policy files, read into resolved, validated values (no network).

Every error names the file, the line and the field (`inventory.yaml:14: servers[2].auth...`).
Inheritance (defaults -> groups -> server) is resolved once, at load time. Imports only the
shared vocabulary (model, errors, secretref).

Inner layers, top down:

    inventory.py      the inventory loader: YAML -> a fully resolved Inventory
    credentials.py    an entry's auth block: secret references, read from env or file once
    settings_keys.py  the `settings:` block: fleet-wide caps, poll interval, timeouts
    pacing_keys.py    the `load` and `settings.window` keys, and --finish-by
    policy.py         the policy file, and the `when` matcher its rules use
    yamlsrc.py        YAML with line numbers: typed reads that fail as file:line: field: message
    types.py          the resolved values every other package reads
"""

from orchestrator.config.inventory import load_inventory, select_servers
from orchestrator.config.pacing_keys import with_finish_by
from orchestrator.config.policy import load_policy
from orchestrator.config.types import (
    REPORT_ONLY,
    AuthMethod,
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
    WindowSetting,
)

__all__ = [
    "REPORT_ONLY",
    "AuthMethod",
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
    "WindowSetting",
    "load_inventory",
    "load_policy",
    "select_servers",
    "with_finish_by",
]
