"""Run the orchestrator CLI with candidate performance changes applied, to measure them.

    python bench/patches.py PATCH[,PATCH...] run INVENTORY ...   (what `run.py --patch` does)

The orchestrator's code is not edited: each patch replaces one function at import time with the
change proposed in bench/RESULTS.md, so the bench can measure "before" and "after" in the same
session. Patches:

* `poll`  -- workflow.next_poll_delay: when the predicted remaining time is more than twice the
  span the progress rate was measured over, sleep only 60 % of it (at least poll_interval.max),
  then re-estimate with the longer span. Bounds the lateness that one noisy early rate estimate
  can cause, at the cost of about one more status call per target.
* `limiter` -- limiter.Gate.acquire: book a slot only at the moment the request is sent, holding
  a per-gate FIFO lock while waiting. The original books the per-server slot ahead and moves
  the *global* pacer's next slot to it, so one server's backlog delays every other server:
  the whole fleet runs at one server's rate.
* `retry` -- client.ServerClient._with_retries: make the first attempt directly and enter
  stamina's retry machinery only after a transient failure (stamina/tenacity cost ~50 us of
  CPU per request even when nothing fails).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any


def patch_poll() -> None:
    from orchestrator import workflow

    def next_poll_delay(state: workflow.State, now: float) -> float:
        cfg = state.cfg
        stats, anchor = state.stats, state.rate_anchor
        if stats is not None and anchor is not None and stats.total_file_count > 0:
            anchor_t, anchor_count = anchor
            done = stats.scanned_file_count - anchor_count
            if done > 0 and now > anchor_t:
                window = now - anchor_t
                rate = done / window
                remaining = max(stats.total_file_count - stats.scanned_file_count, 0) / rate
                predicted = max(cfg.poll_min, remaining * 1.02 + 0.05 * cfg.poll_min)
                if predicted > 2 * window:  # extrapolating far beyond the measured span
                    return min(predicted, max(cfg.poll_max, 0.6 * predicted))
                return predicted
        return workflow._backoff(state)

    workflow.next_poll_delay = next_poll_delay


def patch_retry() -> None:
    import anyio

    from orchestrator import client
    from orchestrator.errors import TargetError

    original = client.ServerClient._with_retries

    async def _with_retries(self: Any, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except TargetError as exc:
            verdict = client._retry_hook(exc)
            if verdict is False:
                raise
            if not isinstance(verdict, bool):
                await anyio.sleep(verdict)
        # The fault path: stamina as before (one attempt more than the original in this sketch).
        return await original(self, call)

    client.ServerClient._with_retries = _with_retries  # type: ignore[method-assign]


def patch_limiter() -> None:
    import anyio

    from orchestrator import limiter

    def gate_init(self: Any, pacers: Any, clock: Any, sleep: Any) -> None:
        self._pacers, self._clock, self._sleep = pacers, clock, sleep
        self._lock = anyio.Lock()  # FIFO: one waiter per gate (server) at a time

    async def acquire(self: Any) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                due = max(p.next_slot for p in self._pacers)
                if due <= now:  # book only the slot actually used: never into the future
                    for p in self._pacers:
                        p.next_slot = now + p.interval
                    return
                await self._sleep(due - now)

    limiter.Gate.__slots__  # noqa: B018 (Gate has __slots__: replace the class's methods)
    ns = {"__slots__": ("_clock", "_lock", "_pacers", "_sleep"), "__init__": gate_init,
          "acquire": acquire, "reserve": limiter.Gate.reserve}  # fmt: skip
    limiter.Gate = type("Gate", (), ns)  # type: ignore[misc,assignment]


PATCHES: dict[str, Callable[[], None]] = {
    "poll": patch_poll,
    "retry": patch_retry,
    "limiter": patch_limiter,
}


def main(argv: list[str]) -> int:
    names = [n for n in argv[0].split(",") if n and n != "none"]
    for name in names:
        PATCHES[name]()
    from orchestrator.cli import main as cli_main

    return cli_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
