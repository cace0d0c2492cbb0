"""Group commit for plain messages: sends that arrive while a commit is in flight are written
together, in one statement and one transaction, so one fsync acknowledges many messages.

Nothing waits for a batch to fill: a message arriving at an idle pod is written at once; under
load, whatever queued up during the previous commit goes in the next. Sequence numbers stay
gap-free per group (each group's row is bumped once by the batch size, under its row lock);
anything unusual in a batch (a duplicate key, a non-member, a deadlock with another pod's
batch) sends those messages through the one-at-a-time path, which knows every answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from chat_service.domain.models import Message, MessageKind, PostResult, UserProfile
from chat_service.storage.postgres.moderation import MAY_POST

log = logging.getLogger(__name__)

SinglePost = Callable[["PendingSend"], Awaitable[PostResult | None]]

_BATCH_SQL = f"""
WITH req AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::text[], $5::text[])
        WITH ORDINALITY AS r(group_id, user_id, kind, content, key, ord)
), ok AS (
    SELECT r.* FROM req r
    WHERE EXISTS (SELECT 1 FROM group_members gm JOIN groups g ON g.id = gm.group_id
                  WHERE gm.group_id = r.group_id AND gm.user_id = r.user_id AND {MAY_POST})
      AND (r.key IS NULL OR NOT EXISTS (
               SELECT 1 FROM messages x
               WHERE x.group_id = r.group_id AND x.user_id = r.user_id
                 AND x.client_msg_id = r.key))
), locked AS (
    SELECT g.id FROM groups g WHERE g.id IN (SELECT group_id FROM ok)
    ORDER BY g.id FOR UPDATE
), counts AS (
    SELECT group_id, count(*) AS n FROM ok GROUP BY group_id
), bumped AS (
    UPDATE groups g SET last_seq = g.last_seq + c.n
    FROM counts c
    WHERE g.id = c.group_id AND g.id IN (SELECT id FROM locked)
    RETURNING g.id, g.last_seq AS head, c.n
), numbered AS (
    SELECT ok.*, b.head - b.n + row_number() OVER (PARTITION BY ok.group_id ORDER BY ok.ord)
               AS seq
    FROM ok JOIN bumped b ON b.id = ok.group_id
), ins AS (
    INSERT INTO messages (group_id, seq, user_id, kind, content, client_msg_id)
    SELECT group_id, seq, user_id, kind, content, key FROM numbered
    RETURNING id, group_id, seq, created_at
)
SELECT n.ord, i.id, i.seq, i.created_at
FROM ins i JOIN numbered n ON n.group_id = i.group_id AND n.seq = i.seq
"""


@dataclass
class PendingSend:
    group_id: int
    sender: UserProfile
    content: str
    kind: MessageKind
    client_msg_id: str
    done: asyncio.Future[PostResult | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


class SendBatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        single: SinglePost,
        *,
        max_batch: int = 256,
        max_inflight: int = 2,
    ) -> None:
        self._pool = pool
        self._single = single
        self._max_batch = max_batch
        self._slots = asyncio.Semaphore(max_inflight)
        self._pending: list[PendingSend] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self.batches_written = 0
        self.messages_written = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="send-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)

    async def post(self, item: PendingSend) -> PostResult | None:
        if self._task is None or self._task.done():
            return await self._single(item)
        self._pending.append(item)
        self._wake.set()
        return await item.done

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._slots.acquire()
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                task = asyncio.create_task(self._write(batch))
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)

    async def _write(self, batch: list[PendingSend]) -> None:
        try:
            if len(batch) == 1:
                await self._one(batch[0])
                return
            try:
                rows = await self._pool.fetch(
                    _BATCH_SQL,
                    [b.group_id for b in batch],
                    [b.sender.id for b in batch],
                    [int(b.kind) for b in batch],
                    [b.content for b in batch],
                    [b.client_msg_id or None for b in batch],
                )
            except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError):
                rows = []  # resolved one at a time below
            self.batches_written += 1
            self.messages_written += len(rows)
            by_ord = {r["ord"]: r for r in rows}
            leftovers: list[PendingSend] = []
            for i, item in enumerate(batch, start=1):
                row = by_ord.get(i)
                if row is None:
                    leftovers.append(item)
                    continue
                if item.done.done():  # the caller went away; the message is stored anyway
                    continue
                item.done.set_result(
                    PostResult(
                        message=Message(
                            id=row["id"],
                            group_id=item.group_id,
                            seq=row["seq"],
                            sender=item.sender,
                            content=item.content,
                            kind=item.kind,
                            created_at_ms=_ms(row["created_at"]),
                            client_msg_id=item.client_msg_id,
                        ),
                        duplicate=False,
                    )
                )
            await asyncio.gather(*(self._one(item) for item in leftovers))
        except BaseException as exc:
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._slots.release()

    async def _one(self, item: PendingSend) -> None:
        try:
            result = await self._single(item)
        except Exception as exc:
            if not item.done.done():
                item.done.set_exception(exc)
            return
        if not item.done.done():
            item.done.set_result(result)
