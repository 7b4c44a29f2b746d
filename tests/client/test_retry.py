"""The client's retry policy on its own: what retries and for how long, and the first attempt
made outside stamina, which must count exactly as stamina's own first attempt. Plain fakes, no
sockets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stamina
from structlog.testing import capture_logs

from orchestrator.client.retry import Replay, RetryPolicy, first_attempt, retry_wait, with_retries
from orchestrator.errors import (
    ApiError,
    AuthError,
    ProtocolError,
    ServerDown,
    TargetError,
    TlsError,
    TransportError,
)

POLICY = RetryPolicy(attempts=3, total=60, initial=0.1, max=2.0, jitter=0.0)


@pytest.fixture(autouse=True)
def no_retry_waits() -> Iterator[None]:
    stamina.set_testing(True, attempts=3)
    yield
    stamina.set_testing(False)


class Flaky:
    """A call that raises the given errors in turn, then answers `result`."""

    def __init__(self, *errors: TargetError, result: str = "answer") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def busy() -> TransportError:
    return TransportError("HTTP 503", server="web01", function="get_scan_status", http_status=503)


@pytest.mark.parametrize(
    ("error", "wait"),
    [
        pytest.param(busy(), True, id="5xx-retries"),
        pytest.param(ProtocolError("truncated body"), True, id="garbled-body-retries"),
        pytest.param(AuthError("refused"), False, id="auth-never"),
        pytest.param(TlsError("bad certificate"), False, id="tls-never"),
        pytest.param(ServerDown("host given up"), False, id="host-given-up-never"),
        pytest.param(ApiError("status 0"), False, id="api-answer-never"),
        pytest.param(ValueError("a bug"), False, id="not-ours-never"),
    ],
)
def test_only_transient_faults_are_retried(error: Exception, wait: bool) -> None:
    assert retry_wait(POLICY, error) is wait


def test_retry_after_is_the_wait_but_never_beyond_the_longest_backoff() -> None:
    asked = TransportError("HTTP 429", http_status=429, retry_after=0.0)
    assert retry_wait(POLICY, asked) == 0.0 and retry_wait(POLICY, asked) is not False
    slow = TransportError("HTTP 503", http_status=503, retry_after=600.0)
    assert retry_wait(POLICY, slow) == POLICY.max


@pytest.mark.asyncio
async def test_a_first_attempt_that_succeeds_never_enters_stamina(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("stamina entered for a call that succeeded first time")

    monkeypatch.setattr(stamina, "retry_context", refuse)
    call = Flaky()
    assert await with_retries(POLICY, call, server="web01", function="get_scan_status") == "answer"
    assert call.calls == 1


@pytest.mark.asyncio
async def test_a_transient_first_failure_is_handed_over_as_a_replay() -> None:
    error = busy()
    outcome = await first_attempt(POLICY, Flaky(error))
    assert isinstance(outcome, Replay) and outcome.error is error


@pytest.mark.asyncio
async def test_a_first_failure_that_cannot_be_helped_is_raised_at_once() -> None:
    call = Flaky(AuthError("refused", server="web01"))
    with pytest.raises(AuthError):
        await with_retries(POLICY, call, server="web01", function="get_scan_status")
    assert call.calls == 1


@pytest.mark.asyncio
async def test_the_replayed_first_failure_counts_as_one_of_the_capped_attempts() -> None:
    call = Flaky(busy(), busy(), busy(), busy())
    with capture_logs() as logs, pytest.raises(TransportError):
        await with_retries(POLICY, call, server="web01", function="get_scan_status")
    assert call.calls == 3, "three attempts in all, the direct first one included"
    (gave_up,) = [e for e in logs if e["event"] == "request.gave_up"]
    assert gave_up["attempts"] == 3 and gave_up["server"] == "web01"
    assert gave_up["function"] == "get_scan_status" and gave_up["http_status"] == 503


@pytest.mark.asyncio
async def test_a_call_that_recovers_within_its_attempts_answers_without_a_warning() -> None:
    call = Flaky(busy(), busy())
    with capture_logs() as logs:
        answer = await with_retries(POLICY, call, server="web01", function="get_scan_status")
    assert answer == "answer" and call.calls == 3
    assert not [e for e in logs if e["event"] == "request.gave_up"]
