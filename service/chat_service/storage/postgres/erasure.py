"""GDPR: erasing what is stored about a user (their memberships go through members.py first,
so each group records the departure), and exporting it.

Erasure keeps every other member's history consistent: no message row is deleted (seqs stay
gap-free); the user's messages are tombstoned (content, mentions, reactions and attachment
link gone, a new update_seq in the group's change feed, as DeleteMessage does) or, with
anonymise, kept under the anonymised profile; messages of others whose reaction counts lose
the user's reactions get a new update_seq too, so resuming clients fetch their new state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chat_service.domain.models import ErasedContent
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.pool import PostgresStore
from chat_service.storage.postgres.rows import ms


def _bump(touched: str, also_set: str = "") -> str:
    """Give each message `touched` selects (id, group_id, seq) its group's next update_seq, in
    seq order (as DeleteMessage and reactions do, one at a time), setting `also_set` too."""
    return f"""
WITH touched AS ({touched}), counts AS (
    SELECT group_id, count(*) AS n FROM touched GROUP BY group_id
), bumped AS (
    UPDATE groups g SET last_update_seq = g.last_update_seq + c.n
    FROM counts c WHERE g.id = c.group_id
    RETURNING g.id, g.last_update_seq AS head, c.n
), numbered AS (
    SELECT t.id, b.head - b.n + row_number() OVER (PARTITION BY t.group_id ORDER BY t.seq)
           AS useq
    FROM touched t JOIN bumped b ON b.id = t.group_id
)
UPDATE messages m SET {also_set}update_seq = numbered.useq
FROM numbered WHERE m.id = numbered.id
RETURNING m.id"""


_MINE = (
    "SELECT id, group_id, seq FROM messages WHERE user_id = $1 AND deleted_at IS NULL "
    "AND kind <> 3"
)
# The user's messages become tombstones (content, mentions, attachment link, a pin and every
# reaction on them gone: DeleteMessage's tombstone).
_TOMBSTONE = _bump(
    _MINE, "content = '', mentions = NULL, attachment_id = NULL, deleted_at = now(), "
    "pinned_at = NULL, pinned_by = NULL, "
)
# Others' messages the user reacted to: their reaction counts change (the change feed says so).
_REACTED = _bump("""SELECT DISTINCT m.id, m.group_id, m.seq FROM reactions r
                    JOIN messages m ON m.id = r.message_id
                    WHERE r.user_id = $1 AND m.deleted_at IS NULL""")


class PostgresErasure(PostgresStore):
    @storage_errors
    async def attachment_ids_of_user(self, user_id: int) -> list[str]:
        rows = await self._pool.fetch("SELECT id FROM attachments WHERE owner_id = $1", user_id)
        return [r["id"] for r in rows]

    @storage_errors
    async def erase_user_content(self, user_id: int, *, tombstone: bool) -> ErasedContent:
        """Tombstone (or count, when anonymising) the user's messages; remove their
        reactions, mentions, bans and upload history. Returns the messages concerned and those
        that took a new update_seq. Idempotent: a second call finds nothing left to do."""
        async with self._pool.acquire() as conn, conn.transaction():
            # The groups' rows in id order first, as sends lock them: no deadlock with a send.
            await conn.execute(
                """SELECT id FROM groups WHERE id IN (
                       SELECT group_id FROM messages
                       WHERE user_id = $1 AND deleted_at IS NULL AND kind <> 3
                       UNION SELECT m.group_id FROM reactions r
                       JOIN messages m ON m.id = r.message_id WHERE r.user_id = $1)
                   ORDER BY id FOR UPDATE""",
                user_id,
            )
            if tombstone:
                ids = [r["id"] for r in await conn.fetch(_TOMBSTONE, user_id)]
                await conn.execute(
                    "DELETE FROM reactions WHERE message_id = ANY($1::bigint[])", ids
                )
                count = len(ids)
            else:
                ids = []
                count = int(await conn.fetchval(
                    "SELECT count(*) FROM messages WHERE user_id = $1 AND kind <> 3", user_id
                ))
            ids += [r["id"] for r in await conn.fetch(_REACTED, user_id)]
            await conn.execute("DELETE FROM reactions WHERE user_id = $1", user_id)
            await conn.execute("DELETE FROM message_mentions WHERE user_id = $1", user_id)
            await conn.execute("DELETE FROM group_bans WHERE user_id = $1", user_id)
            await conn.execute(
                "DELETE FROM attachment_upload_starts WHERE owner_id = $1", user_id
            )
        return ErasedContent(count, tuple(ids))

    # ---- export ----

    @storage_errors
    async def export_records(self, user_id: int) -> list[dict[str, Any]]:
        """Everything but the messages: profile, memberships, reactions, attachments,
        moderation actions concerning the user."""
        out: list[dict[str, Any]] = []
        profile = await self._pool.fetchrow(
            """SELECT id, name, email, avatar, custom::text AS custom, private_receipts,
                      updated_at, directory_at, deleted_at, erased_at, banned_until, ban_reason
               FROM users WHERE id = $1""",
            user_id,
        )
        if profile is not None:
            out.append({"type": "profile", **_plain(profile)})
        for kind, sql in _EXPORT_QUERIES:
            out.extend({"type": kind, **_plain(r)} for r in await self._pool.fetch(sql, user_id))
        return out

    @storage_errors
    async def export_messages(
        self, user_id: int, after_id: int, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            """SELECT id, group_id, seq, kind, content, client_msg_id, reply_to_id,
                      attachment_id, created_at, edited_at, deleted_at, via_backend
               FROM messages WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3""",
            user_id,
            after_id,
            limit,
        )
        return [{"type": "message", **_plain(r)} for r in rows]


_EXPORT_QUERIES: Sequence[tuple[str, str]] = (
    ("membership", """SELECT group_id, role, joined_at, read_seq, muted, silenced_until
                      FROM group_members WHERE user_id = $1 ORDER BY group_id"""),
    ("reaction", """SELECT message_id, emoji, created_at FROM reactions
                    WHERE user_id = $1 ORDER BY message_id"""),
    ("attachment", """SELECT id, group_id, file_name, content_type, size, sha256, created_at,
                             message_id FROM attachments WHERE owner_id = $1
                      ORDER BY created_at"""),
    ("moderation", """SELECT id, group_id, actor_id, kind, reason, expires_at, created_at,
                             message_id FROM moderation_actions
                      WHERE user_id = $1 OR actor_id = $1 ORDER BY id"""),
    ("group_ban", "SELECT group_id, until, reason FROM group_bans WHERE user_id = $1"),
)


def _plain(row: Any) -> dict[str, Any]:
    """A row as JSON-ready values: times as ms since the epoch (infinity: null)."""
    out: dict[str, Any] = {}
    for key, value in dict(row).items():
        if hasattr(value, "timestamp"):
            try:
                value = ms(value)
            except (OverflowError, ValueError):
                value = None
        elif key == "custom" and isinstance(value, str):
            value = json.loads(value)
        out[key] = value
    return out
