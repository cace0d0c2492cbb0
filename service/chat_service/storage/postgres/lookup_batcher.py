"""Many callers' keyed statements as one: the calls that arrive while a batch is in PostgreSQL
go together in the next one (one round trip, one statement over `= ANY($1)` or `unnest`).

A reconnect wave brings thousands of streams a second, each reading its user's groups and
recording its user's profile; one at a time that is a statement and a pool round trip each.
Nothing waits for a batch to fill: a call at an idle pod runs on the loop's next turn. A call
never joins a batch already sent, so its statement always starts after it was asked for (what
the stream hand-over in fanout/session.py relies on: registered first, then storage read).
A failing batch fails its own callers with the same error; a cancelled caller leaves the
batch running for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# One batch's keys (distinct, in arrival order) -> each key's result (a key left out gets
# `missing`).
RunBatch = Callable[[Sequence[K]], Awaitable[dict[K, V]]]


class LookupBatcher(Generic[K, V]):
    def __init__(self, run: RunBatch[K, V], missing: Callable[[], V], max_batch: int = 500) -> None:
        self._run = run
        self._missing = missing
        self._max = max_batch
        self._queue: list[tuple[K, asyncio.Future[V]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, key: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # a cancelled caller's error is nobody's to log
        self._queue.append((key, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="postgres-batch")
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            keys = list(dict.fromkeys(key for key, _ in batch))
            try:
                results = await self._run(keys)
            except Exception as exc:  # every caller of this batch gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # cancelled (shutdown): so are the calls waiting on it
                for _, future in [*batch, *self._queue]:
                    future.cancel()
                self._queue = []
                raise
            for key, future in batch:
                if not future.done():
                    future.set_result(results[key] if key in results else self._missing())


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
