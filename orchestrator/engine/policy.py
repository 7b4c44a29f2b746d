"""Disinfection policy (README "Remediation policy"): YAML -> `Policy`, and what to do per file.

Pure: no I/O besides reading the policy file, no logging. The runner asks `plan()` what to send
for one target, then `DestructiveBudget.reserve()` whether the limits allow it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from orchestrator.config import Limits, Policy, Rule
from orchestrator.errors import ConfigError
from orchestrator.model import Action, Outcome, ScanType, Target
from orchestrator.config.yamlsrc import Value, read_document

TOP_KEYS = ("default", "rules", "limits")
RULE_KEYS = ("name", "when", "action")
WHEN_GLOBS = ("virus", "path", "account", "server")
WHEN_KEYS = (*WHEN_GLOBS, "scan_type")
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
    when = entries["when"].mapping(WHEN_KEYS, null_ok=True) if "when" in entries else {}
    globs = {key: when[key].text() for key in WHEN_GLOBS if key in when}
    if action is Action.CLEANSE_MAILBOX and "path" in globs:
        _check_mail_path(when["path"], globs["path"])
    return Rule(
        action=action,
        name=entries["name"].text() if "name" in entries else None,
        scan_type=when["scan_type"].choice(ScanType) if "scan_type" in when else None,
        **globs,
    )


def _check_mail_path(value: Value, path: str) -> None:
    # Only a literal path can be judged now; a glob may still match mail files.
    if not GLOB_CHARS.search(path) and "/mail/" not in path and not path.startswith("mail/"):
        raise value.error(f"{MAIL_ONLY}, and this path is not under a mail/ directory")


def _limits(value: Value) -> Limits:
    entries = value.mapping(LIMIT_KEYS, null_ok=True)
    counts = {k: None if v.is_null else v.integer(minimum=0) for k, v in entries.items()}
    return Limits(**counts)


# -- deciding ----------------------------------------------------------------------------------


def decide(policy: Policy, target: Target, path: str, virus: str) -> Action:
    """The action of the first rule that matches, else the policy's default."""
    for rule in policy.rules:
        if _matches(rule, target, path, virus):
            return rule.action
    return policy.default


def _matches(rule: Rule, target: Target, path: str, virus: str) -> bool:
    pairs = (
        (rule.virus, virus),
        (rule.path, path),
        (rule.account, target.account),
        (rule.server, target.server),
    )
    if any(glob is not None and not fnmatchcase(text, glob) for glob, text in pairs):
        return False
    return rule.scan_type is None or rule.scan_type is target.scan_type


def in_mail(account: str, path: str) -> bool:
    """Whether a path cPanel reported lies under the account's mail/ directory."""
    return f"/{account}/mail/" in path or path.startswith("mail/")


@dataclass(frozen=True, slots=True)
class PlannedFile:
    path: str
    virus: str
    action: Action  # what the policy chose: shown in the report even in dry-run
    send: bool  # goes into disinfect_files' actions map
    # The final outcome when not sent: NOT_REQUESTED (report, dry run) or ERROR (cleanse_mailbox
    # outside mail/); None when sent, as cPanel then decides it.
    outcome: Outcome | None
    message: str | None


@dataclass(frozen=True, slots=True)
class Plan:
    files: tuple[PlannedFile, ...]

    def destructive_count(self) -> int:
        return sum(1 for f in self.files if f.send and f.action.destructive)


def plan(
    policy: Policy, target: Target, files: Sequence[tuple[str, str]], *, dry_run: bool
) -> Plan:
    """What to do with each infected (path, virus) of one target."""
    return Plan(tuple(_plan_file(policy, target, path, virus, dry_run) for path, virus in files))


def _plan_file(policy: Policy, target: Target, path: str, virus: str, dry_run: bool) -> PlannedFile:
    action = decide(policy, target, path, virus)
    misplaced = action is Action.CLEANSE_MAILBOX and not in_mail(target.account, path)
    if dry_run:
        # Nothing is sent, but a cleanse_mailbox the real run would refuse is flagged already.
        message = MAIL_ONLY if misplaced else None
        return PlannedFile(path, virus, action, False, Outcome.NOT_REQUESTED, message)
    if not action.sent:
        return PlannedFile(path, virus, action, False, Outcome.NOT_REQUESTED, None)
    if misplaced:
        # cPanel would answer "not in a mailbox" per file; refusing here keeps the request clean.
        return PlannedFile(path, virus, action, False, Outcome.ERROR, MAIL_ONLY)
    return PlannedFile(path, virus, action, True, None, None)


# -- limits ------------------------------------------------------------------------------------


class DestructiveBudget:
    """Destructive actions granted so far in one run, per account and in total. No I/O."""

    __slots__ = ("_granted", "_limits", "_total")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._granted: dict[tuple[str, str], int] = {}
        self._total = 0

    def reserve(self, server: str, account: str, count: int) -> str | None:
        """Grant and record all `count` actions (None), or none and say which limit refused."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        used = self._granted.get((server, account), 0)
        per_account = self._limits.max_destructive_per_account
        if per_account is not None and used + count > per_account:
            return (
                f"would exceed max_destructive_per_account={per_account} for account {account}"
                f" on {server} ({used} granted, {count} requested)"
            )
        per_run = self._limits.max_destructive_per_run
        if per_run is not None and self._total + count > per_run:
            return (
                f"would exceed max_destructive_per_run={per_run}"
                f" ({self._total} granted, {count} requested)"
            )
        self._granted[(server, account)] = used + count
        self._total += count
        return None
