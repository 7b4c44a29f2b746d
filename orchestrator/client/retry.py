"""The retry policy of idempotent requests: which failures retry, how long, and the shortcut.

`with_retries` makes the first attempt itself (`first_attempt`), outside stamina: stamina's
machinery costs tens of microseconds of CPU per call even when nothing fails, and nearly every
call succeeds first time. A transient first failure is handed to stamina as a `Replay`, raised
as stamina's own first attempt, so the attempt count, the backoff (Retry-After included) and
stamina's test mode are exactly as if stamina had made it.

With the host's breaker (client/breaker.py): a failure that finds the breaker open is not an
attempt spent. stamina stops there, and the call is made again at once: the channel's gate
holds it until the host is back (one probe per cool-down, never more), or raises ServerDown
when the host is given up. A call that keeps meeting outages (a host that flaps: back for one
answer, away again) still ends, after `server_down` of them in all; and the attempts that failed
while the host was up count across them, so a function that fails alone (the host answering
every other) ends after the policy's attempts, as it would without the breaker.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import stamina
import structlog

from orchestrator.client.breaker import Breaker
from orchestrator.errors import ServerDown, TargetError

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

    @classmethod
    def for_checks(cls) -> RetryPolicy:
        """validate's checks (--check-connectivity, --check-api): fewer and shorter retries
        than a run's, as `Hosts.for_checks` waits less for a host that is away: a pre-flight
        answers in seconds, not minutes."""
        return cls(attempts=3, total=20.0, initial=0.5, max=4.0)


@dataclass(frozen=True, slots=True)
class Replay:
    """A first attempt's transient failure, for stamina to count as its own first attempt."""

    error: TargetError


def retry_wait(policy: RetryPolicy, exc: Exception, breaker: Breaker | None = None) -> bool | float:
    """Retry transient faults only; wait what Retry-After asks, up to the policy's longest
    backoff (a float, even 0.0, is that wait). Auth and TLS failures never retry, and neither
    does stamina while the host's breaker is open (the gate waits for the host instead)."""
    if not isinstance(exc, TargetError) or not exc.transient:
        return False
    if breaker is not None and (breaker.holding(exc) or breaker.verdict is not None):
        return False  # waited for at the gate, or the host is given up: no retry here
    if exc.retry_after is not None:
        return float(min(exc.retry_after, policy.max))
    return True


async def first_attempt(
    policy: RetryPolicy, call: Callable[[], Awaitable[T]], breaker: Breaker | None = None
) -> T | Replay:
    """The first attempt, made directly: its result, or a Replay of a failure worth retrying.
    A failure that is not worth retrying is raised as it is."""
    try:
        return await call()
    except TargetError as exc:
        if retry_wait(policy, exc, breaker) is False:
            raise
        return Replay(exc)


async def with_retries(
    policy: RetryPolicy,
    call: Callable[[], Awaitable[T]],
    *,
    server: str,
    function: str,
    breaker: Breaker | None = None,
) -> T:
    """Call; on a transient failure, hand over to stamina's capped, jittered backoff; on an
    outage (the breaker open), call again through the gate, which waits for the host.

    A request that is finally given up on is a warning: the night's log must say which call
    failed how often, and why, without debug logging on (a host given up says so itself).
    """
    held_since: float | None = None
    spent = 0  # attempts that failed while the host was not down: they count
    while True:
        tries = [0]  # stamina's attempts, once it took over
        try:
            return await _attempts(policy, call, breaker, tries, policy.attempts - spent)
        except TargetError as exc:
            if breaker is not None and breaker.holding(exc):
                # The last attempt found the host down; those before it did not (a function
                # that fails alone, while the host answers the rest, still ends).
                spent += max(tries[0] - 1, 0)
                now = time.monotonic()
                held_since = now if held_since is None else held_since
                if spent < policy.attempts and now - held_since < breaker.timings.server_down:
                    continue  # the gate holds the next attempt until the host is back
            if tries[0] and not isinstance(exc, ServerDown):
                log.warning(
                    "request.gave_up",
                    server=server,
                    function=function,
                    attempts=tries[0],
                    error_kind=str(exc.kind),
                    error=str(exc),
                    http_status=exc.http_status,
                )
            raise


async def _attempts(
    policy: RetryPolicy,
    call: Callable[[], Awaitable[T]],
    breaker: Breaker | None,
    tries: list[int],
    attempts: int,
) -> T:
    """The first attempt, then stamina's retries (counted in `tries[0]`), `attempts` in all."""
    first = await first_attempt(policy, call, breaker)
    if not isinstance(first, Replay):
        return first
    replay: TargetError | None = first.error
    async for attempt in stamina.retry_context(
        on=lambda exc: retry_wait(policy, exc, breaker),
        attempts=max(attempts, 1),
        timeout=policy.total,
        wait_initial=policy.initial,
        wait_max=policy.max,
        wait_jitter=policy.jitter,
    ):
        with attempt:
            tries[0] += 1
            if replay is not None:
                failed, replay = replay, None
                raise failed
            return await call()
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover
