"""The limiter with a controllable clock: no real time passes."""

from __future__ import annotations

import pytest

from orchestrator.limiter import Gate, Pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def max_in_window(times: list[float], width: float = 1.0) -> int:
    return max(sum(1 for t in times if start <= t < start + width) for start in times)


def test_requests_are_spaced_one_over_rate_with_no_burst() -> None:
    pacer = Pacer(5)
    gate = Gate((pacer,), FakeClock(), FakeClock().sleep)
    delays = [gate.reserve(0.0) for _ in range(4)]
    assert delays == pytest.approx([0.0, 0.2, 0.4, 0.6])


def test_idle_time_does_not_bank_a_burst() -> None:
    pacer = Pacer(2)
    gate = Gate((pacer,), FakeClock(), FakeClock().sleep)
    gate.reserve(0.0)
    assert gate.reserve(100.0) == 0.0
    assert gate.reserve(100.0) == pytest.approx(0.5)


@pytest.mark.asyncio
async def test_server_and_global_rates_both_hold_in_every_one_second_window() -> None:
    clock = FakeClock()
    global_pacer = Pacer(8)
    gates = [Gate((Pacer(3), global_pacer), clock, clock.sleep) for _ in range(4)]
    sent: dict[int, list[float]] = {i: [] for i in range(4)}
    # interleave acquisitions from four servers, as tasks would
    for _ in range(12):
        for i, gate in enumerate(gates):
            await gate.acquire()
            sent[i].append(clock.now)
    everything = sorted(t for times in sent.values() for t in times)
    assert max_in_window(everything) <= 8
    for times in sent.values():
        assert max_in_window(times) <= 3


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)
