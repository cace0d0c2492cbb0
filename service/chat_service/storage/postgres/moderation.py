"""Moderation: group bans, mutes by moderators, backend-wide bans and the moderation log.

A group ban is a row in `group_bans` (the removal itself is a membership change, members.py);
joins check it under the group's row lock. A mute is `group_members.silenced_until`; the send
statements (messages.py, send_batcher.py) refuse a muted member, or any member of an archived
group, in the same statement as the insert (`MAY_POST`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from chat_service.domain.errors import PermissionDenied
from chat_service.domain.models import ActionKind, ModerationAction
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.pool import Conn, PostgresStore
from chat_service.storage.postgres.rows import ms

# With `g` the group and `gm` the sender's membership: may this member post now?
MAY_POST = "g.archived_at IS NULL AND (gm.silenced_until IS NULL OR gm.silenced_until <= now())"

# A time in ms since the epoch as stored: 0 means no expiry ('infinity').
UNTIL = "CASE WHEN {0} = 0 THEN 'infinity'::timestamptz ELSE to_timestamp({0} / 1000.0) END"
UNTIL_MS = "CASE WHEN {0} = 'infinity' THEN 0 ELSE (extract(epoch FROM {0}) * 1000)::bigint END"


async def refuse_reason(conn: asyncpg.Pool | Conn, group_id: int, user_id: int) -> None:
    """After a refused send: PermissionDenied saying why when the sender is a member of an
    archived group or muted (a non-member is the caller's to answer)."""
    row = await conn.fetchrow(
        f"""SELECT g.archived_at IS NOT NULL AS archived,
                  gm.silenced_until > now() AS silenced, {UNTIL_MS.format("gm.silenced_until")}
                    AS until_ms
           FROM groups g JOIN group_members gm ON gm.group_id = g.id AND gm.user_id = $2
           WHERE g.id = $1""",
        group_id,
        user_id,
    )
    if row is None:
        return
    if row["archived"]:
        raise PermissionDenied(f"group {group_id} is archived: it is read-only")
    if row["silenced"]:
        until = row["until_ms"]
        when = (
            "until a moderator lifts it" if not until
            else f"until {datetime.fromtimestamp(until / 1000, UTC).isoformat(timespec='seconds')}"
        )
        raise PermissionDenied(f"you are muted in group {group_id} {when}")


def action_from_row(r: asyncpg.Record) -> ModerationAction:
    return ModerationAction(
        id=r["id"],
        group_id=r["group_id"],
        user_id=r["user_id"],
        actor_id=r["actor_id"],
        kind=ActionKind(r["kind"]),
        reason=r["reason"],
        expires_at_ms=int(r["expires_ms"] or 0),
        created_at_ms=ms(r["created_at"]),
        message_id=r["message_id"],
    )


_ACTION_COLUMNS = f"""id, group_id, user_id, actor_id, kind, reason, message_id, created_at,
    COALESCE({UNTIL_MS.format("expires_at")}, 0) AS expires_ms"""


class PostgresModeration(PostgresStore):
    @storage_errors
    async def ban_from_group(self, group_id: int, user_id: int, until_ms: int, reason: str
                             ) -> None:
        await self._pool.execute(
            f"""INSERT INTO group_bans (group_id, user_id, until, reason)
               VALUES ($1, $2, {UNTIL.format("$3::bigint")}, $4)
               ON CONFLICT (group_id, user_id) DO UPDATE SET until = EXCLUDED.until,
                                                             reason = EXCLUDED.reason""",
            group_id,
            user_id,
            until_ms,
            reason,
        )

    @storage_errors
    async def unban_from_group(self, group_id: int, user_id: int) -> bool:
        done = await self._pool.fetchval(
            "DELETE FROM group_bans WHERE group_id = $1 AND user_id = $2 RETURNING 1",
            group_id,
            user_id,
        )
        return done is not None

    @storage_errors
    async def silence(self, group_id: int, user_id: int, until_ms: int | None) -> bool:
        """Mute a member until `until_ms` (0: until lifted), or unmute (None). False when the
        user is not a member."""
        done = await self._pool.fetchval(
            f"""UPDATE group_members
               SET silenced_until = CASE WHEN $3::bigint IS NULL THEN NULL
                                         ELSE {UNTIL.format("$3::bigint")} END
               WHERE group_id = $1 AND user_id = $2 RETURNING 1""",
            group_id,
            user_id,
            until_ms,
        )
        return done is not None

    @storage_errors
    async def record_action(
        self,
        *,
        group_id: int,
        user_id: int,
        actor_id: int,
        kind: ActionKind,
        reason: str,
        expires_at_ms: int = 0,
        message_id: int = 0,
    ) -> ModerationAction:
        row = await self._pool.fetchrow(
            f"""INSERT INTO moderation_actions
                 (group_id, user_id, actor_id, kind, reason, expires_at, message_id)
               VALUES ($1, $2, $3, $4, $5,
                       CASE WHEN $6::bigint = 0 THEN NULL ELSE to_timestamp($6 / 1000.0) END, $7)
               RETURNING {_ACTION_COLUMNS}""",
            group_id,
            user_id,
            actor_id,
            int(kind),
            reason,
            expires_at_ms,
            message_id,
        )
        assert row is not None
        return action_from_row(row)

    @storage_errors
    async def list_actions(
        self, group_id: int, before_id: int, limit: int
    ) -> tuple[list[ModerationAction], bool]:
        rows = await self._pool.fetch(
            f"""SELECT {_ACTION_COLUMNS} FROM moderation_actions
               WHERE group_id = $1 AND ($2::bigint = 0 OR id < $2)
               ORDER BY id DESC LIMIT $3""",
            group_id,
            before_id,
            limit + 1,
        )
        return [action_from_row(r) for r in rows[:limit]], len(rows) > limit

    @storage_errors
    async def set_user_ban(self, user_id: int, until_ms: int | None, reason: str) -> None:
        """Ban a user everywhere until `until_ms` (0: until lifted), or lift it (None)."""
        await self._pool.execute(
            f"""INSERT INTO users (id, banned_until, ban_reason)
               VALUES ($1, CASE WHEN $2::bigint IS NULL THEN NULL
                                ELSE {UNTIL.format("$2::bigint")} END, $3)
               ON CONFLICT (id) DO UPDATE SET banned_until = EXCLUDED.banned_until,
                                              ban_reason = EXCLUDED.ban_reason""",
            user_id,
            until_ms,
            reason,
        )

    @storage_errors
    async def banned_users(self) -> dict[int, int]:
        """Users who may not connect -> until when (ms; 0: for good). Erased users for good."""
        rows = await self._pool.fetch(
            f"""SELECT id, CASE WHEN erased_at IS NOT NULL THEN 0
                               ELSE {UNTIL_MS.format("banned_until")} END AS until_ms
               FROM users
               WHERE (banned_until IS NOT NULL OR erased_at IS NOT NULL)
                 AND (erased_at IS NOT NULL OR banned_until > now())"""
        )
        return {r["id"]: int(r["until_ms"]) for r in rows}
