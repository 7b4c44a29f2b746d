"""Command line: argparse wiring and exit codes. `main(argv) -> int`.

Exit codes (design.md section 3): 0 clean, 1 infected (wins over 2), 2 some target not fully
scanned, 3 invalid invocation/inventory/policy (argparse's own usage errors included).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from orchestrator import __version__
from orchestrator.errors import ConfigError
from orchestrator.model import EXIT_INVALID, ScanType

DEFAULT_OUT = "clamfleet-report"


class UsageError(Exception):
    """argparse found the command line wrong."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="clamfleet",
        description="Scan a fleet of cPanel accounts with ClamScanner and merge the results.",
    )
    parser.add_argument("--version", action="version", version=f"clamfleet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run(sub.add_parser("run", help="scan every target of an inventory"))
    _add_validate(
        sub.add_parser("validate", help="check an inventory (and policy) without scanning")
    )
    _add_merge(
        sub.add_parser("merge", help="merge shard reports (or fold a rerun) into one report")
    )
    _add_simulate(sub.add_parser("simulate", help="serve a simulated cPanel fleet on 127.0.0.1"))
    demo = sub.add_parser("demo", help="scan an embedded simulated fleet end to end")
    demo.add_argument("--out", default=DEFAULT_OUT, type=Path, help="report directory")
    _add_logging(demo)
    return parser


def _add_logging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=("console", "json"), default="console")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("inventory", type=Path)
    p.add_argument("--policy", type=Path, help="remediation policy (default: report only)")
    p.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help="report directory")
    p.add_argument(
        "--dry-run", action="store_true", help="send no disinfection whatever the policy"
    )
    p.add_argument(
        "--scan-type", action="append", choices=[str(s) for s in ScanType], dest="scan_types"
    )
    p.add_argument("--servers", action="append", metavar="GLOB", help="only servers matching")
    p.add_argument("--shard", metavar="I/N", help="run shard I of N (I from 1; `auto/N` from env)")
    p.add_argument("--journal", type=Path, help="SQLite journal for --resume")
    p.add_argument("--resume", action="store_true", help="go on from the journal's unfinished run")
    p.add_argument(
        "--format", dest="formats", metavar="LIST", help="report formats, comma-separated"
    )
    p.add_argument(
        "--baseline", type=Path, metavar="REPORT", help="previous report.json for new/resolved"
    )
    p.add_argument(
        "--only-failed", type=Path, metavar="REPORT", help="rerun that report's failed targets"
    )
    p.add_argument("--notify-webhook", metavar="ENV_VAR", help="env var holding a webhook URL")
    p.add_argument("--notify-on", choices=("new", "infected", "always"), default="infected")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    p.add_argument(
        "--finish-by",
        metavar="HH:MM",
        help="start no new scan after this time (default: settings.window.end, none if unset);"
        " later targets are reported skipped/deferred",
    )
    _add_logging(p)


def _add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("inventory", type=Path)
    p.add_argument("--policy", type=Path)
    p.add_argument(
        "--check-connectivity", action="store_true", help="one read-only call per server"
    )
    _add_logging(p)


def _add_merge(p: argparse.ArgumentParser) -> None:
    p.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--format", dest="formats", metavar="LIST")


def _add_simulate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--servers", type=int, default=3)
    p.add_argument("--accounts", type=int, default=5)
    p.add_argument("--infected-ratio", type=float, default=0.2)
    p.add_argument("--suspended-ratio", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scan-seconds", type=float, default=5.0)
    p.add_argument("--write-inventory", type=Path)
    p.add_argument("--auth", choices=("whm", "cpanel_token", "cpanel_password"), default="whm")
    p.add_argument("--tls", action="store_true")
    p.add_argument(
        "--cores",
        type=int,
        help="model server load: cores per server (scans share them; systemloadavg follows)",
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
        help="a fault knob for one simulated server, e.g. sim02:status_5xx_every=3",
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"clamfleet: error: {exc.render()}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("clamfleet: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from orchestrator import commands

    handlers = {
        "run": commands.run,
        "validate": commands.validate,
        "merge": commands.merge,
        "simulate": commands.simulate,
        "demo": commands.demo,
    }
    return handlers[args.command](args)
