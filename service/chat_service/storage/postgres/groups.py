"""Groups: creation, what a viewer sees of one, and the heads (last seq) the fan-out needs.

Sequence numbers are assigned by bumping `groups.last_seq` in the same statement/transaction
as the insert, so they are gap-free and a group's commits are serialised by its row lock.
"""

from __future__ import annotations

from collections.abc import Sequence

from chat_service.domain.models import Group, GroupHead, Message, MessageKind, UserProfile
from chat_service.domain.system_text import group_created
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.pool import Conn, PostgresStore
from chat_service.storage.postgres.rows import GROUP_COLUMNS, group_from_row, ms


async def insert_system(
    conn: Conn, group_id: int, seq: int, actor: UserProfile, text: str
) -> Message:
    """A SYSTEM message at `seq`, which the caller has already taken from the group row."""
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
        created_at_ms=ms(row["created_at"]),
    )


class PostgresGroups(PostgresStore):
    @storage_errors
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
            message = await insert_system(
                conn, gid, 1, creator, group_created(creator, name)
            )
        return group_from_row(row, [creator.id, *others]), message

    @storage_errors
    async def get_group(self, group_id: int, viewer_id: int) -> Group | None:
        row = await self._pool.fetchrow(
            f"""SELECT {GROUP_COLUMNS},
                      ARRAY(SELECT user_id FROM group_members WHERE group_id = g.id
                            ORDER BY joined_at, user_id) AS member_ids
               FROM groups g
               LEFT JOIN group_members m ON m.group_id = g.id AND m.user_id = $2
               WHERE g.id = $1""",
            group_id,
            viewer_id,
        )
        return None if row is None else group_from_row(row, row["member_ids"])

    @storage_errors
    async def list_groups_for_user(self, user_id: int) -> list[Group]:
        rows = await self._pool.fetch(
            f"""SELECT {GROUP_COLUMNS}
               FROM group_members m JOIN groups g ON g.id = m.group_id
               WHERE m.user_id = $1
               ORDER BY g.id""",
            user_id,
        )
        return [group_from_row(r) for r in rows]

    @storage_errors
    async def group_ids_for_user(self, user_id: int) -> list[int]:
        rows = await self._pool.fetch(
            "SELECT group_id FROM group_members WHERE user_id = $1 ORDER BY group_id", user_id
        )
        return [r["group_id"] for r in rows]

    @storage_errors
    async def heads_for_user(self, user_id: int) -> dict[int, GroupHead]:
        rows = await self._pool.fetch(
            """SELECT g.id, g.last_seq, g.last_update_seq
               FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.user_id = $1""",
            user_id,
        )
        return {r["id"]: GroupHead(r["last_seq"], r["last_update_seq"]) for r in rows}

    @storage_errors
    async def group_heads(self, group_ids: Sequence[int]) -> dict[int, int]:
        rows = await self._pool.fetch(
            "SELECT id, last_seq FROM groups WHERE id = ANY($1::bigint[])", list(group_ids)
        )
        return {r["id"]: r["last_seq"] for r in rows}
