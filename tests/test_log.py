"""Secret redaction in the logging pipeline."""

from __future__ import annotations

import io
import json
import sys

import pytest
import stamina
import structlog

from orchestrator import log

CANARY = "CANARY-LOG-TOKEN-77aa"


def test_registered_secrets_and_credential_keys_never_reach_the_output() -> None:
    stream = io.StringIO()
    log.configure("json", "debug", stream=stream)
    log.register_secret(CANARY)
    logger = structlog.get_logger("t")
    logger.info(
        "x.event",
        url=f"https://h/?t={CANARY}",
        nested={"a": [CANARY]},
        authorization="whm root:abc",
    )
    try:
        raise RuntimeError(f"failed with {CANARY}")
    except RuntimeError:
        logger.exception("x.failed")
    out = stream.getvalue()
    assert CANARY not in out
    assert "whm root:abc" not in out
    first = json.loads(out.splitlines()[0])
    assert first["authorization"] == log.MASK
    assert first["url"] == f"https://h/?t={log.MASK}"


def test_console_format_redacts_too() -> None:
    stream = io.StringIO()
    log.configure("console", "info", stream=stream)
    log.register_secret(CANARY)
    structlog.get_logger("t").warning("x", detail=CANARY)
    assert CANARY not in stream.getvalue()
    assert "x" in stream.getvalue()


def test_default_stream_is_whatever_stderr_is_when_a_line_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stderr replaced after configure() (and the old one closed) still gets the lines."""
    log.configure("json", "info")
    replaced = io.StringIO()
    monkeypatch.setattr(sys, "stderr", replaced)
    structlog.get_logger("t").info("late.event")
    assert json.loads(replaced.getvalue())["event"] == "late.event"


def test_retries_are_one_redacted_debug_line_each() -> None:
    stream = io.StringIO()
    log.configure("json", "debug", stream=stream)
    log.register_secret(CANARY)
    calls = 0
    for attempt in stamina.retry_context(on=ValueError, attempts=2, wait_initial=0, wait_max=0):
        with attempt:
            calls += 1
            if calls == 1:
                raise ValueError(f"503 from a server, token {CANARY}")
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert line["event"] == "request.retry" and line["level"] == "debug"
    assert line["attempt"] == 1
    assert CANARY not in line["error"] and "503" in line["error"]
