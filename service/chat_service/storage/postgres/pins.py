"""Pinned messages: at most `max_pins` per group, counted under the group's row lock."""

from __future__ import annotations

from chat_service.domain.errors import NotFound, ResourceExhausted
from chat_service.domain.models import Message
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.pool import PostgresStore
from chat_service.storage.postgres.rows import message_from_row, select_messages


class PostgresPins(PostgresStore):
    @storage_errors
    async def set_pin(
        self, message: Message, actor_id: int, pinned: bool, max_pins: int
    ) -> tuple[Message, bool]:
        async with self._pool.acquire() as conn, conn.transaction():
            # One pin change per group at a time: the count below is exact.
            await conn.execute("SELECT 1 FROM groups WHERE id = $1 FOR UPDATE", message.group_id)
            current = await conn.fetchval(
                "SELECT pinned_at IS NOT NULL FROM messages WHERE id = $1", message.id
            )
            if current is None:
                raise NotFound(f"message {message.id} does not exist")
            changed = current != pinned
            if changed and pinned:
                count = await conn.fetchval(
                    """SELECT count(*) FROM messages
                       WHERE group_id = $1 AND pinned_at IS NOT NULL""",
                    message.group_id,
                )
                if count >= max_pins:
                    raise ResourceExhausted(
                        f"group {message.group_id} has {count} pinned messages (the limit is "
                        f"{max_pins}); unpin one first"
                    )
            if changed:
                await conn.execute(
                    """WITH u AS (
                           UPDATE groups SET last_update_seq = last_update_seq + 1
                           WHERE id = $1 RETURNING last_update_seq)
                       UPDATE messages SET update_seq = (SELECT last_update_seq FROM u),
                           pinned_at = CASE WHEN $3 THEN clock_timestamp() END,
                           pinned_by = CASE WHEN $3 THEN $4::bigint END
                       WHERE id = $2""",
                    message.group_id,
                    message.id,
                    pinned,
                    actor_id,
                )
            row = await conn.fetchrow(
                select_messages("WHERE m.id = $1", "$2"), message.id, actor_id
            )
            if row is None:
                raise NotFound(f"message {message.id} does not exist")
            return message_from_row(row), changed

    @storage_errors
    async def pinned(self, group_id: int, viewer: int) -> list[Message]:
        rows = await self._pool.fetch(
            select_messages(
                """WHERE m.group_id = $1 AND m.pinned_at IS NOT NULL
                   ORDER BY m.pinned_at DESC, m.id DESC""",
                "$2",
            ),
            group_id,
            viewer,
        )
        return [message_from_row(r) for r in rows]
