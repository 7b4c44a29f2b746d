"""clamfleet(1): generated from the parser (the one source `--help` and `clamfleet help` print
from), committed, installed by `pip install .` into share/man/man1, and never stale."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType

from orchestrator.cli.parser import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent.parent
PAGE = ROOT / "orchestrator" / "cli" / "clamfleet.1"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("manpage", ROOT / "scripts" / "manpage.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_page_is_what_the_parser_generates_now() -> None:
    assert generator().manpage() == PAGE.read_text("utf-8"), (
        "clamfleet.1 is stale: run `python scripts/manpage.py --write` and commit the page"
    )


def test_the_page_names_every_command_and_option_with_its_default() -> None:
    page = PAGE.read_text("utf-8")
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name in COMMANDS:
        assert f".SH COMMAND \\fI\\,'clamfleet {name}'\\/\\fR" in page, name
        for action in sub.choices[name]._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag.replace("-", "\\-") in page, f"{name} {flag}"
    assert "report directory (default: clamfleet\\-report)" in page
    for section in ("EXIT STATUS", "ENVIRONMENT", "FILES", "SIMULATOR FAULT KNOBS"):
        assert f"\n.SH {section}\n" in page, section


def test_pip_install_puts_the_page_where_man_finds_it() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    data_files = pyproject["tool"]["setuptools"]["data-files"]
    assert data_files["share/man/man1"] == [str(PAGE.relative_to(ROOT))]
    assert re.match(r'\.TH CLAMFLEET "1" ', PAGE.read_text("utf-8"))


def test_groff_reads_the_page_without_a_warning() -> None:
    groff = shutil.which("groff")
    if groff is None:
        return  # the layout is still checked by the tests above
    done = subprocess.run(
        [groff, "-man", "-ww", "-z", str(PAGE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
