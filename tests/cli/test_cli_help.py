"""The command line explains itself: every option with help and default, the fault knobs, the
exit codes and environment, and usage errors that show the usage and exit 3."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

import pytest

from orchestrator.cli.helptext import Formatter
from orchestrator.cli.parser import COMMANDS, build_parser, main
from orchestrator.simulator import Faults


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_that_shows_its_default(command: str) -> None:
    parser = subparsers()[command]
    formatter = Formatter(parser.prog)
    shown = flat(parser.format_help())
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help, f"{command} {name} has no help text"
        if action.option_strings and not action.required:
            help_string = formatter._get_help_string(action) or ""
            assert "(default:" in help_string, f"{command} {name} does not show its default"
            # What --help prints is the expanded text, e.g. "(default: clamfleet-report)".
            expanded = flat(help_string % {**vars(action), "prog": parser.prog})
            assert expanded in shown, f"{command} {name}"


def test_simulate_help_lists_every_fault_knob_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for field in dataclasses.fields(Faults):
        assert re.search(rf"^  {field.name}=\S+ \(default: ", text, re.MULTILINE), field.name
    assert "status_5xx_every=N (default: 0): answer 500, 502, 503 in turn" in text


@pytest.mark.parametrize(
    ("argv", "usage", "message"),
    [
        (["run"], "usage: clamfleet run ", "the following arguments are required: INVENTORY"),
        (["bogus"], "usage: clamfleet ", "invalid choice: 'bogus'"),
        ([], "usage: clamfleet ", "the following arguments are required: COMMAND"),
        (["merge", "r.json"], "usage: clamfleet merge ", "required: --out"),
        (["simulate", "--servers", "x"], "usage: clamfleet simulate ", "invalid int value"),
    ],
)
def test_a_usage_error_prints_the_usage_line_and_exits_3(
    capsys: pytest.CaptureFixture[str], argv: list[str], usage: str, message: str
) -> None:
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.startswith(usage)
    last = err.strip().splitlines()[-1]
    assert last.startswith("clamfleet") and ": error: " in last and message in last


def test_help_documents_exit_codes_environment_and_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for code in ("0", "1", "2", "3", "70"):
        assert re.search(rf"^  {code} +\S", text, re.MULTILINE), code
    for word in ("JOB_COMPLETION_INDEX", "CI_NODE_INDEX", "token_env", "--notify-webhook"):
        assert word in text
    assert "report.json" in text and "--journal FILE" in text


def test_clamfleet_help_prints_the_whole_manual_or_one_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["help"]) == 0
    manual = capsys.readouterr().out
    for command in COMMANDS:
        assert f"usage: clamfleet {command} " in manual
    assert "exit codes" in manual and "fault knobs" in manual
    assert main(["help", "validate"]) == 0
    one = capsys.readouterr().out
    assert one.startswith("usage: clamfleet validate ") and "--check-connectivity" in one


def test_demo_honours_the_log_level(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["demo", "--out", str(tmp_path / "out"), "--log-format", "json", "--log-level", "info"]
    assert main(argv) == 0
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert any(line["level"] == "info" for line in lines)
