"""Users and group membership: who belongs where, in what role; joins, leaves, removals.

A membership change is a SYSTEM message: it takes the group's next seq under the group's row
lock, in the same transaction as the change.
"""

from __future__ import annotations

from chat_service.domain.errors import InvalidArgument, NotFound, PermissionDenied
from chat_service.domain.models import (
    Member,
    MemberChange,
    MembershipResult,
    Message,
    Role,
    UserProfile,
)
from chat_service.domain.system_text import membership_changed
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.groups import insert_system
from chat_service.storage.postgres.pool import Conn, PostgresStore
from chat_service.storage.postgres.rows import member_from_row, ms, profile_from_row


async def _record_change(
    conn: Conn,
    group_id: int,
    member_delta: int,
    user_id: int,
    actor: UserProfile,
    by_self: bool,
    verbs: tuple[str, str],
) -> Message:
    """Take the group's next seq (and adjust its member count) for a membership change, and
    store the change as a SYSTEM message. `verbs` = (said when the user did it themself, said
    when the actor did it to them): ("joined", "added") gives "Bo joined" or "Ann added Bo"."""
    seq = await conn.fetchval(
        """UPDATE groups SET last_seq = last_seq + 1, member_count = member_count + $2
           WHERE id = $1 RETURNING last_seq""",
        group_id,
        member_delta,
    )
    if seq is None:
        raise NotFound(f"group {group_id} does not exist")
    name = await conn.fetchval("SELECT name FROM users WHERE id = $1", user_id) or ""
    text = membership_changed(name, user_id, actor, by_self, verbs)
    return await insert_system(conn, group_id, int(seq), actor, text)


class PostgresMembers(PostgresStore):
    @storage_errors
    async def upsert_user(self, user: UserProfile) -> None:
        await self._pool.execute(
            """INSERT INTO users (id, name, email, avatar) VALUES ($1, $2, $3, $4)
               ON CONFLICT (id) DO UPDATE SET
                 name = COALESCE(NULLIF(EXCLUDED.name, ''), users.name),
                 email = COALESCE(NULLIF(EXCLUDED.email, ''), users.email),
                 avatar = COALESCE(NULLIF(EXCLUDED.avatar, ''), users.avatar),
                 updated_at = now()
               WHERE users.directory_at IS NULL  -- synced by the backend: claims ignored
                 AND (users.name, users.email, users.avatar) IS DISTINCT FROM
                     (COALESCE(NULLIF(EXCLUDED.name, ''), users.name),
                      COALESCE(NULLIF(EXCLUDED.email, ''), users.email),
                      COALESCE(NULLIF(EXCLUDED.avatar, ''), users.avatar))""",
            user.id,
            user.name,
            user.email,
            user.avatar,
        )

    @storage_errors
    async def role_of(self, group_id: int, user_id: int) -> Role:
        role = await self._pool.fetchval(
            "SELECT role FROM group_members WHERE group_id = $1 AND user_id = $2",
            group_id,
            user_id,
        )
        return Role(role or 0)

    @storage_errors
    async def add_member(
        self, group_id: int, user_id: int, actor: UserProfile, max_members: int
    ) -> MembershipResult:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING", user_id
            )
            # Lock the group row first: membership changes and sends of a group serialise here.
            group = await conn.fetchrow(
                """SELECT member_count, direct_low IS NOT NULL AS direct,
                          EXISTS (SELECT 1 FROM group_bans b WHERE b.group_id = $1
                                  AND b.user_id = $2 AND b.until > now()) AS banned
                   FROM groups WHERE id = $1 FOR UPDATE""",
                group_id,
                user_id,
            )
            if group is None:
                raise NotFound(f"group {group_id} does not exist")
            count = group["member_count"]
            if group["direct"]:
                raise PermissionDenied("a direct conversation has exactly its two users")
            if group["banned"]:
                raise PermissionDenied(f"user {user_id} is banned from group {group_id}")
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
            message = await _record_change(
                conn, group_id, +1, user_id, actor, user_id == actor.id, ("joined", "added")
            )
        return MembershipResult(changed=True, message=message)

    @storage_errors
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
            message = await _record_change(
                conn, group_id, -1, user_id, actor, change == MemberChange.LEFT, ("left", "removed")
            )
        return MembershipResult(changed=True, message=message)

    @storage_errors
    async def list_members(self, group_id: int) -> list[Member]:
        async with self._reads.reader() as conn:
            rows = await conn.fetch(
                """SELECT m.user_id, m.role, m.joined_at, u.name, u.email, u.avatar
                   FROM group_members m LEFT JOIN users u ON u.id = m.user_id
                   WHERE m.group_id = $1
                   ORDER BY m.role DESC, m.joined_at, m.user_id""",
                group_id,
            )
        return [member_from_row(r) for r in rows]

    @storage_errors
    async def member_ids(self, group_id: int) -> list[int]:
        rows = await self._pool.fetch(
            "SELECT user_id FROM group_members WHERE group_id = $1", group_id
        )
        return [r["user_id"] for r in rows]

    @storage_errors
    async def member_names(self, group_id: int) -> list[tuple[int, str]]:
        rows = await self._pool.fetch(
            """SELECT m.user_id, u.name FROM group_members m
               LEFT JOIN users u ON u.id = m.user_id WHERE m.group_id = $1""",
            group_id,
        )
        return [(r["user_id"], r["name"] or "") for r in rows]

    @storage_errors
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
        user = await self._pool.fetchrow(
            "SELECT id, name, email, avatar FROM users WHERE id = $1", user_id
        )
        profile = UserProfile(user_id) if user is None else profile_from_row(user, "id")
        return Member(user=profile, role=Role(row["role"]), joined_at_ms=ms(row["joined_at"]))
