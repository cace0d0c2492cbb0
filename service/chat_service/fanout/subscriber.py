"""One open stream's bounded queue, filled by the hub and drained by the stream's writer.

Idle streams are the common case (a chat holds many, mostly quiet), so a subscriber is kept
small: a list, and while waiting a bare future with a timer instead of a task.
"""

from __future__ import annotations

import asyncio

from chat_service.fanout.delivery import Delivery


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Subscriber:
    """Never blocks the hub: pushing is O(1); past `max_queue` the subscriber is marked as
    lagging, its queue is dropped and its stream ends with a status telling it to resume."""

    __slots__ = ("_max", "_queue", "_waiter", "closed_reason", "groups", "lagged", "user_id")

    def __init__(self, user_id: int, max_queue: int) -> None:
        self.user_id = user_id
        self.groups: set[int] = set()
        self._queue: list[Delivery] = []
        self._max = max_queue
        self._waiter: asyncio.Future[None] | None = None
        self.lagged = False
        self.closed_reason: str | None = None

    def _notify(self) -> None:
        if self._waiter is not None:
            _wake(self._waiter)

    def push(self, delivery: Delivery) -> None:
        if self.lagged or self.closed_reason is not None:
            return
        if len(self._queue) >= self._max:
            self.lagged = True
            self._queue = []
        else:
            self._queue.append(delivery)
        self._notify()

    def push_many(self, deliveries: list[Delivery]) -> None:
        if self.lagged or self.closed_reason is not None:
            return
        if len(self._queue) + len(deliveries) > self._max:
            self.lagged = True
            self._queue = []
        else:
            self._queue.extend(deliveries)
        self._notify()

    def close(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        self._notify()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def wait(self, seconds: float) -> None:
        """Return when something is queued, the subscriber is closed/lagging, or on timeout."""
        if self._queue or self.lagged or self.closed_reason is not None:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(seconds, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def drain(self, max_items: int) -> list[Delivery]:
        queue = self._queue
        if len(queue) <= max_items:
            self._queue = []
            return queue
        self._queue = queue[max_items:]
        return queue[:max_items]
