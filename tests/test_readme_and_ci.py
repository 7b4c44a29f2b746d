"""What a newcomer reads is what the code does: README's setup and CI, its sections and synopsis,
and every clamfleet (and bench) command line written in deploy/, the READMEs and RESULTS.md.
"""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli.commands import parse_formats
from orchestrator.cli.parser import UsageError, build_parser
from orchestrator.engine.shard import parse_shard

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BENCH = ROOT / "bench"
SUBCOMMANDS = ("run", "merge", "validate", "simulate", "demo", "history")


# ---------------------------------------------------------------------------------------------
# Setup: the README's two commands, CI running the test one verbatim, one CLI entry


def readme_setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    assert len(sections) > 1, "README has a first `##` section"
    first = sections[1]
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", first, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_gives_exactly_two_setup_commands_and_ci_runs_the_test_one_verbatim() -> None:
    commands = readme_setup_commands()
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "pip install" in demo and demo.endswith("clamfleet demo")
    assert "pip install" in tests and "[test]" in tests and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines(), ".ci/run runs the README's test command as written"
    for tool in ("ruff", "mypy", "lint-imports"):
        checks = ci + (ROOT / "scripts" / "check").read_text()
        assert tool in checks, f".ci/run runs {tool}"
    mypy = re.search(
        r"^\[tool\.mypy\]\n(.*?)^\[", (ROOT / "pyproject.toml").read_text(), re.M | re.S
    )
    assert mypy is not None and "strict = true" in mypy.group(1), "mypy runs --strict"


def test_console_script_and_python_m_are_the_same_cli() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^clamfleet = "orchestrator\.cli:main"$', pyproject, re.MULTILINE)
    assert re.search(r'^requires-python = ">=3\.11"$', pyproject, re.MULTILINE)
    script = Path(sys.executable).parent / "clamfleet"
    by_script = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    by_module = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert by_script.returncode == by_module.returncode == 0
    assert by_script.stdout == by_module.stdout
    assert by_script.stdout.startswith("clamfleet ")


# ---------------------------------------------------------------------------------------------
# README: the sections an operator needs, and a synopsis that matches the parser


def readme() -> str:
    return (ROOT / "README.md").read_text("utf-8")


def test_readme_has_nightly_ci_reading_and_troubleshooting_sections() -> None:
    text = readme()
    headings = [h.lower() for h in re.findall(r"^#+ (.+)$", text, flags=re.M)]
    for wanted in ("nightly", "exit codes", "report", "troubleshooting"):
        assert any(wanted in h for h in headings), f"no README section about {wanted}"
    table = re.findall(r"^\| ([0-9]) \|", text, flags=re.M)
    assert table == ["0", "1", "2", "3"]
    trouble = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    for topic in ("auth", "cPHulk", "tls", "stalled"):
        assert topic in trouble, topic
    assert "Reading it" in text or "reading the report" in text.lower()


def _parser_flags() -> dict[str, set[str]]:
    import argparse

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {
        name: {o for a in p._actions for o in a.option_strings if o.startswith("--")} - {"--help"}
        for name, p in sub.choices.items()
    }


def _readme_synopsis() -> dict[str, set[str]]:
    block = readme().split("## Commands", 1)[1].split("```", 2)[1]
    flags: dict[str, set[str]] = {}
    current = ""
    for line in block.splitlines():
        match = re.match(r"clamfleet (\w+)", line)
        if match:
            current = match.group(1)
        if current:
            flags.setdefault(current, set()).update(re.findall(r"--[a-z][a-z-]*", line))
    return flags


def test_readme_synopsis_flags_exist_and_run_and_merge_are_complete() -> None:
    documented, actual = _readme_synopsis(), _parser_flags()
    assert set(documented) == set(actual)
    for command, flags in documented.items():
        assert flags <= actual[command], f"{command}: README documents {flags - actual[command]}"
    for command in ("run", "merge"):
        assert documented[command] == actual[command], command


# ---------------------------------------------------------------------------------------------
# The module map in README's Development section matches the package


