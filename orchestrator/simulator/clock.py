"""The simulator's notion of time: epoch seconds, injectable so tests can step it by hand."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Epoch seconds (float)."""
        ...


class SystemClock:
    """Wall-clock epoch at start, then advanced by the monotonic clock (never jumps back)."""

    def __init__(self) -> None:
        self._epoch = time.time()
        self._mono = time.monotonic()

    def time(self) -> float:
        return self._epoch + (time.monotonic() - self._mono)


class ManualClock:
    """A clock that moves only when told to; for deterministic tests."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
