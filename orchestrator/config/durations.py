"""Durations, one syntax everywhere (inventory keys, `--max-duration`, `--finish-by +D`):
`6h`, `90m`, `45s`, `1h30m`, `1h30m15s`, or plain seconds (`5400`, `2.5`). Pure."""

from __future__ import annotations

import math
import re

#: h, m and s in that order, each at most once, at least one; each part a whole or decimal number
_DURATION = re.compile(
    r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?"
)
_PLAIN = re.compile(r"\d+(?:\.\d+)?")
SYNTAX = "a duration such as 6h, 90m, 45s, 1h30m, or plain seconds"


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError (naming the syntax) for anything else, zero included."""
    value = text.strip().lower()
    if _PLAIN.fullmatch(value):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(value)
        if not value or match is None or not any(match.groupdict().values()):
            raise ValueError(f"{text!r} is not {SYNTAX}")
        parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
        seconds = parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r} is not {SYNTAX} greater than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """`5400` -> `1h30m`, `45` -> `45s`, `0.5` -> `0.5s`: what a person would write back."""
    if seconds < 60:
        return f"{seconds:g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"
