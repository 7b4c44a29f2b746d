"""What each subcommand does. cli.py parses; these load, run, report and pick the exit code."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import uuid
from datetime import UTC, datetime

import anyio
import structlog

from orchestrator import __version__, log
from orchestrator.cli import acceptance, nightly
from orchestrator.cli.execute import ScanJob, arun, scan_and_report, write_with_history
from orchestrator.cli.notify import notify, webhook_url
from orchestrator.cli.notify_apprise import notifiers, send_all
from orchestrator.config import REPORT_ONLY, Inventory
from orchestrator.config.inventory import load_inventory, select_servers
from orchestrator.config.pacing_keys import with_finish_by, with_max_duration
from orchestrator.config.policy import load_policy
from orchestrator.config.yamlsrc import read_document
from orchestrator.engine.runner import NullObserver, Observer, RunOptions
from orchestrator.engine.shard import ignored_env, resolve_shard, servers_in_shard
from orchestrator.errors import ConfigError
from orchestrator.model import (
    RunInfo,
    RunWindow,
    ScanType,
)
from orchestrator.report import (
    FORMATS,
    load_report,
    merge_reports,
    prepare_out_dir,
)
from orchestrator.report.attention import unsettled_accounts
from orchestrator.report.history import history_path, prepare_history
from orchestrator.workflow.window import Window

logger = structlog.get_logger("clamfleet")
_arun = arun  # the name it had here before execute.py (tests and callers use it)


# ---------------------------------------------------------------------------------------------
# run


def run(args: argparse.Namespace) -> int:
    with nightly.logging_for(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    inventory = with_finish_by(load_inventory(args.inventory), args.finish_by)
    inventory = with_max_duration(inventory, args.max_duration)
    if args.servers:
        inventory = select_servers(inventory, args.servers)
    shard_index, shard_total = resolve_shard(args.shard, os.environ)
    all_servers = tuple(s.name for s in inventory.servers)
    fleet_id = inventory.fleet_id
    inventory = servers_in_shard(inventory, shard_index, shard_total)
    policy = load_policy(args.policy) if args.policy else REPORT_ONLY
    accepted = acceptance.load(args.accepted, inventory)
    formats = parse_formats(args.formats)
    baseline = load_report(args.baseline) if args.baseline else None
    previous = load_report(args.only_failed) if args.only_failed else None
    webhook = webhook_url(args.notify_webhook)
    _register_secrets(inventory, webhook)
    notify_to = notifiers(args.notify, args.notify_on, inventory.settings.notify)
    history = history_path(args.history, inventory.settings.history, inventory.path)
    options = RunOptions(
        policy=policy,
        dry_run=args.dry_run or args.policy is None,
        scan_types=tuple(ScanType(s) for s in args.scan_types) if args.scan_types else None,
        only=frozenset(nightly.rerun_selection(previous, inventory)) if previous else None,
        settle=unsettled_accounts(previous) if previous else frozenset(),
        accepted=accepted,
    )
    # Every input is valid: now the places the run writes to, still before the first request.
    prepare_out_dir(args.out)
    if args.journal is not None:
        nightly.check_journal_path(args.journal)
    if history is not None:
        prepare_history(history)
    shard = f"{shard_index}/{shard_total}"
    fresh = {"run_id": uuid.uuid4().hex, "started_at": datetime.now(UTC).isoformat()}
    journal, meta = nightly.open_journal(args, fleet_id, shard, policy, options.dry_run, fresh)
    meta = meta or fresh  # --resume: the resumed run's identity and start
    run_id = meta["run_id"]
    started_at = datetime.fromisoformat(meta.get("started_at") or fresh["started_at"])
    # --resume: the window is the interrupted run's (06:00 after *its* start, not this one's)
    window = Window.resolve(inventory.settings.window, started_at)
    today = acceptance.run_date(started_at, inventory.settings.window.timezone)
    options = dataclasses.replace(options, run_id=run_id, window=window, accepted_on=today)
    # After every check of the input: a bad invocation stays a one-line error, no log line.
    _announce_shard(args.shard, shard_index, shard_total, inventory, len(all_servers), args.quiet)
    if previous is not None:
        nightly.announce_rerun(previous, args.only_failed, inventory, args.quiet)
    info = RunInfo(
        id=run_id,
        tool_version=__version__,
        started_at=started_at,
        finished_at=None,
        inventory=str(args.inventory),
        shard=shard,
        dry_run=options.dry_run,
        servers=all_servers,
        fleet_id=fleet_id,
        rerun_of=previous.run.id if previous else None,
        shard_servers=tuple(s.name for s in inventory.servers),
        window=run_window(window),
    )
    job = ScanJob(
        inventory,
        options,
        info,
        args.out,
        formats,
        observer=_observer(args, inventory, window),
        journal=journal,
        baseline=baseline,
        prometheus_per_target=args.prometheus_per_target,
        history=history,
        record_history=shard_total == 1,  # a sharded night is recorded once, by its merge
    )
    try:
        outcome = scan_and_report(job)
        if journal is not None and not outcome.interrupted and outcome.stopped is None:
            nightly.finish_journal(journal)  # stopped early (signal, max_duration): resumable
    finally:
        if journal is not None:
            journal.close()
    report = outcome.report
    nightly.print_outcome(
        report, outcome.paths, outcome.interrupted, quiet=args.quiet, stopped=outcome.stopped
    )
    if webhook:
        notify(webhook, report, args.notify_on, _arun)
    send_all(report, outcome.paths, notify_to)
    return int(report.summary.exit_code)


def _announce_shard(
    arg: str | None, index: int, total: int, inventory: Inventory, fleet: int, quiet: bool
) -> None:
    """The run's first log line: which shard this process scans (and why)."""
    names = [s.name for s in inventory.servers]
    logger.info("run.shard", shard=f"{index}/{total}", servers=len(names), server_names=names)
    if hint := ignored_env(arg, os.environ):
        logger.warning("run.shard_env_ignored", hint=hint)
    if not names:
        # Correct, not a failure (exit 0): there are fewer servers than shards, and the other
        # shards' reports cover all of them; `merge` still names any shard that is missing.
        if not quiet:  # the warning below says it
            print(
                f"shard {index}/{total} has no server to scan ({fleet} servers for {total} shards)"
            )
        logger.warning(
            "run.shard_empty",
            shard=f"{index}/{total}",
            fleet_servers=fleet,
            hint=f"{fleet} servers for {total} shards: this shard has nothing to scan",
        )


