"""errors.py's docstring is the map of every failure a user can meet: every error class is drawn
in its tree and says when it is raised, and every error kind of the report is accounted for,
either as an exception's kind or as a verdict the pure code returns."""

from __future__ import annotations

import inspect
import re

import pytest

from orchestrator import errors
from orchestrator.model import ErrorKind

TREE = errors.__doc__ or ""


def error_classes() -> list[type[errors.ClamfleetError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ClamfleetError) and cls.__module__ == errors.__name__
    ]


def drawn_parent(name: str) -> str | None:
    """The class drawn one level above `name` in the docstring's tree (None for the root)."""
    lines = [line for line in TREE.splitlines() if re.search(r"[├└]── |^    \w", line)]
    depth = {}
    parent: dict[str, str | None] = {}
    for line in lines:
        match = re.match(r"^(\s*(?:[│ ]   )*)(?:[├└]── )?(\w+)", line)
        if match is None:
            continue
        level = len(match.group(1)) // 4 + ("── " in line)
        depth[level] = match.group(2)
        parent[match.group(2)] = depth.get(level - 1) if level > 1 else None
    return parent.get(name, "<not drawn>")


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_is_drawn_under_its_base_in_the_tree(cls: type) -> None:
    base = cls.__bases__[0]
    expected = None if base is Exception else base.__name__
    assert drawn_parent(cls.__name__) == expected


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_says_in_one_line_when_it_is_raised(cls: type) -> None:
    doc = cls.__doc__ or ""
    assert "\n" not in doc.strip(), f"{cls.__name__}: a one-line docstring"
    assert re.search(r"\braised\b", doc, re.IGNORECASE), f"{cls.__name__}: says when raised"


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_the_tree_shows_each_target_errors_report_kind(cls: type) -> None:
    if not issubclass(cls, errors.TargetError):
        return
    line = next(line for line in TREE.splitlines() if re.search(rf"\b{cls.__name__}\b", line))
    assert line.rstrip().endswith(f"kind={cls.kind}"), line


def test_every_report_error_kind_is_either_raised_or_named_as_a_returned_verdict() -> None:
    raised = {str(cls.kind) for cls in error_classes() if issubclass(cls, errors.TargetError)}
    verdicts = set(re.findall(r"^    ([a-z_]+)\s{2,}\w", TREE, re.MULTILINE))
    assert {str(kind) for kind in ErrorKind} <= raised | verdicts
    assert verdicts <= {str(kind) for kind in ErrorKind}, "a verdict the report does not know"


def test_the_usage_error_outside_the_tree_is_named_with_its_exit_code() -> None:
    assert "cli.UsageError" in TREE
    assert re.search(r"UsageError[^.]*exit 3", TREE, re.DOTALL)