def module_map() -> dict[str, str]:
    """README's map: path relative to orchestrator/ (e.g. `report/html.py`) -> its line."""
    block = readme().split("## Development", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    package = ""
    for line in block.splitlines():
        match = re.match(r"^( +)(\S+)\s*(.*)$", line)
        if not match:
            continue
        indent, name, text = len(match.group(1)), match.group(2), match.group(3)
        if name.endswith("/"):
            package = name
        elif name.endswith(".py"):
            entries[(package if indent > 2 else "") + name] = text
    return entries


def test_the_readme_module_map_lists_every_module_once_and_no_module_that_is_gone() -> None:
    documented = module_map()
    package = ROOT / "orchestrator"
    actual = {
        str(path.relative_to(package))
        for folder in (package, *(p for p in package.iterdir() if (p / "__init__.py").exists()))
        for path in folder.glob("*.py")
    }
    assert sorted(actual - set(documented)) == [], "modules missing from README's module map"
    gone = {m for m, text in documented.items() if m not in actual and "(landing)" not in text}
    assert gone == set(), "README's module map lists modules that do not exist"
    assert all(text.strip() for text in documented.values()), "every module gets one line"
    landed = {m for m, text in documented.items() if "(landing)" in text and m in actual}
    assert landed == set(), "these modules have landed: drop their `(landing)` in README"


# ---------------------------------------------------------------------------------------------
# Every clamfleet command line written in deploy/ and the READMEs is one the CLI accepts


def _after(tokens: list[str], marker: str) -> list[str]:
    return tokens[tokens.index(marker) + 1 :]


def _until_shell_operator(tokens: list[str]) -> list[str]:
    for i, token in enumerate(tokens):
        if token in ("||", "&&", "|", ";") or token.endswith(";"):
            return tokens[:i] + ([token[:-1]] if token.endswith(";") and token != ";" else [])
    return tokens


def _cronjob() -> dict[str, Any]:
    docs = yaml.safe_load_all((DEPLOY / "kubernetes" / "cronjob.yaml").read_text())
    cronjobs: list[dict[str, Any]] = [d for d in docs if d and d["kind"] == "CronJob"]
    (cronjob,) = cronjobs
    return cronjob


def documented_command_lines() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    cronjob = _cronjob()
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    found.append(("kubernetes cronjob args", list(container["args"])))
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    scripts = next(
        d
        for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "configmap-scripts.yaml").read_text())
        if d
    )
    shard_sh = scripts["data"]["shard.sh"]
    (merge_line,) = [ln for ln in shard_sh.splitlines() if "clamfleet_bg merge" in ln]
    default = re.search(r'MERGE_FORMATS="\$\{MERGE_FORMATS:-([^}]*)\}"', shard_sh)
    assert default is not None
    for formats in (env["MERGE_FORMATS"], default.group(1)):
        argv = _after(shlex.split(merge_line), "clamfleet_bg")
        argv = [{"$@": "shard-1/report.json", "$MERGE_FORMATS": formats}.get(a, a) for a in argv]
        found.append(("shard.sh merge", argv))

    service = (DEPLOY / "systemd" / "clamfleet.service").read_text().replace("\\\n", " ")
    (exec_start,) = [ln for ln in service.splitlines() if ln.startswith("ExecStart=")]
    segment = next(s for s in exec_start.split(";") if "/opt/clamfleet/bin/clamfleet" in s)
    found.append(
        ("systemd ExecStart", _after(shlex.split(segment), "/opt/clamfleet/bin/clamfleet"))
    )

    gitlab = yaml.safe_load((DEPLOY / "ci" / "gitlab-ci.yml").read_text())
    for job in ("scan", "merge"):
        for line in gitlab[job]["script"]:
            tokens = shlex.split(line)
            if "clamfleet" in tokens:
                found.append((f"gitlab {job}", _until_shell_operator(_after(tokens, "clamfleet"))))

    github = yaml.safe_load((DEPLOY / "ci" / "github-actions.yml").read_text())
    for name, job in github["jobs"].items():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                if "docker run" in line:
                    argv = _after(shlex.split(line), "$CLAMFLEET_IMAGE")
                    found.append((f"github {name}", [a.replace("$SHARD", "1") for a in argv]))

    deploy_readme = (DEPLOY / "README.md").read_text().replace("\\\n", " ")
    for line in deploy_readme.splitlines():
        if line.startswith("docker run "):
            found.append(("deploy/README docker run", _after(shlex.split(line), _image(line))))
    for source in (deploy_readme, (ROOT / "README.md").read_text()):
        for span in re.findall(r"`([^`\n]*\bclamfleet [a-z]+\b[^`\n]*)`", source):
            tokens = shlex.split(span.replace("$?", ""))
            starts = [
                i
                for i, t in enumerate(tokens[:-1])
                if t.endswith("clamfleet") and tokens[i + 1] in SUBCOMMANDS
            ]
            argv = _until_shell_operator(tokens[starts[0] + 1 :]) if starts else []
            if len(argv) > 1 and not argv[1].startswith("-"):  # a whole line, not a fragment
                found.append((f"README: {span}", argv))
    return found


