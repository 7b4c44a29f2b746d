"""Command line: argparse wiring and exit codes. `main(argv) -> int`.

Exit codes (README "Exit codes"): 0 clean, 1 infected (wins over 2), 2 some target not fully
scanned, 3 invalid invocation/inventory/policy (argparse's own usage errors included), 70 an
internal error: any exception that is not a bad input, reported in one line, never as 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

import structlog

from orchestrator import __version__, log
from orchestrator.cli.arguments import add_demo, add_merge, add_run, add_simulate, add_validate
from orchestrator.cli.helptext import EPILOG, Formatter
from orchestrator.cli.history import add_history_command
from orchestrator.errors import ConfigError, JournalError
from orchestrator.model import EXIT_INTERNAL, EXIT_INVALID


class UsageError(Exception):
    """argparse found the command line wrong."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # The usage line first, as argparse prints it, then the one-line error; main exits 3.
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="clamfleet",
        description="Scan a fleet of cPanel accounts with ClamScanner and merge the results.",
        epilog=EPILOG,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"clamfleet {__version__}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    add_run(sub.add_parser("run", help="scan every target of an inventory", epilog=EPILOG))
    add_validate(
        sub.add_parser("validate", help="check an inventory (and policy); offline by default")
    )
    add_merge(sub.add_parser("merge", help="merge shard reports (or fold a rerun) into one report"))
    add_simulate(sub.add_parser("simulate", help="serve a simulated cPanel fleet on 127.0.0.1"))
    add_demo(sub.add_parser("demo", help="scan an embedded simulated fleet end to end"))
    add_history_command(
        sub.add_parser("history", help="list the nights of a history (--history), or prune it")
    )
    topics = sub.add_parser("help", help="print the whole manual, or one command's help")
    topics.add_argument(
        "topic",
        nargs="?",
        choices=COMMANDS,
        help="a command (default: the whole manual: every command's options)",
    )
    return parser


COMMANDS = ("run", "validate", "merge", "simulate", "demo", "history")


def print_manual(topic: str | None, out: TextIO | None = None) -> int:
    """`clamfleet help [COMMAND]`: the manual from the parser itself, so it cannot go stale."""
    stream = out or sys.stdout
    parser = build_parser()
    commands = _subparsers(parser)
    if topic is not None:
        stream.write(commands[topic].format_help())
        return 0
    stream.write(parser.format_help())
    for name in COMMANDS:
        title = f"clamfleet {name}"
        stream.write(f"\n{title}\n{'=' * len(title)}\n{commands[name].format_help()}")
    return 0


def _help(args: argparse.Namespace) -> int:
    return print_manual(args.topic)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps no public handle on its subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("clamfleet's parser has no subcommands")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("clamfleet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        error = _leaf(exc)  # a task group's ExceptionGroup of one error: that error
        if isinstance(error, ConfigError):
            print(f"clamfleet: error: {error.render()}", file=sys.stderr)
            return EXIT_INVALID
        if isinstance(error, JournalError):
            # not a bug, but no verdict either: the run stopped (a partial report was written)
            print(
                f"clamfleet: error: {error}; the run stopped without a verdict (the report"
                " holds what had finished); make room, then rerun the same command with"
                " --resume",
                file=sys.stderr,
            )
            return EXIT_INTERNAL
        return _internal_error(args, error)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _internal_error(args: argparse.Namespace, exc: BaseException) -> int:
    """A bug (or an environment no check foresaw): one line, the traceback at debug only."""
    message = " ".join(log.redact_text(str(exc)).split())
    detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    print(
        f"clamfleet: internal error: {detail}; rerun with --log-level debug for the traceback",
        file=sys.stderr,
    )
    # The command may have configured another level (demo forces warning): use the user's.
    log.configure(getattr(args, "log_format", "console"), getattr(args, "log_level", "info"))
    structlog.get_logger("clamfleet").debug("internal_error", exc_info=exc)
    return EXIT_INTERNAL


def _dispatch(args: argparse.Namespace) -> int:
    from orchestrator.cli import commands, demo, history

    handlers = {
        "run": commands.run,
        "validate": commands.validate,
        "merge": commands.merge,
        "simulate": commands.simulate,
        "demo": demo.demo,
        "history": history.history,
        "help": _help,
    }
    return handlers[args.command](args)
