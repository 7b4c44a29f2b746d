"""One server's scheduler: which target runs next, how many at once, and who waits for what.

    AccountQueue   pending targets grouped by account: one target per account in flight
    Lanes          up to `limit()` targets in flight; a timer heap of waiting ones, a ready
                   queue, a few workers

**One scan per account.** cPanel keeps one scan, one status file and one infected list per
account, whatever the scan type (cpanel-api.md 3.2, 3.3, 4): a second `start_scan` while one
runs is refused, and one that starts right after a sibling's ends makes the sibling read the
*new* scan's status and infected list, a false "clean". So an account's next target starts only
once the previous one has finished entirely, disinfection included. A lane whose next account
is busy takes another account's target instead of idling; the account's next target then goes
first (its types run back to back), and the start order (largest accounts first) is kept.

**Without a task per lane.** A target spends nearly all its life waiting for its next poll, and
a task parked in `sleep` holds its frames, context and cancel scopes (~10 KiB). Here a waiting
target is an entry in a timer heap; one scheduler task moves due targets to a ready queue, and
a few workers (enough to keep the server's connections busy) take them, run their requests
until they wait again or finish, and hand them back. The sans-I/O workflow makes this possible:
between two requests a target is nothing but its state. A worker in a retry backoff keeps its
place, so a server answering with errors gets fewer requests for its other targets too, which
is what backing off is for.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, Protocol, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from orchestrator.model import Target


class AccountQueue:
    """Pending targets in start order, handed out so that no account has two in flight."""

    def __init__(self, targets: Iterable[Target]) -> None:
        self._pending: dict[str, deque[Target]] = {}
        for target in targets:
            self._pending.setdefault(target.account, deque()).append(target)
        self._idle: deque[str] = deque(self._pending)  # accounts with work and none in flight
        self._busy: set[str] = set()

    def __bool__(self) -> bool:
        """Whether any target is still to be handed out (now or once its account is free)."""
        return bool(self._pending)

    def take(self) -> Target | None:
        """The next target of the first idle account (its account is busy until `release`)."""
        if not self._idle:
            return None
        account = self._idle.popleft()
        queue = self._pending[account]
        target = queue.popleft()
        if not queue:
            del self._pending[account]
        self._busy.add(account)
        return target

    def release(self, target: Target) -> None:
        """`target` has finished entirely: its account's next target goes first."""
        account = target.account
        self._busy.discard(account)
        if account in self._pending:
            self._idle.appendleft(account)

    def busy(self, account: str) -> bool:
        return account in self._busy


class HasTarget(Protocol):
    @property
    def target(self) -> Target: ...


S = TypeVar("S", bound=HasTarget)


class Lanes(Generic[S]):
    """Runs one server's targets, one per account, as many in flight as `admit` allows.

    The caller supplies what a target *is* (`S`, e.g. the runner's slot: workflow state and next
    command) and three callbacks:

    - `begin(target)`: the slot of a target about to start, and its first wait in seconds
      (None: it has a request to make now); or None when it needs no work (already finished,
      e.g. per the journal), in which case its account is free again at once;
    - `advance(slot)`: run the slot's requests; return seconds to wait, or None when finished;
    - `interrupted(slot)`: the run was cancelled while `slot` was in flight;

    and two admission rules: `admit(running)`, whether one more target may start with `running`
    in flight (the scan cap, or load-aware pacing: see pacing.py), and `closing()`, true once no
    target may start any more (the finish-by window, the run's deadline, the load's patience
    run out): every target still queued is then handed to `begin` at once, which reports it
    deferred (or interrupted). While targets wait and none may start (the server is over its
    load ceiling), the scheduler sleeps until `wake()`. `released()` is called whenever a
    target finishes (entries of one host share its scans: the others may start one now).
    """

    def __init__(
        self,
        queue: AccountQueue,
        *,
        admit: Callable[[int], bool],
        clock: Callable[[], float],
        begin: Callable[[Target], tuple[S, float | None] | None],
        advance: Callable[[S], Awaitable[float | None]],
        interrupted: Callable[[S], None],
        closing: Callable[[], bool] = lambda: False,
        released: Callable[[], None] = lambda: None,
    ) -> None:
        self.queue = queue
        self.admit = admit
        self.closing = closing
        self._released = released
        self.clock = clock
        self._begin = begin
        self._advance = advance
        self._interrupted = interrupted
        self.live: dict[Target, S] = {}  # started, not finished: what a cancel interrupts
        self._timers: list[tuple[float, int, S]] = []  # (due, tie-break, slot) min-heap
        self._order = itertools.count()
        self._nap: anyio.CancelScope | None = None  # the scheduler's sleep, while it sleeps
        self._next_due = math.inf  # when the scheduler will next wake on its own

    async def run(self, workers: int) -> None:
        send, receive = anyio.create_memory_object_stream[S](math.inf)
        async with anyio.create_task_group() as tg:
            for n in range(workers):
                tg.start_soon(self._worker, receive, name=f"worker:{n}")
            try:
                with send:
                    await self._schedule(send)
            except anyio.get_cancelled_exc_class():
                for slot in self.live.values():
                    self._interrupted(slot)
                raise

    def wake(self) -> None:
        """Re-run the scheduler now (a lane may be free, or the limit may have risen)."""
        if self._nap is not None:
            self._nap.cancel()
            self._nap = None

    async def _schedule(self, ready: MemoryObjectSendStream[S]) -> None:
        timers = self._timers
        while True:
            self._fill(ready)
            if not self.live and not self.queue:
                return  # every target handed out and finished
            now = self.clock()
            while timers and timers[0][0] <= now:
                ready.send_nowait(heapq.heappop(timers)[2])
            self._next_due = timers[0][0] if timers else math.inf
            # A plain sleep, cut short by wake(): a deadline cancel scope (move_on_after) would
            # re-check its deadline against uvloop's millisecond clock and spin up to 1 ms.
            # Between two of these naps the scheduler never awaits, so no wake-up is lost.
            with anyio.CancelScope() as self._nap:
                await anyio.sleep(self._next_due - now)
            self._nap = None

    def _fill(self, ready: MemoryObjectSendStream[S]) -> None:
        while self.closing() or self.admit(len(self.live)):
            if (target := self.queue.take()) is None:
                return
            begun = self._begin(target)
            if begun is None:
                self.queue.release(target)
                continue
            slot, wait = begun
            self.live[target] = slot
            if wait is None:
                ready.send_nowait(slot)
            else:
                self._park(slot, wait)

    def _park(self, slot: S, seconds: float) -> None:
        """Into the timer heap; a worker picks it up again when it is due."""
        due = self.clock() + seconds
        heapq.heappush(self._timers, (due, next(self._order), slot))
        if due < self._next_due:
            self.wake()

    async def _worker(self, ready: MemoryObjectReceiveStream[S]) -> None:
        async for slot in ready:
            wait = await self._advance(slot)
            if wait is not None:
                self._park(slot, wait)
                continue
            target = slot.target
            del self.live[target]
            self.queue.release(target)
            self.wake()  # a lane is free (or the account's next type may go), or all are done
            self._released()
