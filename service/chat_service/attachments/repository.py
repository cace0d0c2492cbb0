"""The attachments table (asyncpg). Every state change is one conditional statement, so
concurrent calls (retries, several pods, the cleanup) cannot corrupt an upload."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from chat_service.attachments.models import Attachment, UploadUsage
from chat_service.storage.postgres.errors import storage_errors as _storage_errors

_COLUMNS = """id, group_id, owner_id, file_name, claimed_type, content_type, size, sha256,
    received, width, height, store, completed_at IS NOT NULL AS completed, message_id, head"""

# A purge that has not finished after this long was left by a pod that died: take it over.
STALE_PURGE_SECONDS = 600


def _attachment(row: asyncpg.Record) -> Attachment:
    return Attachment(
        id=row["id"],
        group_id=row["group_id"],
        owner_id=row["owner_id"],
        file_name=row["file_name"],
        claimed_type=row["claimed_type"],
        content_type=row["content_type"],
        size=row["size"],
        sha256=row["sha256"],
        received=row["received"],
        width=row["width"],
        height=row["height"],
        store=row["store"],
        completed=row["completed"],
        message_id=row["message_id"],
        head=bytes(row["head"]),
    )


class AttachmentRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @_storage_errors
    async def create(
        self,
        *,
        attachment_id: str,
        group_id: int,
        owner_id: int,
        file_name: str,
        claimed_type: str,
        size: int,
        sha256: str,
        store: str,
        window_seconds: float,
        admit: Callable[[UploadUsage], None],
    ) -> Attachment:
        """Record a new upload and its start (for the rate), if `admit` accepts the usage.

        One transaction under advisory locks per user and per group (taken in that order,
        so no deadlock): concurrent starts of one user, or into one group, are counted one
        after the other and cannot overshoot a quota. `admit` raises to refuse; nothing is
        written then."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Separate statements: the usage must be read after the locks are held.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('chat.upload.user.' || $1, 0))",
                str(owner_id),
            )
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('chat.upload.group.' || $1, 0))",
                str(group_id),
            )
            row = await conn.fetchrow(
                """WITH p AS (
                     SELECT count(*) AS n, coalesce(sum(size), 0)::bigint AS b FROM attachments
                     WHERE owner_id = $1 AND message_id IS NULL AND purging_at IS NULL),
                   w AS (
                     SELECT count(*) AS n, coalesce(sum(size), 0)::bigint AS b,
                       coalesce(extract(epoch FROM clock_timestamp() - min(started_at)), 0)
                         ::float8 AS oldest
                     FROM attachment_upload_starts
                     WHERE owner_id = $1
                       AND started_at > clock_timestamp() - make_interval(secs => $3)),
                   g AS (
                     SELECT coalesce(sum(size), 0)::bigint AS b FROM attachments
                     WHERE group_id = $2 AND purging_at IS NULL)
                   SELECT p.n AS pending_count, p.b AS pending_bytes, w.n AS window_count,
                          w.b AS window_bytes, w.oldest, g.b AS group_bytes
                   FROM p, w, g""",
                owner_id,
                group_id,
                float(window_seconds),
            )
            assert row is not None
            admit(
                UploadUsage(
                    pending_count=row["pending_count"],
                    pending_bytes=row["pending_bytes"],
                    window_count=row["window_count"],
                    window_bytes=row["window_bytes"],
                    window_oldest_age=row["oldest"],
                    group_bytes=row["group_bytes"],
                )
            )
            created = await conn.fetchrow(
                f"""WITH started AS (
                      INSERT INTO attachment_upload_starts (owner_id, started_at, size)
                      VALUES ($3, clock_timestamp(), $6))
                    INSERT INTO attachments
                      (id, group_id, owner_id, file_name, claimed_type, size, sha256, store)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                    RETURNING {_COLUMNS}""",
                attachment_id,
                group_id,
                owner_id,
                file_name,
                claimed_type,
                size,
                sha256,
                store,
            )
        assert created is not None
        return _attachment(created)

    @_storage_errors
    async def prune_upload_starts(self, window_seconds: float) -> int:
        """Forget starts that left the rate window."""
        done: str = await self._pool.execute(
            """DELETE FROM attachment_upload_starts
               WHERE started_at < clock_timestamp() - make_interval(secs => $1)""",
            float(window_seconds),
        )
        return int(done.rsplit(" ", 1)[-1])

    @_storage_errors
    async def get(self, attachment_id: str) -> Attachment | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM attachments WHERE id = $1 AND purging_at IS NULL",
            attachment_id,
        )
        return None if row is None else _attachment(row)

    @_storage_errors
    async def advance(
        self, attachment_id: str, offset: int, length: int, head_part: bytes, content_type: str
    ) -> Attachment | None:
        """Count a stored chunk, only if nothing else moved the upload meanwhile."""
        row = await self._pool.fetchrow(
            f"""UPDATE attachments SET
                  received = received + $3,
                  head = head || $4::bytea,
                  content_type = CASE WHEN $5 = '' THEN content_type ELSE $5 END
                WHERE id = $1 AND received = $2 AND received + $3 <= size
                  AND completed_at IS NULL AND purging_at IS NULL
                RETURNING {_COLUMNS}""",
            attachment_id,
            offset,
            length,
            head_part,
            content_type,
        )
        return None if row is None else _attachment(row)

    @_storage_errors
    async def reset(self, attachment_id: str) -> None:
        """Back to zero bytes received (after a checksum mismatch)."""
        await self._pool.execute(
            """UPDATE attachments SET received = 0, head = '', content_type = ''
               WHERE id = $1 AND completed_at IS NULL AND purging_at IS NULL""",
            attachment_id,
        )

    @_storage_errors
    async def complete(self, attachment_id: str, width: int, height: int) -> Attachment | None:
        row = await self._pool.fetchrow(
            f"""UPDATE attachments SET completed_at = now(), width = $2, height = $3, head = ''
                WHERE id = $1 AND received = size AND content_type <> ''
                  AND completed_at IS NULL AND purging_at IS NULL
                RETURNING {_COLUMNS}""",
            attachment_id,
            width,
            height,
        )
        return None if row is None else _attachment(row)

    @_storage_errors
    async def mark_purging(self, attachment_id: str) -> str | None:
        """Take an attachment out of service before its bytes are deleted; returns its store.

        Clearing completed_at makes the message code's claim (which requires it) fail from
        now on; a claim that committed first makes the orphan cleanup skip the row."""
        value: str | None = await self._pool.fetchval(
            """UPDATE attachments SET purging_at = now(), completed_at = NULL
               WHERE id = $1 RETURNING store""",
            attachment_id,
        )
        return value

    @_storage_errors
    async def claim_orphans(self, ttl_seconds: float, limit: int) -> list[tuple[str, str]]:
        """Mark up to `limit` uploads never sent in a message (older than the TTL), and
        purges abandoned by dead pods, for deletion. SKIP LOCKED: pods share the work."""
        rows = await self._pool.fetch(
            """UPDATE attachments SET purging_at = now(), completed_at = NULL
               WHERE id IN (
                 SELECT id FROM attachments
                 WHERE (message_id IS NULL AND purging_at IS NULL
                        AND created_at < now() - make_interval(secs => $1))
                    OR purging_at < now() - make_interval(secs => $2)
                 ORDER BY created_at
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED)
               RETURNING id, store""",
            float(ttl_seconds),
            float(STALE_PURGE_SECONDS),
            limit,
        )
        return [(r["id"], r["store"]) for r in rows]

    @_storage_errors
    async def delete(self, attachment_id: str) -> None:
        await self._pool.execute(
            "DELETE FROM attachments WHERE id = $1 AND purging_at IS NOT NULL", attachment_id
        )