def _observer(args: argparse.Namespace, inventory: Inventory, window: Window) -> Observer:
    # JSON logs are for a collector: no live area redrawn among them.
    if args.no_progress or args.quiet or not sys.stdout.isatty() or args.log_format == "json":
        return NullObserver()
    try:
        from orchestrator.cli.progress import LiveProgress
    except ImportError:  # pragma: no cover - progress display is optional
        return NullObserver()
    return LiveProgress(inventory, window=window)


def parse_formats(text: str | None) -> set[str]:
    from orchestrator.report import DEFAULT_FORMATS

    if not text:
        return set(DEFAULT_FORMATS)
    wanted = {f.strip() for f in text.split(",") if f.strip()}
    unknown = wanted - set(FORMATS)
    if unknown:
        allowed = ", ".join(sorted(FORMATS))
        raise ConfigError(
            f"unknown format {', '.join(sorted(unknown))} (allowed: {allowed})", field="--format"
        )
    return wanted | {"json", "csv"}  # README "Report": report.json and both CSVs, always


def _register_secrets(inventory: Inventory, webhook: str | None) -> None:
    log.register_secrets(s.auth.secret.reveal() for s in inventory.servers)
    if webhook:
        log.register_secret(webhook)


def run_window(window: Window) -> RunWindow | None:
    """The report's record of the window (None: the run had none)."""
    if window.end is None:
        return None
    return RunWindow(end=window.end, timezone=window.timezone, source=window.source)


# ---------------------------------------------------------------------------------------------
# validate


