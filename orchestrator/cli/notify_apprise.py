"""Notifications through Apprise: `--notify URL_ENV` (with `--notify-on`) and `settings.notify`.

An Apprise URL holds credentials (an SMTP password, a bot token), so it is only ever read from
the environment variable named on the command line or in the inventory, before the first
request (an unset variable, or a URL Apprise cannot use, is exit 3, nothing scanned: Apprise is
then imported at the start); it is registered with the log
redactor, and never logged, printed or put in an error: a notification that fails logs
`notify.failed` with the service's name (Apprise's, or the URL's scheme) and a reason of ours.

What is sent (report/notice.py): email services (`mailto://`, `mailtos://` and Apprise's mail
APIs) get the verdict as subject and the HTML summary (Apprise adds the plain-text part made
from it); every other service gets one short line.

Apprise is imported only by a command that has notifications to send (`clamfleet --help`
stays fast), and it sends synchronously: each notification runs in a thread of its own, after
the report is written, and is given up after NOTIFY_SECONDS; a failure or a hang is a warning,
never a change of the exit code.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from orchestrator import log
from orchestrator.config import NotifySetting
from orchestrator.errors import ConfigError
from orchestrator.report import Report, should_notify
from orchestrator.report.notice import Notice, build_notice
from orchestrator.secretref import NOT_SHOWN, env_var_phrase, is_env_name, shown_env_name

logger = structlog.get_logger("clamfleet")

NOTIFY_SECONDS = 60.0
#: Apprise's mail services besides SMTP (NotifyEmail): they get the HTML summary too.
EMAIL_APIS = frozenset(
    {
        "NotifySendGrid",
        "NotifyMailgun",
        "NotifySES",
        "NotifyOffice365",
        "NotifySparkPost",
        "NotifyPostmark",
        "NotifySMTP2Go",
        "NotifyBrevo",
        "NotifyResend",
        "NotifyMailerSend",
        "NotifySendPulse",
    }
)


@dataclass(frozen=True, slots=True)
class Notifier:
    """Where one notification goes: the variable's name, when, and the URL (never shown)."""

    env: str
    on: str
    url: str = field(repr=False)

    @property
    def scheme(self) -> str:
        head = self.url.split("://", 1)[0] if "://" in self.url else ""
        return head if head.isalnum() and len(head) <= 20 else "unknown"


def notifiers(
    cli: Sequence[str] | None,
    cli_on: str,
    settings: Sequence[NotifySetting] = (),
    environ: Mapping[str, str] = os.environ,
) -> list[Notifier]:
    """`--notify VAR` (each with `--notify-on`) and `settings.notify`, their URLs read now and
    checked with Apprise (a URL it cannot use is exit 3 now, not a silent morning)."""
    found = [Notifier(name, cli_on, _from_cli(name, environ)) for name in cli or ()]
    where: list[dict[str, Any]] = [{"field": "--notify"} for _ in found]
    for s in settings:
        found.append(Notifier(s.url_env, str(s.on), _from_setting(s, environ)))
        where.append({"file": s.file, "line": s.line, "field": s.key_path})
    for n, at in zip(found, where, strict=True):
        log.register_secret(n.url)
        password = _password(n.url)
        if password:
            log.register_secret(password)
        if not _usable(n.url):
            message = (
                f"the URL in {env_var_phrase(n.env)} is not one Apprise can use (see Apprise's"
                f" URL syntax; {NOT_SHOWN})"
            )
            raise ConfigError(message, **at)
    return found


def _usable(url: str) -> bool:
    import apprise

    _quiet_apprise()
    return bool(apprise.Apprise.instantiate(url))


def _quiet_apprise() -> None:
    """Apprise's own log lines may name hosts, users or (at debug) more: ours say what failed.
    Silenced for good, not restored: a notification given up on may still log later."""
    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _from_cli(name: str, environ: Mapping[str, str]) -> str:
    if "://" in name:
        raise ConfigError(
            "Apprise URLs carry secrets: put the URL in an environment variable and pass its name",
            field="--notify",
        )
    if not is_env_name(name):
        raise ConfigError(
            f"is not a valid environment variable name ({NOT_SHOWN})", field="--notify"
        )
    url = environ.get(name, "")
    if not url:
        raise ConfigError(f"{env_var_phrase(name)} is not set", field="--notify")
    return url


def _from_setting(setting: NotifySetting, environ: Mapping[str, str]) -> str:
    url = environ.get(setting.url_env, "")
    if not url:
        raise ConfigError(
            f"{env_var_phrase(setting.url_env)} is not set",
            file=setting.file,
            line=setting.line,
            field=setting.key_path,
        )
    return url


def report_location(paths: Sequence[Path]) -> str | None:
    """report.html if it was written, else report.json: the absolute path a reader can open."""
    by_name = {p.name: p for p in paths}
    chosen = by_name.get("report.html") or by_name.get("report.json")
    return None if chosen is None else str(chosen.absolute())


def send_all(report: Report, paths: Sequence[Path], targets: Sequence[Notifier]) -> None:
    """Send the notifications `targets` ask for; each failure is logged, none is raised."""
    seconds = NOTIFY_SECONDS
    wanted = [n for n in targets if should_notify(report, n.on)]
    if not wanted:
        return
    notice = build_notice(report, report_location(paths))
    _quiet_apprise()
    for n in wanted:
        service, error = _deliver_within(n, notice, seconds)
        variable = shown_env_name(n.env)
        if error is None:
            logger.info("notify.sent", service=service, on=n.on, variable=variable)
        else:
            logger.warning(
                "notify.failed", service=service, on=n.on, variable=variable, reason=error
            )


def _deliver_within(n: Notifier, notice: Notice, seconds: float) -> tuple[str, str | None]:
    """Deliver in a daemon thread; after `seconds` it is given up (and left to die with us)."""
    outcome: dict[str, tuple[str, str | None]] = {}

    def work() -> None:
        try:
            outcome["done"] = _deliver(n, notice)
        except Exception as exc:  # Apprise's and its plugins' own failures: never ours to raise
            outcome["done"] = (n.scheme, f"{type(exc).__name__} while sending")

    thread = threading.Thread(target=work, name="clamfleet-notify", daemon=True)
    thread.start()
    thread.join(seconds)
    if "done" not in outcome:
        return n.scheme, f"no answer within {seconds:g} s"
    return outcome["done"]


def _deliver(n: Notifier, notice: Notice) -> tuple[str, str | None]:
    import apprise
    from apprise.plugins.email import NotifyEmail

    plugin: Any = apprise.Apprise.instantiate(n.url)
    if not plugin:
        return n.scheme, "not a URL Apprise can use (see Apprise's URL syntax)"
    service = str(getattr(plugin, "service_name", "") or n.scheme)
    if isinstance(plugin, NotifyEmail) or type(plugin).__name__ in EMAIL_APIS:
        sent = plugin.notify(
            body=notice.html, title=notice.subject, body_format=apprise.NotifyFormat.HTML
        )
    else:
        sent = plugin.notify(body=notice.short, title="", body_format=apprise.NotifyFormat.TEXT)
    return service, None if sent else "the service did not take the notification"
