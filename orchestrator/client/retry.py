"""The retry policy of idempotent requests: which failures retry, how long, and the shortcut.

`with_retries` makes the first attempt itself (`first_attempt`), outside stamina: stamina's
machinery costs tens of microseconds of CPU per call even when nothing fails, and nearly every
call succeeds first time. A transient first failure is handed to stamina as a `Replay`, raised
as stamina's own first attempt, so the attempt count, the backoff (Retry-After included) and
stamina's test mode are exactly as if stamina had made it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import stamina
import structlog

from orchestrator.errors import TargetError

T = TypeVar("T")

log = structlog.get_logger("clamfleet")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of idempotent requests: capped in attempts and in total time, with jitter."""

    attempts: int = 5
    total: float = 120.0
    initial: float = 0.5
    max: float = 15.0
    jitter: float = 0.5


@dataclass(frozen=True, slots=True)
class Replay:
    """A first attempt's transient failure, for stamina to count as its own first attempt."""

    error: TargetError


def retry_wait(policy: RetryPolicy, exc: Exception) -> bool | float:
    """Retry transient faults only; wait what Retry-After asks, up to the policy's longest
    backoff (a float, even 0.0, is that wait). Auth and TLS failures never retry."""
    if not isinstance(exc, TargetError) or not exc.transient:
        return False
    if exc.retry_after is not None:
        return float(min(exc.retry_after, policy.max))
    return True


async def first_attempt(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T | Replay:
    """The first attempt, made directly: its result, or a Replay of a failure worth retrying.
    A failure that is not worth retrying is raised as it is."""
    try:
        return await call()
    except TargetError as exc:
        if retry_wait(policy, exc) is False:
            raise
        return Replay(exc)


async def with_retries(
    policy: RetryPolicy, call: Callable[[], Awaitable[T]], *, server: str, function: str
) -> T:
    """Call; on a transient failure, hand over to stamina's capped, jittered backoff.

    A request that is finally given up on is a warning: the night's log must say which call
    failed how often, and why, without debug logging on.
    """
    first = await first_attempt(policy, call)
    if not isinstance(first, Replay):
        return first
    attempts = 0
    replay: TargetError | None = first.error
    try:
        async for attempt in stamina.retry_context(
            on=lambda exc: retry_wait(policy, exc),
            attempts=policy.attempts,
            timeout=policy.total,
            wait_initial=policy.initial,
            wait_max=policy.max,
            wait_jitter=policy.jitter,
        ):
            with attempt:
                attempts += 1
                if replay is not None:
                    failed, replay = replay, None
                    raise failed
                return await call()
    except TargetError as exc:
        log.warning(
            "request.gave_up",
            server=server,
            function=function,
            attempts=attempts,
            error_kind=str(exc.kind),
            error=str(exc),
            http_status=exc.http_status,
        )
        raise
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover
