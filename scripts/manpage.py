"""Write clamfleet(1), the manual page, from the argparse definitions (argparse-manpage).

    python scripts/manpage.py            print it
    python scripts/manpage.py --write    update orchestrator/cli/clamfleet.1 (commit the result)

The page is generated from `build_parser()`, the source `clamfleet --help` and `clamfleet help`
print from, and committed; tests/cli/test_manpage.py fails when the committed page is stale.
`pip install .` installs it as share/man/man1/clamfleet.1 (pyproject `data-files`), so the
install needs neither argparse-manpage nor an import of clamfleet at build time.

The help texts go in expanded as `--help` shows them (defaults included), and the epilogs
(exit codes, environment, files; the simulator's fault knobs) become sections of their own,
laid out as written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from argparse_manpage.manpage import Manpage

from orchestrator.cli.helptext import Formatter
from orchestrator.cli.parser import build_parser

PAGE = Path(__file__).resolve().parent.parent / "orchestrator" / "cli" / "clamfleet.1"
#: The epilog's headings -> the sections man-pages(7) names for them.
SECTIONS = {
    "exit codes": "EXIT STATUS",
    "environment": "ENVIRONMENT",
    "files": "FILES",
    "fault knobs": "SIMULATOR FAULT KNOBS",
}


def _roff(text: str) -> str:
    """Plain text as roff: backslashes and hyphens escaped, no line taken for a request."""
    lines = text.replace("\\", "\\e").replace("-", "\\-").splitlines()
    return "\n".join(f"\\&{line}" if line.startswith((".", "'")) else line for line in lines)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _expand_defaults(parser: argparse.ArgumentParser) -> None:
    """Each help text as clamfleet's own Formatter writes it, "(default: ...)" included."""
    formatter = Formatter(parser.prog)
    for action in parser._actions:
        if action.help and action.help != argparse.SUPPRESS:
            action.help = formatter._get_help_string(action)
    for sub in _subparsers(parser).values():
        _expand_defaults(sub)


def _epilog_sections(epilog: str) -> list[tuple[str, str]]:
    """`heading:` blocks of an epilog -> (SECTION, body); the rest goes under NOTES. A heading
    with a remark in parentheses keeps its line at the top of the body."""
    sections: list[tuple[str, str]] = []
    for block in epilog.strip().split("\n\n"):
        head, _, body = block.partition("\n")
        if head.endswith(":") and body:
            title = head[:-1].split(" (")[0]
            name = SECTIONS.get(title, title.upper())
            sections.append((name, f"{head}\n{body}" if "(" in head else body))
        else:
            sections.append(("NOTES", block))
    return sections


def _name_commands(parser: argparse.ArgumentParser) -> None:
    """The group holding the subcommands is COMMANDS, not POSITIONAL ARGUMENTS."""
    for group in parser._action_groups:
        if any(isinstance(a, argparse._SubParsersAction) for a in group._group_actions):
            group.title = "commands"


def manpage() -> str:
    """The page; the same on every machine (argparse wraps usage lines to $COLUMNS)."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"
    try:
        return _manpage()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _manpage() -> str:
    parser = build_parser()
    _expand_defaults(parser)
    _name_commands(parser)
    commands = _subparsers(parser)
    epilog, parser.epilog = parser.epilog or "", None
    knobs = commands["simulate"].epilog or ""
    page = Manpage(parser)
    page.description = (parser.description or "").rstrip(".")
    page.date = ""  # the page changes with the parser, not with the day it was generated
    page.source = "clamfleet"
    page.manual = "clamfleet manual"
    text = str(page).rstrip("\n")
    extra = [*_epilog_sections(epilog), *_epilog_sections(knobs)]
    for name, body in extra:
        text += f"\n.SH {name}\n.nf\n{_roff(body)}\n.fi"
    return text + "\n"


def main(argv: list[str]) -> int:
    text = manpage()
    if argv[1:] == ["--write"]:
        PAGE.write_text(text, encoding="utf-8")
        print(f"wrote {PAGE}")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
