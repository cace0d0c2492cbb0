"""Users coming online on this pod, marked in Redis and announced together (RedisPresence).

A reconnect storm brings thousands of first streams a second. Each would cost a round trip
(was the user online elsewhere? mark them online here) and a publish of its own; instead,
every arrival of one moment goes in one pipeline and their announcements in one publish.
Nothing waits for a batch to fill: an arrival at an idle pod is sent on the loop's next turn;
under load, whatever arrived while the previous batch was in Redis goes in the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Arrival:
    user_id: int
    group_ids: Sequence[int] | None
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


# Marks and announces one batch (its arrivals in order); must not raise for a Redis error.
Flush = Callable[[list[Arrival]], Awaitable[None]]


class Arrivals:
    def __init__(self, flush: Flush, max_batch: int = 500) -> None:
        self._flush = flush
        self._max = max_batch  # bounded pipelines, as the heartbeat's (MARK_BATCH)
        self._queue: list[Arrival] = []
        self._task: asyncio.Task[None] | None = None

    async def arrive(self, user_id: int, group_ids: Sequence[int] | None) -> None:
        """Returns once the user is marked and, if they were offline, announced."""
        arrival = Arrival(user_id, group_ids)
        self._queue.append(arrival)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="presence-arrivals")
        # Shielded: a stream cancelled meanwhile does not cancel the batch it is in.
        await asyncio.shield(arrival.done)

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:self._max], self._queue[self._max:]
            try:
                await self._flush(batch)
            except Exception:  # presence is best effort: the streams carry on
                log.warning("could not mark %s users online", len(batch), exc_info=True)
            finally:
                for arrival in batch:
                    if not arrival.done.done():
                        arrival.done.set_result(None)

    async def drain(self) -> None:
        """Wait for the batches queued or in flight (before leaving: see RedisPresence.stop)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
