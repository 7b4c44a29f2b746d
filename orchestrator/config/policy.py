"""The policy file (README "Remediation policy"): YAML -> a validated `Policy`. Its rules'
`when` is read by when.py and matched by `When.matches` (shared with accepted findings).

Pure apart from reading the file; every error names the file, the line and the field.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

from orchestrator.config.types import Limits, Policy, Rule
from orchestrator.config.when import read_when
from orchestrator.config.yamlsrc import Value, read_document
from orchestrator.errors import ConfigError
from orchestrator.model import Action

TOP_KEYS = ("default", "rules", "limits")
RULE_KEYS = ("name", "when", "action")
LIMIT_KEYS = ("max_destructive_per_account", "max_destructive_per_run")
GLOB_CHARS = re.compile(r"[*?\[]")
MAIL_ONLY = "cleanse_mailbox applies only to files under the account's mail/"


# -- loading -----------------------------------------------------------------------------------


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; raises ConfigError naming file, line and field."""
    root = read_document(path, "policy")
    if root is None:
        raise ConfigError("the policy is empty: write at least `default: report`", file=str(path))
    top = root.mapping(TOP_KEYS)
    return Policy(
        default=top["default"].choice(Action) if "default" in top else Action.REPORT,
        rules=_rules(top["rules"]) if "rules" in top else (),
        limits=_limits(top["limits"]) if "limits" in top else Limits(),
        source=str(path),
    )


def _rules(value: Value) -> tuple[Rule, ...]:
    if value.is_null:
        return ()
    rules: list[Rule] = []
    names: dict[str, int] = {}
    for item in value.items():
        rule = _rule(item)
        if rule.name is not None:
            where = item.mapping()["name"]
            if rule.name in names:
                raise where.error(f"duplicate rule name (first at line {names[rule.name]})")
            names[rule.name] = where.line
        rules.append(rule)
    return tuple(rules)


def _rule(item: Value) -> Rule:
    entries = item.mapping(RULE_KEYS)
    if "action" not in entries:
        field = f"{item.field}.action"
        raise ConfigError("is required", file=item.file, line=item.line, field=field)
    action = entries["action"].choice(Action)
    when, written = read_when(entries.get("when"))
    if action is Action.CLEANSE_MAILBOX and when.path is not None:
        _check_mail_path(written["path"], when.path)
    name = entries["name"].text() if "name" in entries else None
    return Rule(action, name, **asdict(when))


def _check_mail_path(value: Value, path: str) -> None:
    # Only a literal path can be judged now; a glob may still match mail files.
    if not GLOB_CHARS.search(path) and "/mail/" not in path and not path.startswith("mail/"):
        raise value.error(f"{MAIL_ONLY}, and this path is not under a mail/ directory")


def _limits(value: Value) -> Limits:
    entries = value.mapping(LIMIT_KEYS, null_ok=True)
    counts = {k: None if v.is_null else v.integer(minimum=0) for k, v in entries.items()}
    return Limits(**counts)
