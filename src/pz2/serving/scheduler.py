"""Admission: a bounded number of requests run, the rest wait first come, first served.

asyncio's own Semaphore does not promise the order in which waiters wake, so the queue is
explicit: a finishing request hands its slot to the oldest waiter. A waiter that gives up
(its client left, its deadline passed) leaves the queue without taking a slot.
"""

from __future__ import annotations

import asyncio
from collections import deque

from pz2.serving.errors import OverloadedError


class FairScheduler:
    def __init__(self, max_running: int, max_waiting: int, retry_after_s: int) -> None:
        self.max_running, self.max_waiting, self.retry_after_s = max_running, max_waiting, retry_after_s
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting in line for one; OverloadedError when the line is full."""
        if self.running < self.max_running and not self._waiters:
            self.running += 1
            return
        if len(self._waiters) >= self.max_waiting:
            raise OverloadedError(f"{len(self._waiters)} requests are already waiting; retry in "
                                  f"{self.retry_after_s} s", self.retry_after_s)
        slot = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self.release()  # handed a slot just as it gave up: pass it on
            else:
                self._waiters.remove(slot)
            raise

    def release(self) -> None:
        """Hand the slot to the oldest waiter still waiting, else free it."""
        while self._waiters:
            slot = self._waiters.popleft()
            if not slot.done():
                slot.set_result(None)
                return
        self.running -= 1
