"""The docs stand alone: what the package cites is in the repository, and README says what the
exit codes and the report's fields mean."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator import model

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text("utf-8")
PACKAGE_FILES = sorted(
    p for p in (ROOT / "orchestrator").rglob("*") if p.suffix in (".py", ".json", ".md")
)


def readme_section(title: str) -> str:
    match = re.search(rf"^(#+) {re.escape(title)}.*?$(.*?)(?=^#{{1,2}} |\Z)", README, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(2)


def test_the_package_cites_no_document_outside_the_repository() -> None:
    for path in PACKAGE_FILES:
        assert "design.md" not in path.read_text("utf-8"), path.relative_to(ROOT)


def test_every_readme_section_the_package_cites_exists() -> None:
    headings = [h.strip() for h in re.findall(r"^#+ (.+)$", README, re.M)]
    cited = {
        (path.relative_to(ROOT), title)
        for path in PACKAGE_FILES
        for title in re.findall(r'README \\?"([^"\\]+)\\?"', path.read_text("utf-8"))
    }
    assert len(cited) >= 5
    for where, title in cited:
        assert any(h.startswith(title) for h in headings), f"{where}: README {title!r}"


def test_readme_exit_code_table_lists_every_code_the_cli_returns() -> None:
    table = readme_section("Exit codes")
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", table, re.M))
    codes = {model.EXIT_CLEAN, model.EXIT_INFECTED, model.EXIT_INCOMPLETE, model.EXIT_INVALID}
    assert {int(c) for c in rows} == codes | {model.EXIT_INTERNAL}
    assert "internal error" in rows[str(model.EXIT_INTERNAL)]


def test_readme_says_what_api_calls_counts() -> None:
    report = readme_section("Report")
    assert "`api_calls`" in report
    for word in ("retries", "listaccts", "create_user_session"):
        assert word in report, word
