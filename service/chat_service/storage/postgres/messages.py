"""Messages: the send path (one at a time, or group-committed by the SendBatcher), history,
replay after a position, mentions.

Sequence numbers are assigned by bumping `groups.last_seq` in the same statement as the insert,
so they are gap-free and a group's commits are serialised by its row lock. Message ids come
from an identity column: never derived from clocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from chat_service.domain.conversation import ThreadLink
from chat_service.domain.errors import InvalidArgument, NotFound
from chat_service.domain.models import (
    HistoryPage,
    Mention,
    Message,
    MessageKind,
    PostResult,
    UserProfile,
)
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.moderation import MAY_POST, refuse_reason
from chat_service.storage.postgres.pool import Conn, PostgresStore
from chat_service.storage.postgres.replica import ReadRoute
from chat_service.storage.postgres.rows import limit_sql, message_from_row, ms, select_messages
from chat_service.storage.postgres.send_batcher import PendingSend, SendBatcher

# History is the main timeline: thread replies only when also sent to the group.
_IN_TIMELINE = "(m.thread_parent_id IS NULL OR m.also_in_group)"


class PostgresMessages(PostgresStore):
    def __init__(
        self, pool: asyncpg.Pool, batch_sends: bool = True, reads: ReadRoute | None = None
    ) -> None:
        super().__init__(pool, reads)
        self._batcher: SendBatcher | None = None
        if batch_sends:
            self._batcher = SendBatcher(pool, self._post_plain)

    def start(self) -> None:
        if self._batcher is not None:
            self._batcher.start()

    async def stop(self) -> None:
        if self._batcher is not None:
            await self._batcher.stop()

    async def _post_plain(self, item: PendingSend) -> PostResult | None:
        return await self._post_one(
            group_id=item.group_id,
            sender=item.sender,
            content=item.content,
            kind=item.kind,
            client_msg_id=item.client_msg_id,
        )

    @storage_errors
    async def post_message(
        self,
        *,
        group_id: int,
        sender: UserProfile,
        content: str,
        kind: MessageKind,
        client_msg_id: str,
        reply_to_id: int = 0,
        mentions: Sequence[Mention] = (),
        attachment_id: str = "",
        via_backend: bool = False,
        thread: ThreadLink | None = None,
    ) -> PostResult | None:
        if self._batcher is not None and not (
            reply_to_id or mentions or attachment_id or via_backend or thread
        ):
            return await self._batcher.post(
                PendingSend(group_id, sender, content, kind, client_msg_id)
            )
        return await self._post_one(
            group_id=group_id,
            sender=sender,
            content=content,
            kind=kind,
            client_msg_id=client_msg_id,
            reply_to_id=reply_to_id,
            mentions=mentions,
            attachment_id=attachment_id,
            via_backend=via_backend,
            thread=thread,
        )

    async def _post_one(
        self,
        *,
        group_id: int,
        sender: UserProfile,
        content: str,
        kind: MessageKind,
        client_msg_id: str,
        reply_to_id: int = 0,
        mentions: Sequence[Mention] = (),
        attachment_id: str = "",
        via_backend: bool = False,
        thread: ThreadLink | None = None,
    ) -> PostResult | None:
        key = client_msg_id or None
        mention_json = [[m.user_id, m.offset, m.length] for m in mentions] or None
        mentioned = sorted({m.user_id for m in mentions})
        claim = (
            """, att AS (
                   UPDATE attachments SET message_id = ins.id FROM ins
                   WHERE attachments.id = $7 AND attachments.owner_id = $2
                     AND attachments.group_id = $1 AND attachments.completed_at IS NOT NULL
                     AND attachments.message_id IS NULL
                   RETURNING attachments.id)"""
            if attachment_id
            else ""
        )
        thread_args: list[object] = []
        if thread is not None:
            # The parent's summary changes with the reply (and takes the update_seq the bump
            # below reserved); the sender joins the participants, having read their reply.
            claim += """, par AS (
                   UPDATE messages p SET reply_count = p.reply_count + 1,
                       last_reply_at = ins.created_at, update_seq = bumped.last_update_seq
                   FROM ins, bumped WHERE p.id = $11
               ), tp AS (
                   INSERT INTO thread_participants (parent_id, group_id, user_id, read_seq)
                   SELECT $11, $1, v.u, max(v.r)
                   FROM ins CROSS JOIN LATERAL
                        (VALUES ($2::bigint, ins.seq), ($13::bigint, $14::bigint)) AS v (u, r)
                   GROUP BY v.u
                   ON CONFLICT (parent_id, user_id) DO UPDATE
                   SET read_seq = GREATEST(thread_participants.read_seq, EXCLUDED.read_seq))"""
            thread_args = [thread.parent_author, thread.parent_seq]
        try:
            row = await self._pool.fetchrow(
                f"""WITH member AS (
                       SELECT 1 FROM group_members gm JOIN groups g ON g.id = gm.group_id
                       WHERE gm.group_id = $1 AND gm.user_id = $2 AND {MAY_POST}
                   ), bumped AS (
                       UPDATE groups SET last_seq = last_seq + 1,
                           last_update_seq = last_update_seq + (($11::bigint > 0)::int)
                       WHERE id = $1 AND EXISTS (SELECT 1 FROM member)
                         AND ($5::text IS NULL OR NOT EXISTS (
                               SELECT 1 FROM messages
                               WHERE group_id = $1 AND user_id = $2 AND client_msg_id = $5))
                       RETURNING last_seq, last_update_seq
                   ), ins AS (
                       INSERT INTO messages (group_id, seq, user_id, kind, content,
                                             client_msg_id, reply_to_id, attachment_id, mentions,
                                             via_backend, thread_parent_id, also_in_group)
                       SELECT $1, last_seq, $2, $3, $4, $5, NULLIF($6, 0), NULLIF($7, ''),
                              $8::jsonb, $10, NULLIF($11::bigint, 0), $12
                       FROM bumped
                       RETURNING id, seq, created_at
                   ), men AS (
                       INSERT INTO message_mentions (message_id, group_id, seq, user_id, from_user)
                       SELECT ins.id, $1, ins.seq, u, $2 FROM ins, unnest($9::bigint[]) AS u
                   ){claim}
                   SELECT id, seq, created_at FROM ins""",
                group_id,
                sender.id,
                int(kind),
                content,
                key,
                reply_to_id,
                attachment_id,
                mention_json,
                mentioned,
                via_backend,
                thread.parent_id if thread else 0,
                bool(thread and thread.also_in_group),
                *thread_args,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "messages_attachment_idx":
                raise InvalidArgument(
                    f"attachment {attachment_id} was already sent in another message"
                ) from exc
            row = None  # a concurrent retry with the same key won; return its message below
        if row is not None:
            message = Message(
                id=row["id"],
                group_id=group_id,
                seq=row["seq"],
                sender=sender,
                content=content,
                kind=kind,
                created_at_ms=ms(row["created_at"]),
                client_msg_id=client_msg_id,
                mentions=tuple(mentions),
                reply_to_id=reply_to_id,
                via_backend=via_backend,
            )
            if reply_to_id or attachment_id or thread:
                full = await self.get_message(row["id"])
                message = full if full is not None else message
            return PostResult(message=message, duplicate=False)
        if key is not None:
            existing = await self._pool.fetchrow(
                select_messages(
                    "WHERE m.group_id = $1 AND m.user_id = $2 AND m.client_msg_id = $3"
                ),
                group_id,
                sender.id,
                key,
            )
            if existing is not None:
                return PostResult(message=message_from_row(existing), duplicate=True)
        await refuse_reason(self._pool, group_id, sender.id)
        return None

    @storage_errors
    async def get_message(self, message_id: int, viewer: int = 0) -> Message | None:
        row = await self._pool.fetchrow(
            select_messages("WHERE m.id = $1", "$2"), message_id, viewer
        )
        return None if row is None else message_from_row(row)

    @storage_errors
    async def history(
        self, group_id: int, before_id: int, limit: int, viewer: int = 0
    ) -> HistoryPage:
        async with self._reads.reader() as conn:
            return await self._history(conn, group_id, before_id, limit, viewer)

    @staticmethod
    async def _history(
        conn: Conn, group_id: int, before_id: int, limit: int, viewer: int
    ) -> HistoryPage:
        if before_id:
            # The anchor's position in the same query: one round trip for a page.
            rows = await conn.fetch(
                select_messages(
                    "WHERE m.group_id = $1 AND m.seq < (SELECT b.seq FROM messages b"
                    f" WHERE b.id = $2 AND b.group_id = $1) AND {_IN_TIMELINE}"
                    f" ORDER BY m.seq DESC {limit_sql(limit + 1)}", "$3"
                ),
                group_id,
                before_id,
                viewer,
            )
            if not rows and not await conn.fetchval(
                "SELECT true FROM messages WHERE id = $1 AND group_id = $2", before_id, group_id
            ):
                raise NotFound(f"message {before_id} is not in group {group_id}")
        else:
            rows = await conn.fetch(
                select_messages(
                    f"WHERE m.group_id = $1 AND {_IN_TIMELINE}"
                    f" ORDER BY m.seq DESC {limit_sql(limit + 1)}", "$2"
                ),
                group_id,
                viewer,
            )
        has_more = len(rows) > limit
        page = [message_from_row(r) for r in rows[:limit]]
        page.reverse()
        return HistoryPage(messages=page, has_more=has_more)

    @storage_errors
    async def messages_after(
        self, group_id: int, after_seq: int, upto_seq: int, limit: int
    ) -> list[Message]:
        rows = await self._pool.fetch(
            select_messages(
                "WHERE m.group_id = $1 AND m.seq > $2 AND m.seq <= $3"
                f" ORDER BY m.seq {limit_sql(limit)}"
            ),
            group_id,
            after_seq,
            upto_seq,
        )
        return [message_from_row(r) for r in rows]

    @storage_errors
    async def updates_after(
        self, group_id: int, after_update_seq: int, upto_seq: int, limit: int, viewer: int
    ) -> list[Message]:
        """Messages up to `upto_seq` changed (edited, deleted, reacted to) since a position."""
        rows = await self._pool.fetch(
            select_messages(
                f"""WHERE m.group_id = $1 AND m.update_seq > $2 AND m.seq <= $3
                   ORDER BY m.update_seq {limit_sql(limit)}""",
                "$4",
            ),
            group_id,
            after_update_seq,
            upto_seq,
            viewer,
        )
        return [message_from_row(r) for r in rows]

    @storage_errors
    async def mentions_of(self, user_id: int, before_id: int, limit: int) -> HistoryPage:
        """Messages mentioning the user by name or @all in groups they belong to."""
        async with self._reads.reader() as conn:
            rows = await conn.fetch(
                select_messages(
                    f"""WHERE m.id IN (
                           SELECT mm.message_id FROM message_mentions mm
                           JOIN group_members gm ON gm.group_id = mm.group_id AND gm.user_id = $1
                           WHERE mm.user_id IN ($1, 0) AND mm.from_user <> $1
                             AND ($2::bigint = 0 OR mm.message_id < $2::bigint)
                           ORDER BY mm.message_id DESC {limit_sql(limit + 1)})
                       AND m.deleted_at IS NULL
                       ORDER BY m.id DESC""",
                    "$1",
                ),
                user_id,
                before_id,
            )
        return HistoryPage(messages=[message_from_row(r) for r in rows[:limit]],
                           has_more=len(rows) > limit)

    @storage_errors
    async def attachment_usable(self, attachment_id: str, owner_id: int, group_id: int) -> bool:
        found = await self._pool.fetchval(
            """SELECT 1 FROM attachments WHERE id = $1 AND owner_id = $2 AND group_id = $3
               AND completed_at IS NOT NULL AND message_id IS NULL""",
            attachment_id,
            owner_id,
            group_id,
        )
        return found is not None