def validate(args: argparse.Namespace) -> int:
    """Offline by default: no request, no secret read (so CI can lint without the tokens)."""
    from orchestrator.cli import lint, probe

    log.configure(args.log_format, args.log_level)
    probe_options = probe.options_of(args)  # usage errors before any secret is read
    online = bool(args.check_connectivity or args.check_api)
    inventory = load_inventory(args.inventory, secrets=online)
    policy = load_policy(args.policy) if args.policy else None
    accepted = acceptance.load(args.accepted, inventory)
    if online:
        from orchestrator.cli.preflight import check_connectivity

        _register_secrets(inventory, None)
        codes = [check_connectivity(inventory, policy=policy)] if args.check_connectivity else []
        if args.check_api:
            codes.append(probe.check_api(inventory, probe_options))
        return max(codes)
    count = len(inventory.servers)
    plural = "" if count == 1 else "s"
    print(f"{args.inventory}: OK, {count} server{plural} (secrets not read)")
    for server in inventory.servers:
        print("\n".join(lint.server_lines(server)))
        if (line := acceptance.canary_line(server)) is not None:
            print(line)
    for line in lint.host_lines(inventory):
        print(line)
    warnings = list(lint.inventory_warnings(inventory))
    warnings += lint.load_warnings(inventory)
    warnings += lint.limit_warnings(inventory)
    warnings += lint.account_name_warnings(inventory)
    document = read_document(args.inventory, "inventory")
    warnings += lint.listed_twice(document.node if document else None, str(args.inventory))
    for line in lint.pacing_lines(inventory):
        print(line)
    if policy is not None:
        print(f"{args.policy}: OK, {len(policy.rules)} rules, default {policy.default}")
        warnings += [f"{args.policy}: {w}" for w in lint.policy_warnings(policy)]
    if accepted is not None:
        today = acceptance.run_date(datetime.now(UTC), inventory.settings.window.timezone)
        lines, expiring = acceptance.validate_lines(accepted, today)
        print("\n".join(lines))
        warnings += expiring
    for warning in warnings:
        print(f"warning: {warning}")
    return 0


# ---------------------------------------------------------------------------------------------
# merge


def merge(args: argparse.Namespace) -> int:
    with nightly.logging_for(args):
        return _merge(args)


def _merge(args: argparse.Namespace) -> int:
    formats = parse_formats(args.formats)
    notify_to = notifiers(args.notify, args.notify_on)
    reports = [load_report(p) for p in args.reports]
    merged = merge_reports(reports, sources=[str(p) for p in args.reports])
    prepare_out_dir(args.out)
    history = prepare_history(args.history) if args.history else None
    fold = any(r.run.rerun_of for r in reports)  # a rerun recorded itself: not again here
    report, paths = write_with_history(
        merged.report, args.out, formats, history, not fold, args.prometheus_per_target
    )
    code = int(report.summary.exit_code)  # 2 when shards or servers are missing
    if merged.missing_shards:
        print(f"missing shards: {', '.join(str(i) for i in merged.missing_shards)}")
    if merged.missing_servers:
        print(f"servers in no report: {', '.join(merged.missing_servers)}")
    nightly.print_outcome(report, paths, False, quiet=args.quiet, code=code)
    send_all(report, paths, notify_to)
    return code


# ---------------------------------------------------------------------------------------------
# simulate (the demo is in demo.py)


def simulate(args: argparse.Namespace) -> int:
    from orchestrator.simulator import generate_fleet, serve
    from orchestrator.simulator.knobs import load_spec, with_fault_args

    try:
        load = load_spec(args.cores, args.background, args.time_scale)
    except ValueError as exc:
        raise ConfigError(str(exc), field="--cores") from None
    spec = generate_fleet(
        servers=args.servers,
        accounts=args.accounts,
        infected_ratio=args.infected_ratio,
        seed=args.seed,
        scan_seconds=args.scan_seconds,
        suspended_ratio=args.suspended_ratio,
        load=load,
        time_scale=args.time_scale,
    )
    try:
        spec = with_fault_args(spec, args.fault)
    except ValueError as exc:
        raise ConfigError(str(exc), field="--fault") from None
    settings = _given(requests_per_second=args.fleet_requests_per_second)
    server_keys = _given(
        requests_per_second=args.requests_per_second, max_concurrent_scans=args.max_concurrent_scans
    )
    violations = anyio.run(
        lambda: serve(
            spec,
            tls=args.tls,
            write_inventory=args.write_inventory,
            auth=args.auth,
            announce=_say,
            settings=settings,
            server_keys=server_keys,
        )
    )
    return 1 if violations else 0  # a client broke cPanel's rules: see the printed list


def _given(**values: float | None) -> dict[str, float] | None:
    kept = {k: v for k, v in values.items() if v is not None}
    return kept or None


def _say(line: str) -> None:
    print(line, flush=True)
