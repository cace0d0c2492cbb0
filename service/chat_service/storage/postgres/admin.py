"""Group administration: changing a group's card (name, description, avatar, invite-only,
archived), deleting a group, messages posted by the app's backend, direct conversations."""

from __future__ import annotations

import asyncpg

from chat_service.domain.models import (
    BACKEND_ACTOR,
    GroupChanges,
    Message,
    MessageKind,
    PostResult,
)
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.pool import PostgresStore
from chat_service.storage.postgres.rows import ms


class PostgresGroupAdmin(PostgresStore):
    @storage_errors
    async def update_group(self, group_id: int, changes: GroupChanges) -> bool:
        """Apply the fields that are set; False when there is no such group."""
        done = await self._pool.fetchval(
            """UPDATE groups SET
                 name = COALESCE($2, name),
                 description = COALESCE($3, description),
                 avatar = COALESCE($4, avatar),
                 invite_only = COALESCE($5, invite_only),
                 archived_at = CASE WHEN $6::boolean IS NULL THEN archived_at
                                    WHEN $6 THEN COALESCE(archived_at, now()) END
               WHERE id = $1 RETURNING 1""",
            group_id,
            changes.name,
            changes.description,
            changes.avatar,
            changes.invite_only,
            changes.archived,
        )
        return done is not None

    @storage_errors
    async def group_attachment_ids(self, group_id: int) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT id FROM attachments WHERE group_id = $1", group_id
        )
        return [r["id"] for r in rows]

    @storage_errors
    async def delete_group(self, group_id: int) -> bool:
        """The group and everything in it (members, messages, receipts, reactions, bans and
        attachment rows cascade); its moderation log too."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM moderation_actions WHERE group_id = $1", group_id)
            done = await conn.fetchval("DELETE FROM groups WHERE id = $1 RETURNING 1", group_id)
        return done is not None

    @storage_errors
    async def post_from_backend(
        self, group_id: int, content: str, client_msg_id: str
    ) -> PostResult | None:
        """A SYSTEM message by the backend (user 0); None when the group is missing or
        archived. A retry with the same key returns the stored message."""
        key = client_msg_id or None
        async with self._pool.acquire() as conn, conn.transaction():
            if key is not None:
                row = await conn.fetchrow(
                    """SELECT id, seq, content, created_at FROM messages
                       WHERE group_id = $1 AND user_id = 0 AND client_msg_id = $2""",
                    group_id,
                    key,
                )
                if row is not None:
                    return PostResult(_system(group_id, row, client_msg_id), duplicate=True)
            seq = await conn.fetchval(
                """UPDATE groups SET last_seq = last_seq + 1
                   WHERE id = $1 AND archived_at IS NULL RETURNING last_seq""",
                group_id,
            )
            if seq is None:
                return None
            try:
                row = await conn.fetchrow(
                    """INSERT INTO messages (group_id, seq, user_id, kind, content,
                                             client_msg_id, via_backend)
                       VALUES ($1, $2, 0, 3, $3, $4, TRUE)
                       RETURNING id, seq, content, created_at""",
                    group_id,
                    seq,
                    content,
                    key,
                )
            except asyncpg.UniqueViolationError:
                return None  # a concurrent retry with the same key: the caller retries
        assert row is not None
        return PostResult(_system(group_id, row, client_msg_id), duplicate=False)


def _system(group_id: int, row: asyncpg.Record, client_msg_id: str) -> Message:
    return Message(
        id=row["id"],
        group_id=group_id,
        seq=row["seq"],
        sender=BACKEND_ACTOR,
        content=row["content"],
        kind=MessageKind.SYSTEM,
        created_at_ms=ms(row["created_at"]),
        client_msg_id=client_msg_id,
        via_backend=True,
    )
