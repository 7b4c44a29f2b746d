"""The long parts of `clamfleet --help` and `clamfleet help`: exit codes, environment, files, and
the simulator's fault knobs, the latter generated from `Faults` so the help cannot go stale."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import textwrap
from typing import Any

EPILOG = """\
exit codes (run, merge; validate --check-connectivity / --check-api: 0 or 2; history: 0 or 3):
  0   every target scanned, no infected file found
  1   at least one infected file found (wins over 2; the report also lists failures)
  2   no infection found, but some target could not be fully scanned
  3   invalid invocation, inventory or policy: nothing was scanned
  70  internal error (a bug): never 0-3, so no crash reads as a verdict

environment:
  the variables the inventory names   token_env / password_env: WHM_TOKEN, ALICE_TOKEN, ...
                                      (read by run and validate --check-connectivity /
                                      --check-api only)
  the variable --notify-webhook names the webhook URL (never the URL on the command line)
  the variables --notify / settings.notify name   Apprise URLs (mailto://..., slack://...)
  JOB_COMPLETION_INDEX                --shard auto/N in a Kubernetes Indexed Job (0-based)
  CI_NODE_INDEX, CI_NODE_TOTAL        --shard auto/N in a GitLab parallel job (1-based);
                                      without --shard they are ignored (a warning is logged)

files:
  INVENTORY (YAML)      servers, auth references, limits: inventory.example.yaml
  --policy FILE (YAML)  what to ask cPanel to do with infected files: policy.example.yaml
  --out DIR             report.json, targets.csv, infected.csv (+ --format ...)
  --journal FILE        SQLite progress for --resume
  --history FILE        SQLite history of every night: first-seen dates, per-target delta,
                        trends; `clamfleet history` lists and prunes it
  --log-file PATH       every log event as JSON lines, appended (with --quiet: all of them)

`clamfleet help` prints this manual with every subcommand's options; so does `man clamfleet`.
"""

_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+)$")


def fault_knobs(faults: type[Any]) -> str:
    """One line per field of the `Faults` dataclass: name, type, default and its comment."""
    comments = _field_comments(faults)
    lines = []
    for f in dataclasses.fields(faults):
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        kind = _kind(default)
        shown = "unset" if default is None else "none" if default in (frozenset(), "") else default
        shown = str(shown).lower() if isinstance(shown, bool) else shown
        text = f"  {f.name}={kind} (default: {shown})"
        if f.name in comments:
            text += f": {comments[f.name]}"
        lines.append(textwrap.fill(text, 94, subsequent_indent="      "))
    return "fault knobs (--fault SERVER:KNOB=VALUE, repeatable):\n" + "\n".join(lines)


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true|false"
    if isinstance(default, int):
        return "N"
    if isinstance(default, float):
        return "X.Y"
    if isinstance(default, str):
        return "WORD"
    return "A,B,..."  # frozenset knobs (account or function names), comma-separated


def _field_comments(cls: type[Any]) -> dict[str, str]:
    """The `# ...` comment after each field, when the source is available (not in a zipapp)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    found = {}
    for line in source.splitlines():
        match = _COMMENT.match(line)
        if match:
            found[match[1]] = match[2].strip()
    return found


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown for every option; the epilog's layout kept; None/False defaults only when
    the help text says what they mean (`(default: ...)` written out)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        # Identity, not ==: 0 and 0.0 are real defaults to show, only None/False mean "unset".
        unset = action.default is None or action.default is False
        if "(default:" in text or unset or action.default == argparse.SUPPRESS:
            return text
        if not action.option_strings:
            return text
        return text + " (default: %(default)s)"
