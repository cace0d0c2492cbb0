"""Edits, deletes and reactions: each change takes the next update_seq of its group."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from chat_service.domain.errors import NotFound, PermissionDenied, ResourceExhausted
from chat_service.domain.models import Mention, Message
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.pool import Conn
from chat_service.storage.postgres.rows import message_from_row, select_messages


class PostgresMessageChanges:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _bump_update(self, conn: Conn, group_id: int, message_id: int) -> None:
        """The message's next update_seq; an archived group is read-only (PermissionDenied,
        and the caller's transaction rolls the change back)."""
        done = await conn.fetchval(
            """WITH u AS (
                   UPDATE groups SET last_update_seq = last_update_seq + 1
                   WHERE id = $1 AND archived_at IS NULL RETURNING last_update_seq
               ), m AS (
                   UPDATE messages SET update_seq = (SELECT last_update_seq FROM u)
                   WHERE id = $2 AND EXISTS (SELECT 1 FROM u))
               SELECT last_update_seq FROM u""",
            group_id,
            message_id,
        )
        if done is None:
            raise PermissionDenied(f"group {group_id} is archived: it is read-only")

    async def _reload(self, conn: Conn, message_id: int, viewer: int) -> Message:
        row = await conn.fetchrow(select_messages("WHERE m.id = $1", "$2"), message_id, viewer)
        if row is None:
            raise NotFound(f"message {message_id} does not exist")
        return message_from_row(row)

    @storage_errors
    async def edit(
        self, message: Message, content: str, mentions: Sequence[Mention]
    ) -> Message:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE messages SET content = $2, edited_at = clock_timestamp(),
                       mentions = $3::jsonb
                   WHERE id = $1""",
                message.id,
                content,
                [[m.user_id, m.offset, m.length] for m in mentions] or None,
            )
            await conn.execute("DELETE FROM message_mentions WHERE message_id = $1", message.id)
            await conn.execute(
                """INSERT INTO message_mentions (message_id, group_id, seq, user_id, from_user)
                   SELECT $1, $2, $3, u, $4 FROM unnest($5::bigint[]) AS u""",
                message.id,
                message.group_id,
                message.seq,
                message.sender.id,
                sorted({m.user_id for m in mentions}),
            )
            await self._bump_update(conn, message.group_id, message.id)
            return await self._reload(conn, message.id, 0)

    @storage_errors
    async def delete(self, message: Message) -> tuple[Message, str]:
        """Leave a tombstone: the seq stays (and a thread under it), content, mentions,
        reactions, a pin and the attachment reference go. Returns the attachment id whose
        blob must be purged ('' if none)."""
        async with self._pool.acquire() as conn, conn.transaction():
            attachment = await conn.fetchval(
                """UPDATE messages SET content = '', mentions = NULL, deleted_at = now(),
                       attachment_id = NULL, pinned_at = NULL, pinned_by = NULL
                   WHERE id = $1
                   RETURNING (SELECT attachment_id FROM messages WHERE id = $1)""",
                message.id,
            )
            await conn.execute("DELETE FROM message_mentions WHERE message_id = $1", message.id)
            await conn.execute("DELETE FROM reactions WHERE message_id = $1", message.id)
            await self._bump_update(conn, message.group_id, message.id)
            return await self._reload(conn, message.id, 0), attachment or ""

    @storage_errors
    async def react(
        self, message: Message, user_id: int, emoji: str, add: bool, max_distinct: int
    ) -> tuple[Message, bool]:
        """Add or remove one reaction; (message as the reactor sees it, whether it changed)."""
        async with self._pool.acquire() as conn, conn.transaction():
            # One reaction change per message at a time: counts and the cap stay exact.
            await conn.execute("SELECT 1 FROM messages WHERE id = $1 FOR UPDATE", message.id)
            if add:
                distinct = await conn.fetchval(
                    """SELECT count(DISTINCT emoji) FILTER (WHERE emoji <> $2),
                              bool_or(emoji = $2)
                       FROM reactions WHERE message_id = $1""",
                    message.id,
                    emoji,
                )
                known = await conn.fetchval(
                    "SELECT 1 FROM reactions WHERE message_id = $1 AND emoji = $2 LIMIT 1",
                    message.id,
                    emoji,
                )
                if not known and (distinct or 0) >= max_distinct:
                    raise ResourceExhausted(
                        f"message {message.id} already has {max_distinct} different reactions "
                        "(the limit); react with one of those"
                    )
                changed = await conn.fetchval(
                    """INSERT INTO reactions (message_id, user_id, emoji) VALUES ($1, $2, $3)
                       ON CONFLICT DO NOTHING RETURNING 1""",
                    message.id,
                    user_id,
                    emoji,
                )
            else:
                changed = await conn.fetchval(
                    """DELETE FROM reactions WHERE message_id = $1 AND user_id = $2
                       AND emoji = $3 RETURNING 1""",
                    message.id,
                    user_id,
                    emoji,
                )
            if changed:
                await self._bump_update(conn, message.group_id, message.id)
            return await self._reload(conn, message.id, user_id), bool(changed)
