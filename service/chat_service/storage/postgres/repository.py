"""ChatRepository on PostgreSQL (asyncpg).

Sequence numbers are assigned by bumping `groups.last_seq` in the same statement/transaction
as the insert, so they are gap-free and a group's commits are serialised by its row lock.
Message ids come from an identity column: never derived from clocks.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chat_service.domain.errors import InvalidArgument, NotFound, Unavailable
from chat_service.domain.models import (
    AttachmentInfo,
    Group,
    GroupHead,
    HistoryPage,
    Member,
    MemberChange,
    MembershipResult,
    Mention,
    Message,
    MessageKind,
    PostResult,
    Quote,
    ReactionCount,
    Role,
    UserProfile,
)
from chat_service.storage.postgres.send_batcher import PendingSend, SendBatcher

P = ParamSpec("P")
_Conn = asyncpg.Connection | PoolConnectionProxy
T = TypeVar("T")

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    TimeoutError,
)


def _storage_errors(
    fn: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn 'database unreachable' into a domain Unavailable the client may retry."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except _CONNECTION_ERRORS as exc:
            raise Unavailable("the message store is unreachable; retry shortly") from exc

    return wrapper


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _display(name: str, user_id: int) -> str:
    return name or f"user {user_id}"


def select_messages(where: str, viewer: str = "0") -> str:
    """Messages with sender, reply quote and reaction counts (`mine` for `viewer`)."""
    return f"""SELECT m.id, m.group_id, m.seq, m.user_id, m.kind, m.content, m.client_msg_id,
        m.created_at, m.edited_at, m.deleted_at, m.update_seq, m.reply_to_id, m.mentions,
        u.name AS user_name, u.email AS user_email, u.avatar AS user_avatar,
        r.user_id AS r_user, ru.name AS r_name, left(r.content, 120) AS r_content,
        (r.deleted_at IS NOT NULL) AS r_deleted,
        a.id AS a_id, a.file_name AS a_name, a.content_type AS a_type, a.size AS a_size,
        a.width AS a_width, a.height AS a_height, a.sha256 AS a_sha256,
        (SELECT json_agg(json_build_array(x.emoji, x.n, x.mine) ORDER BY x.first)
           FROM (SELECT emoji, count(*) AS n, bool_or(user_id = {viewer}) AS mine,
                        min(created_at) AS first
                 FROM reactions WHERE message_id = m.id GROUP BY emoji) x) AS reactions
      FROM messages m
      LEFT JOIN users u ON u.id = m.user_id
      LEFT JOIN messages r ON r.id = m.reply_to_id
      LEFT JOIN users ru ON ru.id = r.user_id
      LEFT JOIN attachments a ON a.id = m.attachment_id
      {where}"""


def _message(row: asyncpg.Record) -> Message:
    quote = None
    if row["reply_to_id"] and row["r_user"] is not None:
        quote = Quote(
            id=row["reply_to_id"],
            user_id=row["r_user"],
            user_name=row["r_name"] or "",
            content="" if row["r_deleted"] else row["r_content"] or "",
            deleted=row["r_deleted"],
        )
    return Message(
        id=row["id"],
        group_id=row["group_id"],
        seq=row["seq"],
        sender=UserProfile(
            id=row["user_id"],
            name=row["user_name"] or "",
            email=row["user_email"] or "",
            avatar=row["user_avatar"] or "",
        ),
        content=row["content"],
        kind=MessageKind(row["kind"]),
        created_at_ms=_ms(row["created_at"]),
        client_msg_id=row["client_msg_id"] or "",
        mentions=tuple(
            Mention(user_id=m[0], offset=m[1], length=m[2]) for m in row["mentions"] or ()
        ),
        reactions=tuple(
            ReactionCount(emoji=e, count=n, mine=bool(mine))
            for e, n, mine in row["reactions"] or ()
        ),
        reply_to_id=row["reply_to_id"] or 0,
        reply_quote=quote,
        edited_at_ms=_ms(row["edited_at"]) if row["edited_at"] else 0,
        deleted=row["deleted_at"] is not None,
        update_seq=row["update_seq"],
        attachment=None
        if row["a_id"] is None
        else AttachmentInfo(
            id=row["a_id"],
            file_name=row["a_name"],
            content_type=row["a_type"],
            size=row["a_size"],
            width=row["a_width"],
            height=row["a_height"],
            sha256=row["a_sha256"],
        ),
    )


def _group(row: asyncpg.Record, member_ids: Sequence[int] = ()) -> Group:
    return Group(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        created_by=row["created_by"],
        created_at_ms=_ms(row["created_at"]),
        invite_only=row["invite_only"],
        last_seq=row["last_seq"],
        member_count=row["member_count"],
        member_ids=tuple(member_ids),
        my_role=Role(row["my_role"] or 0),
        read_seq=_opt(row, "read_seq"),
        unread_count=_opt(row, "unread_count"),
        mention_count=_opt(row, "mention_count"),
        muted=bool(_opt(row, "muted")),
        last_update_seq=_opt(row, "last_update_seq"),
    )


def _opt(row: asyncpg.Record, key: str) -> int:
    try:
        return int(row[key] or 0)
    except KeyError:
        return 0


class PostgresChatRepository:
    def __init__(self, pool: asyncpg.Pool, batch_sends: bool = True) -> None:
        self._pool = pool
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

    @_storage_errors
    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    @_storage_errors
    async def upsert_user(self, user: UserProfile) -> None:
        await self._pool.execute(
            """INSERT INTO users (id, name, email, avatar) VALUES ($1, $2, $3, $4)
               ON CONFLICT (id) DO UPDATE SET
                 name = COALESCE(NULLIF(EXCLUDED.name, ''), users.name),
                 email = COALESCE(NULLIF(EXCLUDED.email, ''), users.email),
                 avatar = COALESCE(NULLIF(EXCLUDED.avatar, ''), users.avatar),
                 updated_at = now()
               WHERE (users.name, users.email, users.avatar) IS DISTINCT FROM
                     (COALESCE(NULLIF(EXCLUDED.name, ''), users.name),
                      COALESCE(NULLIF(EXCLUDED.email, ''), users.email),
                      COALESCE(NULLIF(EXCLUDED.avatar, ''), users.avatar))""",
            user.id,
            user.name,
            user.email,
            user.avatar,
        )

    @_storage_errors
    async def create_group(
        self,
        *,
        name: str,
        description: str,
        creator: UserProfile,
        member_ids: Sequence[int],
        invite_only: bool,
    ) -> tuple[Group, Message]:
        others = [m for m in member_ids if m != creator.id]
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """INSERT INTO groups (name, description, created_by, invite_only,
                                       last_seq, member_count)
                   VALUES ($1, $2, $3, $4, 1, $5)
                   RETURNING id, name, description, created_by, invite_only, created_at,
                             last_seq, member_count, 3 AS my_role""",
                name,
                description,
                creator.id,
                invite_only,
                1 + len(others),
            )
            assert row is not None
            gid: int = row["id"]
            await conn.execute(
                "INSERT INTO users (id) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING",
                others,
            )
            await conn.execute(
                """INSERT INTO group_members (group_id, user_id, role)
                   SELECT $1, u, CASE WHEN u = $2 THEN 3 ELSE 1 END
                   FROM unnest($3::bigint[]) AS u""",
                gid,
                creator.id,
                [creator.id, *others],
            )
            message = await self._insert_system(
                conn, gid, 1, creator, f'{_display(creator.name, creator.id)} created "{name}"'
            )
        return _group(row, [creator.id, *others]), message

    async def _insert_system(
        self, conn: _Conn, group_id: int, seq: int, actor: UserProfile, text: str
    ) -> Message:
        row = await conn.fetchrow(
            """INSERT INTO messages (group_id, seq, user_id, kind, content)
               VALUES ($1, $2, $3, 3, $4) RETURNING id, created_at""",
            group_id,
            seq,
            actor.id,
            text,
        )
        assert row is not None
        return Message(
            id=row["id"],
            group_id=group_id,
            seq=seq,
            sender=actor,
            content=text,
            kind=MessageKind.SYSTEM,
            created_at_ms=_ms(row["created_at"]),
        )

    @_storage_errors
    async def get_group(self, group_id: int, viewer_id: int) -> Group | None:
        row = await self._pool.fetchrow(
            """SELECT g.id, g.name, g.description, g.created_by, g.invite_only, g.created_at,
                      g.last_seq, g.member_count, COALESCE(m.role, 0) AS my_role,
                      m.read_seq, m.muted, g.last_update_seq,
                      (SELECT count(*) FROM messages x
                        WHERE x.group_id = g.id AND x.seq > m.read_seq
                          AND x.user_id <> m.user_id) AS unread_count,
                      (SELECT count(*) FROM message_mentions mm
                        WHERE mm.group_id = g.id AND mm.seq > m.read_seq
                          AND mm.user_id IN (m.user_id, 0)
                          AND mm.from_user <> m.user_id) AS mention_count,
                      ARRAY(SELECT user_id FROM group_members WHERE group_id = g.id
                            ORDER BY joined_at, user_id) AS member_ids
               FROM groups g
               LEFT JOIN group_members m ON m.group_id = g.id AND m.user_id = $2
               WHERE g.id = $1""",
            group_id,
            viewer_id,
        )
        return None if row is None else _group(row, row["member_ids"])

    @_storage_errors
    async def list_groups_for_user(self, user_id: int) -> list[Group]:
        rows = await self._pool.fetch(
            """SELECT g.id, g.name, g.description, g.created_by, g.invite_only, g.created_at,
                      g.last_seq, g.member_count, m.role AS my_role,
                      m.read_seq, m.muted, g.last_update_seq,
                      (SELECT count(*) FROM messages x
                        WHERE x.group_id = g.id AND x.seq > m.read_seq
                          AND x.user_id <> m.user_id) AS unread_count,
                      (SELECT count(*) FROM message_mentions mm
                        WHERE mm.group_id = g.id AND mm.seq > m.read_seq
                          AND mm.user_id IN (m.user_id, 0)
                          AND mm.from_user <> m.user_id) AS mention_count
               FROM group_members m JOIN groups g ON g.id = m.group_id
               WHERE m.user_id = $1
               ORDER BY g.id""",
            user_id,
        )
        return [_group(r) for r in rows]

    @_storage_errors
    async def role_of(self, group_id: int, user_id: int) -> Role:
        role = await self._pool.fetchval(
            "SELECT role FROM group_members WHERE group_id = $1 AND user_id = $2",
            group_id,
            user_id,
        )
        return Role(role or 0)

    async def _bump(self, conn: _Conn, group_id: int, member_delta: int) -> int:
        seq = await conn.fetchval(
            """UPDATE groups SET last_seq = last_seq + 1, member_count = member_count + $2
               WHERE id = $1 RETURNING last_seq""",
            group_id,
            member_delta,
        )
        if seq is None:
            raise NotFound(f"group {group_id} does not exist")
        return int(seq)

    async def _name_of(self, conn: _Conn, user_id: int) -> str:
        name = await conn.fetchval("SELECT name FROM users WHERE id = $1", user_id)
        return _display(name or "", user_id)

    @_storage_errors
    async def add_member(
        self, group_id: int, user_id: int, actor: UserProfile, max_members: int
    ) -> MembershipResult:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING", user_id
            )
            # Lock the group row first: membership changes and sends of a group serialise here.
            count = await conn.fetchval(
                "SELECT member_count FROM groups WHERE id = $1 FOR UPDATE", group_id
            )
            if count is None:
                raise NotFound(f"group {group_id} does not exist")
            inserted = await conn.fetchval(
                """INSERT INTO group_members (group_id, user_id, role) VALUES ($1, $2, 1)
                   ON CONFLICT DO NOTHING RETURNING user_id""",
                group_id,
                user_id,
            )
            if inserted is None:
                return MembershipResult(changed=False, message=None)
            if count >= max_members:
                raise InvalidArgument(
                    f"group {group_id} is full ({max_members} members max)"
                )
            seq = await self._bump(conn, group_id, +1)
            name = await self._name_of(conn, user_id)
            text = (
                f"{name} joined"
                if user_id == actor.id
                else f"{_display(actor.name, actor.id)} added {name}"
            )
            message = await self._insert_system(conn, group_id, seq, actor, text)
        return MembershipResult(changed=True, message=message)

    @_storage_errors
    async def remove_member(
        self, group_id: int, user_id: int, actor: UserProfile, change: MemberChange
    ) -> MembershipResult:
        async with self._pool.acquire() as conn, conn.transaction():
            exists = await conn.fetchval(
                "SELECT 1 FROM groups WHERE id = $1 FOR UPDATE", group_id
            )
            if exists is None:
                raise NotFound(f"group {group_id} does not exist")
            role = await conn.fetchval(
                "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2 RETURNING role",
                group_id,
                user_id,
            )
            if role is None:
                return MembershipResult(changed=False, message=None)
            if role == Role.OWNER:
                # Hand the group to the longest-standing admin, else the oldest member.
                await conn.execute(
                    """UPDATE group_members SET role = 3
                       WHERE (group_id, user_id) = (
                         SELECT group_id, user_id FROM group_members WHERE group_id = $1
                         ORDER BY role DESC, joined_at, user_id LIMIT 1)""",
                    group_id,
                )
            seq = await self._bump(conn, group_id, -1)
            name = await self._name_of(conn, user_id)
            text = (
                f"{name} left"
                if change == MemberChange.LEFT
                else f"{_display(actor.name, actor.id)} removed {name}"
            )
            message = await self._insert_system(conn, group_id, seq, actor, text)
        return MembershipResult(changed=True, message=message)

    @_storage_errors
    async def list_members(self, group_id: int) -> list[Member]:
        rows = await self._pool.fetch(
            """SELECT m.user_id, m.role, m.joined_at, u.name, u.email, u.avatar
               FROM group_members m LEFT JOIN users u ON u.id = m.user_id
               WHERE m.group_id = $1
               ORDER BY m.role DESC, m.joined_at, m.user_id""",
            group_id,
        )
        return [
            Member(
                user=UserProfile(
                    id=r["user_id"],
                    name=r["name"] or "",
                    email=r["email"] or "",
                    avatar=r["avatar"] or "",
                ),
                role=Role(r["role"]),
                joined_at_ms=_ms(r["joined_at"]),
            )
            for r in rows
        ]

    @_storage_errors
    async def member_ids(self, group_id: int) -> list[int]:
        rows = await self._pool.fetch(
            "SELECT user_id FROM group_members WHERE group_id = $1", group_id
        )
        return [r["user_id"] for r in rows]

    @_storage_errors
    async def set_role(self, group_id: int, user_id: int, role: Role) -> Member | None:
        row = await self._pool.fetchrow(
            """UPDATE group_members m SET role = $3 FROM (SELECT 1) AS one
               WHERE m.group_id = $1 AND m.user_id = $2 AND m.role <> 3
               RETURNING m.user_id, m.role, m.joined_at""",
            group_id,
            user_id,
            int(role),
        )
        if row is None:
            return None
        name = await self._pool.fetchrow(
            "SELECT name, email, avatar FROM users WHERE id = $1", user_id
        )
        profile = UserProfile(
            user_id,
            (name["name"] if name else "") or "",
            (name["email"] if name else "") or "",
            (name["avatar"] if name else "") or "",
        )
        return Member(user=profile, role=Role(row["role"]), joined_at_ms=_ms(row["joined_at"]))

    @_storage_errors
    async def attachment_usable(self, attachment_id: str, owner_id: int, group_id: int) -> bool:
        found = await self._pool.fetchval(
            """SELECT 1 FROM attachments WHERE id = $1 AND owner_id = $2 AND group_id = $3
               AND completed_at IS NOT NULL AND message_id IS NULL""",
            attachment_id,
            owner_id,
            group_id,
        )
        return found is not None

    @_storage_errors
    async def member_names(self, group_id: int) -> list[tuple[int, str]]:
        rows = await self._pool.fetch(
            """SELECT m.user_id, u.name FROM group_members m
               LEFT JOIN users u ON u.id = m.user_id WHERE m.group_id = $1""",
            group_id,
        )
        return [(r["user_id"], r["name"] or "") for r in rows]

    @_storage_errors
    async def mentions_of(self, user_id: int, before_id: int, limit: int) -> HistoryPage:
        """Messages mentioning the user by name or @all in groups they belong to."""
        rows = await self._pool.fetch(
            select_messages(
                """WHERE m.id IN (
                       SELECT mm.message_id FROM message_mentions mm
                       JOIN group_members gm ON gm.group_id = mm.group_id AND gm.user_id = $1
                       WHERE mm.user_id IN ($1, 0) AND mm.from_user <> $1
                         AND ($2::bigint = 0 OR mm.message_id < $2::bigint)
                       ORDER BY mm.message_id DESC LIMIT $3)
                   AND m.deleted_at IS NULL
                   ORDER BY m.id DESC""",
                "$1",
            ),
            user_id,
            before_id,
            limit + 1,
        )
        return HistoryPage(messages=[_message(r) for r in rows[:limit]],
                           has_more=len(rows) > limit)

    @_storage_errors
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
    ) -> PostResult | None:
        if self._batcher is not None and not (reply_to_id or mentions or attachment_id):
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
        try:
            row = await self._pool.fetchrow(
                f"""WITH member AS (
                       SELECT 1 FROM group_members WHERE group_id = $1 AND user_id = $2
                   ), bumped AS (
                       UPDATE groups SET last_seq = last_seq + 1
                       WHERE id = $1 AND EXISTS (SELECT 1 FROM member)
                         AND ($5::text IS NULL OR NOT EXISTS (
                               SELECT 1 FROM messages
                               WHERE group_id = $1 AND user_id = $2 AND client_msg_id = $5))
                       RETURNING last_seq
                   ), ins AS (
                       INSERT INTO messages (group_id, seq, user_id, kind, content,
                                             client_msg_id, reply_to_id, attachment_id, mentions)
                       SELECT $1, last_seq, $2, $3, $4, $5, NULLIF($6, 0), NULLIF($7, ''),
                              $8::jsonb
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
                created_at_ms=_ms(row["created_at"]),
                client_msg_id=client_msg_id,
                mentions=tuple(mentions),
                reply_to_id=reply_to_id,
            )
            if reply_to_id or attachment_id:
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
                return PostResult(message=_message(existing), duplicate=True)
        return None

    @_storage_errors
    async def get_message(self, message_id: int, viewer: int = 0) -> Message | None:
        row = await self._pool.fetchrow(
            select_messages("WHERE m.id = $1", "$2"), message_id, viewer
        )
        return None if row is None else _message(row)

    @_storage_errors
    async def history(
        self, group_id: int, before_id: int, limit: int, viewer: int = 0
    ) -> HistoryPage:
        before_seq: int
        if before_id:
            anchor = await self._pool.fetchval(
                "SELECT seq FROM messages WHERE id = $1 AND group_id = $2", before_id, group_id
            )
            if anchor is None:
                raise NotFound(f"message {before_id} is not in group {group_id}")
            before_seq = int(anchor)
        else:
            before_seq = 2**63 - 1
        rows = await self._pool.fetch(
            select_messages(
                "WHERE m.group_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3", "$4"
            ),
            group_id,
            before_seq,
            limit + 1,
            viewer,
        )
        has_more = len(rows) > limit
        page = [_message(r) for r in rows[:limit]]
        page.reverse()
        return HistoryPage(messages=page, has_more=has_more)

    @_storage_errors
    async def messages_after(
        self, group_id: int, after_seq: int, upto_seq: int, limit: int
    ) -> list[Message]:
        rows = await self._pool.fetch(
            select_messages(
                "WHERE m.group_id = $1 AND m.seq > $2 AND m.seq <= $3 ORDER BY m.seq LIMIT $4"
            ),
            group_id,
            after_seq,
            upto_seq,
            limit,
        )
        return [_message(r) for r in rows]

    @_storage_errors
    async def updates_after(
        self, group_id: int, after_update_seq: int, upto_seq: int, limit: int, viewer: int
    ) -> list[Message]:
        """Messages up to `upto_seq` changed (edited, deleted, reacted to) since a position."""
        rows = await self._pool.fetch(
            select_messages(
                """WHERE m.group_id = $1 AND m.update_seq > $2 AND m.seq <= $3
                   ORDER BY m.update_seq LIMIT $4""",
                "$5",
            ),
            group_id,
            after_update_seq,
            upto_seq,
            limit,
            viewer,
        )
        return [_message(r) for r in rows]

    @_storage_errors
    async def group_ids_for_user(self, user_id: int) -> list[int]:
        rows = await self._pool.fetch(
            "SELECT group_id FROM group_members WHERE user_id = $1 ORDER BY group_id", user_id
        )
        return [r["group_id"] for r in rows]

    @_storage_errors
    async def heads_for_user(self, user_id: int) -> dict[int, GroupHead]:
        rows = await self._pool.fetch(
            """SELECT g.id, g.last_seq, g.last_update_seq
               FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.user_id = $1""",
            user_id,
        )
        return {r["id"]: GroupHead(r["last_seq"], r["last_update_seq"]) for r in rows}

    @_storage_errors
    async def group_heads(self, group_ids: Sequence[int]) -> dict[int, int]:
        rows = await self._pool.fetch(
            "SELECT id, last_seq FROM groups WHERE id = ANY($1::bigint[])", list(group_ids)
        )
        return {r["id"]: r["last_seq"] for r in rows}


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Release without a server round trip (see create_pool), unless a transaction was left
    open (a cancelled call): then roll it back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(
    dsn: str, password: str, min_size: int, max_size: int, **kwargs: Any
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        password=password,
        min_size=min_size,
        max_size=max_size,
        command_timeout=10,
        init=_init_connection,
        # Connections carry no session state (no SET, LISTEN or held locks), so skip the
        # RESET ALL round trip asyncpg would make on every release.
        reset=_no_reset,
        **kwargs,
    )
    assert pool is not None
    return pool
