"""Direct (1:1) conversations: one group per pair of users, whoever asks first, on whatever
pod. The partial unique index on (direct_low, direct_high) decides between concurrent
creators: the loser's insert does nothing and it reads the winner's group."""

from __future__ import annotations

from chat_service.domain.models import Message, UserProfile
from chat_service.domain.system_text import direct_started
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.groups import insert_system
from chat_service.storage.postgres.pool import PostgresStore


class PostgresDirect(PostgresStore):
    @storage_errors
    async def get_or_create_direct(
        self, caller: UserProfile, other_id: int
    ) -> tuple[int, Message | None]:
        """The conversation's group id, and its first SYSTEM message when this call created
        it (None when it existed)."""
        low, high = sorted((caller.id, other_id))
        found = await self.find_direct(low, high)
        if found is not None:
            return found, None
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO users (id) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING",
                [low, high],
            )
            gid = await conn.fetchval(
                """INSERT INTO groups (name, description, created_by, invite_only, last_seq,
                                       member_count, direct_low, direct_high)
                   VALUES ('', '', $1, TRUE, 1, 2, $2, $3)
                   ON CONFLICT (direct_low, direct_high) WHERE direct_low IS NOT NULL
                   DO NOTHING RETURNING id""",
                caller.id,
                low,
                high,
            )
            if gid is not None:
                await conn.execute(
                    """INSERT INTO group_members (group_id, user_id, role)
                       SELECT $1, unnest($2::bigint[]), 1""",
                    gid,
                    [low, high],
                )
                first = await insert_system(conn, gid, 1, caller, direct_started(caller))
                return gid, first
        # Another call created it between our look and our insert (it has committed: the
        # insert waited for it).
        winner = await self.find_direct(low, high)
        assert winner is not None
        return winner, None

    @storage_errors
    async def find_direct(self, user_a: int, user_b: int) -> int | None:
        low, high = sorted((user_a, user_b))
        gid: int | None = await self._pool.fetchval(
            "SELECT id FROM groups WHERE direct_low = $1 AND direct_high = $2", low, high
        )
        return gid
