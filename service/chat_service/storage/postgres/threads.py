"""Threads: a thread's replies in order, and each participant's read position in it.

Replies are stored by the send path (messages.py, with a ThreadLink): they are messages of
the group with their own seq, so the stream, replay and the change feed carry them as usual.
"""

from __future__ import annotations

from chat_service.domain.conversation import ThreadRead
from chat_service.domain.models import Message
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.pool import PostgresStore
from chat_service.storage.postgres.rows import (
    limit_sql,
    message_from_row,
    select_messages,
    thread_unread_sql,
)


class PostgresThreads(PostgresStore):
    @storage_errors
    async def thread_replies(
        self, parent_id: int, after_seq: int, limit: int, viewer: int
    ) -> tuple[list[Message], bool]:
        rows = await self._pool.fetch(
            select_messages(
                "WHERE m.thread_parent_id = $1 AND m.seq > $2"
                f" ORDER BY m.seq {limit_sql(limit + 1)}", "$3"
            ),
            parent_id,
            after_seq,
            viewer,
        )
        return [message_from_row(r) for r in rows[:limit]], len(rows) > limit

    @storage_errors
    async def thread_position(self, parent_id: int, user_id: int) -> tuple[int, int]:
        row = await self._pool.fetchrow(
            """SELECT tp.read_seq,
                      (SELECT count(*) FROM messages r
                        WHERE r.thread_parent_id = tp.parent_id AND r.seq > tp.read_seq
                          AND r.user_id <> tp.user_id) AS unread
               FROM thread_participants tp WHERE tp.parent_id = $1 AND tp.user_id = $2""",
            parent_id,
            user_id,
        )
        return (0, 0) if row is None else (row["read_seq"], row["unread"])

    @storage_errors
    async def mark_thread_read(self, parent_id: int, user_id: int, seq: int) -> ThreadRead:
        row = await self._pool.fetchrow(
            """WITH last AS (
                   SELECT COALESCE(max(seq), 0) AS seq FROM messages
                   WHERE thread_parent_id = $1
               ), moved AS (
                   UPDATE thread_participants tp
                   SET read_seq = GREATEST(tp.read_seq, LEAST(
                       CASE WHEN $3::bigint = 0 THEN last.seq ELSE $3::bigint END, last.seq))
                   FROM last
                   WHERE tp.parent_id = $1 AND tp.user_id = $2
                   RETURNING tp.read_seq, tp.group_id
               )
               SELECT moved.read_seq,
                      (SELECT count(*) FROM messages r
                        WHERE r.thread_parent_id = $1 AND r.seq > moved.read_seq
                          AND r.user_id <> $2) AS unread,
                      moved.group_id
               FROM moved""",
            parent_id,
            user_id,
            seq,
        )
        if row is None:
            return ThreadRead(0, 0, 0)
        # Read after the update commits: the group's total includes this thread's new count.
        total = await self._pool.fetchval(
            f"SELECT {thread_unread_sql('$2', '$1')}", user_id, row["group_id"]
        )
        return ThreadRead(row["read_seq"], row["unread"], total)