def _image(line: str) -> str:
    return next(t for t in shlex.split(line) if t.startswith("ghcr.io/"))


def test_every_documented_clamfleet_command_line_is_accepted_by_the_cli() -> None:
    lines = documented_command_lines()
    where = {w.split(":")[0] for w, _ in lines}
    assert {"kubernetes cronjob args", "shard.sh merge", "systemd ExecStart"} <= where
    assert {"gitlab scan", "gitlab merge", "github scan", "github merge"} <= where
    parser = build_parser()
    for source, argv in lines:
        try:
            args = parser.parse_args(argv)
        except UsageError as exc:
            pytest.fail(f"{source}: {shlex.join(argv)}: {exc}")
        if getattr(args, "formats", None):
            parse_formats(args.formats)  # a ConfigError names the unknown format
        shard = getattr(args, "shard", None)
        if shard and re.fullmatch(r"(\d+|auto)/\d+", shard):
            parse_shard(shard)


# ---------------------------------------------------------------------------------------------
# The benchmark's documented commands


def bench_commands(path: Path) -> list[list[str]]:
    """The arguments of every `bench/run.py` command written in a Markdown file."""
    found = []
    for line in path.read_text("utf-8").splitlines():
        if "bench/run.py" not in line:
            continue
        spans = re.findall(r"`([^`]*bench/run\.py[^`]*)`", line)
        for text in spans or [line.split("#", 1)[0]]:
            tokens = shlex.split(text)
            at = [i for i, t in enumerate(tokens) if t.endswith("bench/run.py")]
            if at and tokens[at[0] + 1 :]:
                found.append(tokens[at[0] + 1 :])
    return found


def check_bench_command(argv: list[str]) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        run = importlib.import_module("run")
    finally:
        sys.path.remove(str(BENCH))
    try:
        run.build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"bench/run.py refuses {shlex.join(argv)}")


def test_the_bench_commands_in_the_readmes_parse() -> None:
    found = bench_commands(BENCH / "README.md") + bench_commands(ROOT / "README.md")
    assert any("quick" in argv for argv in found), "the smoke command is documented"
    for argv in found:
        check_bench_command(argv)


def test_the_commands_recorded_in_results_md_still_parse() -> None:
    found = bench_commands(BENCH / "RESULTS.md")
    assert found
    for argv in found:
        check_bench_command(argv)


def test_results_md_says_met_or_not_met_for_every_benchmark_target() -> None:
    text = (BENCH / "RESULTS.md").read_text("utf-8")
    section = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("|") and "---" not in r][1:]
    wanted = {
        "complete": r"10,000 targets",
        "rss": r"RSS",
        "cpu": r"CPU",
        "wall": r"wall time",
        "calls": r"API calls per target",
    }
    for name, pattern in wanted.items():
        (row,) = [r for r in rows if re.search(pattern, r, flags=re.I)] or [""]
        assert row, f"RESULTS.md's targets table has no row for {name}"
        assert re.search(r"\b(met|not met)\b", row), row
