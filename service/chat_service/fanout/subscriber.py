"""One open stream's bounded queue, filled by the hub and drained by the stream's writer."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from chat_service.fanout.delivery import Delivery


class Subscriber:
    """Never blocks the hub: pushing is O(1); past `max_queue` the subscriber is marked as
    lagging, its queue is dropped and its stream ends with a status telling it to resume."""

    __slots__ = ("_max", "_queue", "_wake", "closed_reason", "groups", "lagged", "user_id")

    def __init__(self, user_id: int, max_queue: int) -> None:
        self.user_id = user_id
        self.groups: set[int] = set()
        self._queue: deque[Delivery] = deque()
        self._max = max_queue
        self._wake = asyncio.Event()
        self.lagged = False
        self.closed_reason: str | None = None

    def push(self, delivery: Delivery) -> None:
        if self.lagged or self.closed_reason is not None:
            return
        if len(self._queue) >= self._max:
            self.lagged = True
            self._queue.clear()
        else:
            self._queue.append(delivery)
        self._wake.set()

    def close(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def wait(self, seconds: float) -> None:
        """Return when something is queued, the subscriber is closed/lagging, or on timeout."""
        if self._queue or self.lagged or self.closed_reason is not None:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def drain(self, max_items: int) -> list[Delivery]:
        q = self._queue
        if len(q) <= max_items:
            items = list(q)
            q.clear()
        else:
            items = [q.popleft() for _ in range(max_items)]
        return items
