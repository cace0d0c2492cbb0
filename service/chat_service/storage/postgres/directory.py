"""The user directory the app's backend keeps (UpsertUsers, DeleteUser): profiles that win
over token claims once synced (`directory_at`), anonymisation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chat_service.domain.models import UserProfile
from chat_service.domain.system_text import DELETED_USER
from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.pool import PostgresStore


class PostgresDirectory(PostgresStore):
    @storage_errors
    async def upsert_directory(self, users: Sequence[UserProfile]) -> list[int]:
        """Store the profiles as given (the backend is the authority); the ids whose stored
        profile changed. Erased users stay erased."""
        rows = await self._pool.fetch(
            """INSERT INTO users AS u (id, name, email, avatar, custom, directory_at)
               SELECT i, n, e, a, NULLIF(c, '')::jsonb, now()
               FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
                    AS x(i, n, e, a, c)
               ON CONFLICT (id) DO UPDATE SET
                 name = EXCLUDED.name, email = EXCLUDED.email, avatar = EXCLUDED.avatar,
                 custom = EXCLUDED.custom, directory_at = now(), deleted_at = NULL,
                 updated_at = now()
               WHERE u.erased_at IS NULL
                 AND (u.name, u.email, u.avatar, u.custom, u.directory_at IS NULL,
                      u.deleted_at IS NULL)
                     IS DISTINCT FROM
                     (EXCLUDED.name, EXCLUDED.email, EXCLUDED.avatar, EXCLUDED.custom, FALSE,
                      TRUE)
               RETURNING id""",
            [u.id for u in users],
            [u.name for u in users],
            [u.email for u in users],
            [u.avatar for u in users],
            [u.custom_json for u in users],
        )
        return sorted(r["id"] for r in rows)

    @storage_errors
    async def profile_of(self, user_id: int) -> UserProfile:
        row = await self._pool.fetchrow(
            "SELECT name, email, avatar, custom FROM users WHERE id = $1",
            user_id,
        )
        if row is None:
            return UserProfile(id=user_id)
        custom = row["custom"]  # decoded by the pool's jsonb codec; compact as stored by us
        return UserProfile(id=user_id, name=row["name"], email=row["email"],
                           avatar=row["avatar"],
                           custom_json="" if custom is None else compact_json(custom))

    @storage_errors
    async def anonymise_user(self, user_id: int, *, erased: bool) -> None:
        """Name "Deleted user", nothing else kept; `erased`: the user's tokens are refused
        from now on (EraseUser)."""
        await self._pool.execute(
            """INSERT INTO users (id, name, directory_at, deleted_at, erased_at)
               VALUES ($1, $2, now(), now(), CASE WHEN $3 THEN now() END)
               ON CONFLICT (id) DO UPDATE SET
                 name = $2, email = '', avatar = '', custom = NULL, directory_at = now(),
                 deleted_at = COALESCE(users.deleted_at, now()),
                 erased_at = CASE WHEN $3 THEN COALESCE(users.erased_at, now())
                                  ELSE users.erased_at END,
                 private_receipts = TRUE""",
            user_id,
            DELETED_USER,
            erased,
        )


def compact_json(value: Any) -> str:
    """The form domain/backend_validation.py stores (PostgreSQL's jsonb text adds spaces)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
