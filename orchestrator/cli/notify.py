"""The run's webhook: where its URL comes from, and when a summary is posted.

The URL is a secret (it usually embeds a token): it is only ever named by an environment
variable, registered with the log redactor, and posted through the client's one HTTP boundary
(`client.post_webhook`, the only aiohttp user). A failed post is a warning, never a verdict.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from orchestrator.errors import ConfigError
from orchestrator.report import Report, notification_payload, should_notify
from orchestrator.secretref import env_var_phrase

logger = structlog.get_logger("clamfleet")


def webhook_url(env_var: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """`--notify-webhook VAR`: the URL held by VAR (never a URL given on the command line)."""
    if env_var is None:
        return None
    if "://" in env_var:
        raise ConfigError(
            "webhook URLs carry secrets: put the URL in an environment variable and pass its name",
            field="--notify-webhook",
        )
    url = environ.get(env_var.removeprefix("env:"), "")
    if not url:
        # The name is shown only if it looks like one: the URL itself may have been pasted.
        message = f"{env_var_phrase(env_var.removeprefix('env:'))} is not set"
        raise ConfigError(message, field="--notify-webhook")
    return url


def notify(url: str, report: Report, mode: str, run: Callable[..., Any]) -> None:
    """Post the run's one-line summary when `mode` says so (`run`: how to run a coroutine)."""
    from orchestrator.client import post_webhook

    if not should_notify(report, mode):
        return
    error = run(post_webhook, url, notification_payload(report))
    if error:
        logger.warning("notify.failed", error=error)
