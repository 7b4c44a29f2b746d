"""What a night's `run` (and `merge`) does around the scan itself: logging for a person or for
cron (`--quiet`, `--log-file`), the journal opened and closed, what `--only-failed` selected
and why, and the printed outcome: what needs attention first, then the summary table, then the
verdict line."""

from __future__ import annotations

import argparse
import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import structlog

from orchestrator import log
from orchestrator.cli.acceptance import count_lines
from orchestrator.config import Inventory, Policy
from orchestrator.engine.journal import Journal
from orchestrator.errors import ConfigError, JournalError
from orchestrator.model import Target
from orchestrator.report import Report, summary_table, writable_dir
from orchestrator.report.attention import (
    Kind,
    attention,
    attention_lines,
    follow_up,
    report_verdict,
    rerun_targets,
    verdict,
)
from orchestrator.report.writers import report_json_path

logger = structlog.get_logger("clamfleet")


@contextlib.contextmanager
def logging_for(args: argparse.Namespace) -> Iterator[None]:
    """Logging for run and merge: `--quiet` keeps warnings on the console, `--log-file` gets
    every event at --log-level as JSON lines (opened before anything runs: exit 3 if it cannot
    be), and is closed again when the command ends."""
    fmt = getattr(args, "log_format", "console")
    level = getattr(args, "log_level", "info")
    console = "warning" if args.quiet and level in ("debug", "info") else level
    log_file = open_log_file(args.log_file) if args.log_file is not None else None
    log.configure(fmt, level, console_level=console, log_file=log_file)
    try:
        yield
    finally:
        if log_file is not None:
            log.configure(fmt, level, console_level=console)
            log_file.close()


def open_log_file(path: Path) -> TextIO:
    try:
        return path.open("a", encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"{path}: cannot write the log file ({reason})", field="--log-file"
        ) from None


# ---------------------------------------------------------------------------------------------
# the journal


def check_journal_path(path: Path) -> None:
    """The journal's folder must exist and be writable (SQLite adds files beside the journal)."""
    writable_dir(path.parent, field="--journal")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: not a file", field="--journal")


def open_journal(
    args: argparse.Namespace,
    fleet_id: str,
    shard: str,
    policy: Policy,
    dry_run: bool,
    fresh: dict[str, str],
) -> tuple[Journal | None, dict[str, str]]:
    """The journal and, on --resume, the interrupted run's meta ({} for a new run, whose
    identity and `fresh` run id and start are recorded in one write)."""
    if args.journal is None:
        if args.resume:
            raise ConfigError("--resume needs --journal FILE", field="--resume")
        return None, {}
    identity = {
        "fleet_id": fleet_id,
        "shard": shard,
        "policy": str(policy.source or "report-only"),
        "dry_run": str(dry_run),
    }
    journal = Journal(args.journal)
    meta = journal.open(identity, resume=args.resume)
    if not meta:
        try:
            journal.start({**identity, **fresh})
        except ConfigError:
            journal.close()
            raise
    else:
        logger.info("run.resumed", run_id=meta.get("run_id"), started_at=meta.get("started_at"))
    return journal, meta


def finish_journal(journal: Journal) -> None:
    """Mark the journal's run finished. The report is written and the verdict known: a journal
    that cannot record that much more only means a later --resume redoes nothing new (every
    target's result is in it), so it is a warning, not a reason to lose the verdict."""
    try:
        journal.finish()
    except JournalError as exc:
        logger.warning("journal.not_finished", error=str(exc))


# ---------------------------------------------------------------------------------------------
# --only-failed


#: How the --only-failed line names each reason, with a count before it.
_REASONS = {
    Kind.FAILED: "failed",
    Kind.INTERRUPTED: "interrupted",
    Kind.DEFERRED: "deferred",
    Kind.UNKNOWN: "with a file whose outcome is unknown",
    Kind.ERROR: "with a file whose outcome is error",
    Kind.HELD_BACK: "with actions held back by a limit",
    Kind.UNVERIFIED: "clean but unverified (their canary was not detected)",
}


def rerun_selection(previous: Report, inventory: Inventory) -> dict[Target, Kind]:
    """--only-failed: every target of `previous` on this run's servers that needs another pass,
    with why (attention.py's one predicate, the same the "needs attention" section uses)."""
    names = {s.name for s in inventory.servers}
    return {t: k for t, k in rerun_targets(previous).items() if t.server in names}


def announce_rerun(previous: Report, source: Path, inventory: Inventory, quiet: bool) -> None:
    """Say and log what --only-failed selected and why; a warning when it is nothing."""
    here = rerun_selection(previous, inventory)
    counts = Counter(here.values())
    logger.info(
        "run.only_failed",
        report=str(source),
        rerun_of=previous.run.id,
        targets=len(here),
        reasons={str(k): n for k, n in counts.items()},
    )
    if here:
        if not quiet:
            why = ", ".join(f"{n} {_REASONS[k]}" for k, n in counts.items())
            plural = "" if len(here) == 1 else "s"
            print(f"--only-failed: rescanning {len(here)} target{plural} of {source}: {why}")
        return
    if everywhere := rerun_targets(previous):
        n = len(everywhere)
        hint = (
            "its 1 target that needs another pass is on a server"
            if n == 1
            else f"its {n} targets that need another pass are all on servers"
        ) + " this run does not scan (--servers, --shard)"
    else:
        hint = "it has no failed, interrupted or deferred target and no unknown or error outcome"
    print(f"warning: --only-failed: nothing to scan: {hint} ({source})")
    logger.warning("run.only_failed_empty", report=str(source), hint=hint)


def print_outcome(
    report: Report,
    paths: list[Path],
    interrupted: bool,
    *,
    quiet: bool = False,
    code: int | None = None,
    stopped: str | None = None,
) -> None:
    """What needs attention first, then the summary table (with the accepted findings and
    canaries counted), then the verdict line. --quiet: the attention lines only when there are
    some, and the verdict line. `stopped`: why the run stopped starting scans early."""
    folder = paths[0].parent if paths else None
    items = attention(report)
    command = follow_up(report, report_json_path(folder)) if folder is not None else None
    if items or not quiet:
        print("\n".join(attention_lines(items, command)))
    if not quiet:
        print(summary_table(report))
        for line in count_lines(report):
            print(line)
    if interrupted:
        print("run interrupted: partial report written")
    elif stopped is not None:
        print(f"{stopped}: scans not finished by then are reported interrupted")
    code = report.summary.exit_code if code is None else code
    words = report_verdict(report) if code == report.summary.exit_code else verdict(code)
    print(f"report: {folder}  (exit code {code}: {words[1]})")
