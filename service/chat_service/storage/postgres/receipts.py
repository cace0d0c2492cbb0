"""Read positions (one high-water mark per member), mute and receipt privacy in PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from chat_service.domain.conversation import UnreadResult
from chat_service.domain.models import UserProfile
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.rows import mentions_sql, profile_from_row, unread_sql


@dataclass(frozen=True)
class ReadResult:
    read_seq: int
    unread_count: int
    moved: bool
    private: bool


class PostgresReceipts:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @storage_errors
    async def mark_read(self, group_id: int, user_id: int, seq: int) -> ReadResult | None:
        """Move the read position forward to `seq` (0 = the newest message); never back."""
        row = await self._pool.fetchrow(
            f"""WITH before AS (
                   SELECT m.read_seq FROM group_members m
                   WHERE m.group_id = $1 AND m.user_id = $2
               ), moved AS (
                   UPDATE group_members m
                   SET read_seq = GREATEST(
                       m.read_seq,
                       LEAST(CASE WHEN $3::bigint = 0 THEN g.last_seq ELSE $3::bigint END,
                             g.last_seq))
                   FROM groups g
                   WHERE m.group_id = $1 AND m.user_id = $2 AND g.id = m.group_id
                   RETURNING m.read_seq
               )
               SELECT moved.read_seq, (SELECT read_seq FROM before) AS old_seq,
                      {unread_sql("$1", "moved.read_seq", "$2")} AS unread,
                      COALESCE((SELECT private_receipts FROM users WHERE id = $2), FALSE)
                        AS private
               FROM moved""",
            group_id,
            user_id,
            seq,
        )
        if row is None:
            return None
        return ReadResult(
            read_seq=row["read_seq"],
            unread_count=row["unread"],
            moved=row["read_seq"] > row["old_seq"],
            private=row["private"],
        )

    @storage_errors
    async def mark_unread(
        self, group_id: int, user_id: int, message_id: int
    ) -> UnreadResult | None:
        """Move the read position back to just before the message; never forward."""
        row = await self._pool.fetchrow(
            f"""WITH target AS (
                   SELECT seq FROM messages WHERE id = $3 AND group_id = $1
               ), moved AS (
                   UPDATE group_members m
                   SET read_seq = LEAST(m.read_seq, (SELECT seq FROM target) - 1)
                   WHERE m.group_id = $1 AND m.user_id = $2 AND EXISTS (SELECT 1 FROM target)
                   RETURNING m.read_seq
               )
               SELECT moved.read_seq,
                      {unread_sql("$1", "moved.read_seq", "$2")} AS unread,
                      {mentions_sql("$1", "moved.read_seq", "$2")} AS mentions,
                      COALESCE((SELECT private_receipts FROM users WHERE id = $2), FALSE)
                        AS private
               FROM moved""",
            group_id,
            user_id,
            message_id,
        )
        if row is None:
            return None
        return UnreadResult(
            read_seq=row["read_seq"],
            unread_count=row["unread"],
            mention_count=row["mentions"],
            private=row["private"],
        )

    @storage_errors
    async def readers(
        self, group_id: int, message_id: int
    ) -> tuple[list[UserProfile], int] | None:
        """Members who have read the message (public receipts only), and how many have not."""
        rows = await self._pool.fetch(
            """SELECT gm.user_id, u.name, u.email, u.avatar,
                      gm.read_seq >= msg.seq AS has_read,
                      COALESCE(u.private_receipts, FALSE) AS private
               FROM messages msg
               JOIN group_members gm ON gm.group_id = msg.group_id AND gm.user_id <> msg.user_id
               LEFT JOIN users u ON u.id = gm.user_id
               WHERE msg.id = $2 AND msg.group_id = $1
               ORDER BY gm.user_id""",
            group_id,
            message_id,
        )
        exists = rows or await self._pool.fetchval(
            "SELECT 1 FROM messages WHERE id = $2 AND group_id = $1", group_id, message_id
        )
        if not exists:
            return None
        readers = [profile_from_row(r) for r in rows if r["has_read"] and not r["private"]]
        return readers, sum(1 for r in rows if not r["has_read"])

    @storage_errors
    async def set_muted(self, group_id: int, user_id: int, muted: bool) -> bool:
        done = await self._pool.fetchval(
            """UPDATE group_members SET muted = $3 WHERE group_id = $1 AND user_id = $2
               RETURNING 1""",
            group_id,
            user_id,
            muted,
        )
        return done is not None

    @storage_errors
    async def private_receipts(self, user_id: int, value: bool | None) -> bool:
        if value is not None:
            await self._pool.execute(
                """INSERT INTO users (id, private_receipts) VALUES ($1, $2)
                   ON CONFLICT (id) DO UPDATE SET private_receipts = EXCLUDED.private_receipts""",
                user_id,
                value,
            )
        current = await self._pool.fetchval(
            "SELECT private_receipts FROM users WHERE id = $1", user_id
        )
        return bool(current)
