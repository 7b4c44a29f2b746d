"""Secret redaction in the logging pipeline."""

from __future__ import annotations

import io
import json

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
