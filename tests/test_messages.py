"""What a user reads is in their words: no internal phase name in an error ("run interrupted
during foreign"), and no doubled word ("the the") in any message clamfleet can print."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator import workflow
from orchestrator.engine.driver import _interrupted
from orchestrator.model import ErrorKind, ScanType, Target
from orchestrator.report import build_report
from orchestrator.report.attention import attention, attention_lines, follow_up
from orchestrator.report.html import report_html
from orchestrator.workflow import Phase
from tests.report.test_attention import night
from tests.report.test_report import sample_run

PACKAGE = Path(__file__).resolve().parent.parent / "orchestrator"
DOUBLED = re.compile(r"\b([A-Za-z]{2,})\s+\1\b", re.IGNORECASE)
#: Our names for phases that are no words a user would know.
JARGON = re.compile(r"\b(precheck|foreign|verify_start|settling|phase|during)\b")


@pytest.mark.parametrize("phase", list(Phase), ids=str)
def test_an_interrupted_target_says_what_it_was_doing_in_words(phase: Phase) -> None:
    target = Target("web01", "alice", ScanType.HOME)
    state = workflow.State(target=target, cfg=workflow.WorkflowConfig(), phase=phase)
    error = _interrupted(state, datetime.now(UTC)).error
    assert error is not None
    assert error.kind is ErrorKind.INTERRUPTED
    assert error.message == f"run interrupted {workflow.doing(phase)}"
    assert not JARGON.search(error.message), error.message
    assert "_" not in error.message and not DOUBLED.search(error.message)


def test_a_run_interrupted_while_someone_elses_scan_ran_says_so() -> None:
    assert workflow.doing(Phase.FOREIGN) == (
        "while waiting for a scan that someone else started on the account"
    )


def _string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module but its docstrings (messages, help, templates)."""
    tree = ast.parse(path.read_text("utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_message_in_the_code_doubles_a_word() -> None:
    doubled = [
        f"{path.relative_to(PACKAGE)}:{line}: {text!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, text in _string_literals(path)
        if DOUBLED.search(text)
    ]
    assert doubled == []


def test_the_attention_section_doubles_no_word() -> None:
    report = build_report(sample_run(id="7f3a9c"), night())
    items = attention(report)
    text = "\n".join(attention_lines(items, follow_up(report, "/r/report.json")))
    assert not DOUBLED.search(text), DOUBLED.search(text)
    page = re.sub(r"<[^>]+>", " | ", report_html(report, "/r/report.json"))  # cells apart
    assert not DOUBLED.search(page), DOUBLED.search(page)
