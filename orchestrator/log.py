"""structlog configuration: a pipeline of small processors, configured once per process.

Secrets are redacted twice over: values registered with `register_secret` (every token and
password the inventory resolved) are masked wherever they appear in an event, and keys that
name credentials (authorization, token, password, cookie) are masked whatever their value.
Tracebacks are rendered without local variables, which could hold a token.

A second destination, `log_file` (`--log-file`), gets every event as one JSON object per line
(flushed line by line, so a crash loses nothing written), at `level`, while the console may
show less (`console_level`: `--quiet` keeps warnings and errors there).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, TextIO

import stamina
import structlog

MASK = "********"
_SECRET_KEYS = ("authorization", "token", "password", "passwd", "secret", "cookie", "session")
_secrets: set[str] = set()
_DICT_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def register_secret(value: str) -> None:
    """Mask this value in every log event from now on (values shorter than 4 chars are not)."""
    if len(value) >= 4:
        _secrets.add(value)


def register_secrets(values: Iterable[str]) -> None:
    for value in values:
        register_secret(value)


def redact_text(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: MASK if _secret_key(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def _secret_key(key: object) -> bool:
    return isinstance(key, str) and any(word in key.lower() for word in _SECRET_KEYS)


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        event_dict[key] = MASK if _secret_key(key) else _redact(value)
    return event_dict


def _level(name: str | None, default: int = logging.INFO) -> int:
    if name is None:
        return default
    return logging.getLevelNamesMapping().get(name.upper(), default)


def configure(
    fmt: str = "console",
    level: str = "info",
    stream: TextIO | None = None,
    *,
    console_level: str | None = None,
    log_file: TextIO | None = None,
) -> None:
    """Configure structlog (and route stdlib logging through the same redaction).

    `console_level` (default: `level`) may be higher than `level` when `log_file` takes the
    full log in JSON lines while the console shows only warnings (`--quiet`).
    """
    numeric = _level(level)
    console = max(_level(console_level, numeric), numeric)
    lowest = min(numeric, console) if log_file is not None else console
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_file is not None:
        shared.append(_tee_json(log_file, numeric))
    if console > lowest:
        shared.append(_drop_below(console))
    renderer: Any
    if fmt == "json":
        # structlog's own dict_tracebacks shows each frame's local variables (a token, a
        # session cookie): the frames only.
        shared.append(_DICT_TRACEBACKS)
        renderer = structlog.processors.JSONRenderer()
    else:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.dev.ConsoleRenderer(
            colors=(stream or sys.stderr).isatty(),
            exception_formatter=structlog.dev.plain_traceback,
        )
    structlog.configure(
        processors=[*shared, redact_processor, _redact_rendered(renderer)],
        wrapper_class=structlog.make_filtering_bound_logger(lowest),
        logger_factory=_factory(stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=max(console, logging.WARNING), stream=stream or sys.stderr, force=True
    )
    # stamina's own retry log is a warning per retry: ours is one debug line, redacted above.
    stamina.instrumentation.set_on_retry_hooks([_log_retry])


def _event_level(event_dict: MutableMapping[str, Any]) -> int:
    return _level(str(event_dict.get("level", "info")))


def _tee_json(log_file: TextIO, level: int) -> Any:
    """A processor writing each event at `level` or above to `log_file` as one JSON line
    (redacted, tracebacks as frames without locals), and passing the event on unchanged."""
    render = structlog.processors.JSONRenderer()

    def tee(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        if _event_level(event_dict) >= level:
            event = _DICT_TRACEBACKS(logger, method, dict(event_dict))
            event = redact_processor(logger, method, event)
            log_file.write(redact_text(str(render(logger, method, event))) + "\n")
            log_file.flush()
        return event_dict

    return tee


def _drop_below(level: int) -> Any:
    """A processor ending, for the console, events the log file alone was to get."""

    def drop(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
        if _event_level(event_dict) < level:
            raise structlog.DropEvent
        return event_dict

    return drop


def _factory(stream: TextIO | None) -> Callable[..., Any]:
    """Loggers writing to `stream`, or to whatever `sys.stderr` is at the time of each call.

    Looked up late so that a replaced or closed stderr (a test's capture, a daemon's redirect)
    does not leave every later log line, and the retry hook, writing to a dead stream.
    """
    if stream is not None:
        return structlog.PrintLoggerFactory(stream)
    return lambda *_args: structlog.PrintLogger(sys.stderr)


def _log_retry(details: stamina.instrumentation.RetryDetails) -> None:
    structlog.get_logger("clamfleet.retry").debug(
        "request.retry",
        attempt=details.retry_num,
        wait_s=round(details.wait_for, 3),
        error=str(details.caused_by),
    )


def _redact_rendered(renderer: Any) -> Any:
    """Mask secrets in the final line too (a traceback rendered from an exception's text)."""

    def render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        return redact_text(str(renderer(logger, method, event_dict)))

    return render
