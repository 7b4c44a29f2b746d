"""The options of each subcommand (run, validate, merge, simulate, demo), with their defaults
and help; `parser.py` wires them into one argparse parser (`history` has its own module)."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli.helptext import fault_knobs
from orchestrator.model import ScanType
from orchestrator.report.writers import DEFAULT_FORMATS, FORMATS

DEFAULT_OUT = "clamfleet-report"


def _add_logging(p: argparse.ArgumentParser, level: str = "info") -> None:
    p.add_argument(
        "--log-format",
        choices=("console", "json"),
        default="console",
        help="console: human-readable lines on stderr; json: one JSON object per line",
    )
    p.add_argument(
        "--log-level",
        default=level,
        choices=("debug", "info", "warning", "error"),
        help="the least severe log level shown",
    )


def add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inventory",
        type=Path,
        metavar="INVENTORY",
        help="the inventory YAML (see inventory.example.yaml)",
    )
    p.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="remediation policy YAML (default: none: report only, nothing is disinfected)",
    )
    _add_accepted(p)
    p.add_argument(
        "--out", type=Path, default=Path(DEFAULT_OUT), metavar="DIR", help="report directory"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="send no disinfection whatever the policy; the report shows the planned actions"
        " (default: off; always on without --policy)",
    )
    p.add_argument(
        "--scan-type",
        action="append",
        choices=[str(s) for s in ScanType],
        dest="scan_types",
        help="scan only this type; repeatable (default: each server's scan_types)",
    )
    p.add_argument(
        "--servers",
        action="append",
        metavar="GLOB",
        help="only servers whose name matches; repeatable (default: every server)",
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="run shard I of N, I from 1; auto/N takes I from JOB_COMPLETION_INDEX or"
        " CI_NODE_INDEX (default: 1/1, the whole inventory; CI variables alone never shard)",
    )
    p.add_argument(
        "--journal",
        type=Path,
        metavar="FILE",
        help="SQLite journal of every step, for --resume (default: none)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on from the journal's unfinished run (default: off; needs --journal)",
    )
    p.add_argument(
        "--format",
        dest="formats",
        metavar="LIST",
        help=f"report formats, comma-separated, from {', '.join(FORMATS)}; json and csv are"
        f" always written (default: {','.join(DEFAULT_FORMATS)})",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        metavar="REPORT",
        help="previous report.json: mark infected files new or resolved (default: none)",
    )
    p.add_argument(
        "--only-failed",
        type=Path,
        metavar="REPORT",
        help="rescan only what that report says needs another pass: failed, interrupted and"
        " deferred targets, and targets with a file whose outcome is unknown or error or whose"
        " action a limit held back (default: none: every target)",
    )
    _add_history_file(p, "settings.history, else none; a shard only reads it: merge records")
    p.add_argument(
        "--notify-webhook",
        metavar="ENV_VAR",
        help="name of the environment variable holding a webhook URL (default: none)",
    )
    _add_notify(p)
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no live progress display (default: off; none anyway unless stdout is a terminal)",
    )
    _add_per_target(p)
    p.add_argument(
        "--finish-by",
        metavar="WHEN",
        help="start no new scan after WHEN: HH:MM (in settings.window.timezone, local if"
        " unset), 'HH:MM Europe/Berlin', or a duration from the start such as +5h30m (default:"
        " settings.window, none if unset); later targets are reported skipped/deferred",
    )
    p.add_argument(
        "--max-duration",
        metavar="DURATION",
        help="the run's deadline, e.g. 6h, 90m, 1h30m or seconds: no new scan after it, scans"
        " in flight followed for a grace (10%% of it, at most 60 s), then the report is written"
        " with the rest interrupted; no timeout(1) needed (default: settings.max_duration,"
        " none if unset)",
    )
    _add_logging(p)
    _add_cron(p)


def _add_cron(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quiet",
        action="store_true",
        help="print only warnings, what needs attention and the verdict line, e.g. for cron"
        " mail (default: off: also the summary table and info logs)",
    )
    p.add_argument(
        "--log-file",
        type=Path,
        metavar="PATH",
        help="also append every log event to PATH, one JSON object per line, at --log-level"
        " whatever --quiet hides (default: none)",
    )


def _add_notify(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--notify",
        action="append",
        metavar="URL_ENV",
        help="name of an environment variable holding an Apprise URL (mailto://, mailtos://,"
        " slack://, msteams://, matrix://, tgram://...); repeatable (default: none; run adds"
        " settings.notify)",
    )
    p.add_argument(
        "--notify-on",
        choices=("new", "infected", "failed", "always"),
        default="infected",
        help="when --notify (and run's --notify-webhook) sends: new infected files, any infected"
        " file, any target not fully scanned, or always",
    )


def _add_history_file(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--history",
        type=Path,
        metavar="FILE",
        help="SQLite history of every night: adds this night, gives the report per-target"
        f" delta, first-seen dates and trends (default: {default})",
    )


def _add_per_target(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prometheus-per-target",
        action="store_true",
        help="also write per-target series to clamfleet.prom, 6 per target (default: off: fleet"
        " totals and per-server series only)",
    )


def _add_accepted(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accepted",
        type=Path,
        metavar="FILE",
        help="accepted findings YAML: matching files are reported, never acted on, and count as"
        " no infection until their expires date (default: settings.accepted, else none)",
    )


def add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("inventory", type=Path, metavar="INVENTORY", help="the inventory YAML to check")
    p.add_argument(
        "--policy", type=Path, metavar="FILE", help="also check this policy YAML (default: none)"
    )
    _add_accepted(p)
    p.add_argument(
        "--check-connectivity",
        action="store_true",
        help="read the secrets and make read-only calls to every server and account (and"
        " systemloadavg where load.max is set; with a --policy that sends actions, open and"
        " log out the cPanel session disinfect_files needs); exit 2 unless every server"
        " passes (default: off: offline, no secret read)",
    )
    _add_check_api(p)
    _add_logging(p)


def _add_check_api(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--check-api",
        action="store_true",
        help="read the secrets and check, server by server, each assumption clamfleet makes"
        " about cPanel's answers (read-only requests); exit 2 unless all hold (default: off)",
    )
    p.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="with --check-api: write each server's requests and answers here as JSON, every"
        " secret, cookie and session id removed (default: none)",
    )
    p.add_argument(
        "--redact-hosts",
        action="store_true",
        help="with --record: replace host names, account domains and server names too"
        " (default: off)",
    )
    p.add_argument(
        "--canary-account",
        metavar="NAME",
        help="with --check-api: the account of every server that --scan-canary may scan"
        " (default: each server's inventory `canary` account)",
    )
    p.add_argument(
        "--scan-canary",
        action="store_true",
        help="with --check-api: start a scan of the canary account (the inventory's `canary`,"
        " or --canary-account), and send `ignore` for what it finds, to check what only a scan"
        " shows (default: off: read-only, those rows say 'could not check')",
    )


def add_merge(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "reports",
        nargs="+",
        type=Path,
        metavar="REPORT.json",
        help="shard reports of one run, or a report and its --only-failed rerun",
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="directory for the merged report"
    )
    p.add_argument(
        "--format",
        dest="formats",
        metavar="LIST",
        help=f"report formats, comma-separated (default: {','.join(DEFAULT_FORMATS)})",
    )
    _add_per_target(p)
    _add_history_file(p, "none; record a sharded night here, once")
    _add_notify(p)
    _add_cron(p)


def add_simulate(p: argparse.ArgumentParser) -> None:
    from orchestrator.simulator.spec import Faults

    p.epilog = fault_knobs(Faults)
    p.add_argument("--servers", type=int, default=3, help="number of simulated servers")
    p.add_argument("--accounts", type=int, default=5, help="accounts per server")
    p.add_argument(
        "--infected-ratio", type=float, default=0.2, help="share of accounts with infected files"
    )
    p.add_argument("--suspended-ratio", type=float, default=0.0, help="share of suspended accounts")
    p.add_argument("--seed", type=int, default=1, help="the same seed gives the same fleet")
    p.add_argument(
        "--scan-seconds", type=float, default=5.0, help="how long a typical account's scan takes"
    )
    p.add_argument(
        "--write-inventory",
        type=Path,
        metavar="FILE",
        help="write a matching inventory here and print the token variables (default: none)",
    )
    p.add_argument(
        "--auth",
        choices=("whm", "cpanel_token", "cpanel_password"),
        default="whm",
        help="the auth method of the written inventory",
    )
    p.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a generated certificate (default: off)"
    )
    p.add_argument(
        "--requests-per-second",
        type=float,
        metavar="R",
        help="each server's limit: written into the inventory and enforced by the referee"
        " (default: the inventory's own default, 5)",
    )
    p.add_argument(
        "--max-concurrent-scans",
        type=int,
        metavar="N",
        help="each server's scan cap: written into the inventory and enforced by the referee"
        " (with --auth cpanel_token/cpanel_password, one cap for all of a host's entries)"
        " (default: the inventory's own default, 2)",
    )
    p.add_argument(
        "--fleet-requests-per-second",
        type=float,
        metavar="R",
        help="the fleet-wide limit (settings.requests_per_second), likewise (default: the"
        " inventory's own default, 100)",
    )
    p.add_argument(
        "--cores",
        type=int,
        help="model server load: cores per server (scans share them; systemloadavg follows)"
        " (default: no load model: scans keep fixed durations)",
    )
    p.add_argument(
        "--background", type=float, default=0.0, help="with --cores: load besides the scans"
    )
    p.add_argument(
        "--time-scale", type=float, default=1.0, help="with --cores: simulated s per real s"
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SERVER:KNOB=VALUE",
        help="a fault knob (listed below) for one simulated server, e.g. sim02:status_5xx_every=3;"
        " repeatable (default: none)",
    )


def add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=DEFAULT_OUT, type=Path, metavar="DIR", help="report directory")
    _add_logging(p, level="warning")  # the demo's own output is its summary table
