"""What to do with each infected file (README "Remediation policy"): first-match decisions, the
plan of one target, and the run-wide destructive budget.

Pure: no I/O, no logging. The driver asks `plan()` what to send for one target, then
`DestructiveBudget.reserve()` whether the limits allow it. The policy file is read by
`orchestrator.config.policy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.config import Limits, Policy
from orchestrator.config.policy import MAIL_ONLY
from orchestrator.model import Action, Outcome, Target

# -- deciding ----------------------------------------------------------------------------------


def decide(policy: Policy, target: Target, path: str, virus: str) -> Action:
    """The action of the first rule that matches, else the policy's default."""
    for rule in policy.rules:
        if rule.matches(target, path, virus):
            return rule.action
    return policy.default


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
