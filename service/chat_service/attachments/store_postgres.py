"""Attachment bytes in PostgreSQL (the default): one row per uploaded chunk.

Pods stay stateless, backups cover attachments, nothing else to run. Chunks are stored
uncompressed out of line (most uploads are compressed formats already).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import asyncpg

from chat_service.attachments.store import contiguous
from chat_service.domain.errors import NotFound, Unavailable
from chat_service.storage.postgres.errors import CONNECTION_ERRORS as _CONNECTION_ERRORS
from chat_service.storage.postgres.errors import storage_errors as _storage_errors

READ_PAGE_PARTS = 4  # parts per query when reading (each at most 1 MiB)


class PostgresBlobStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def name(self) -> str:
        return "postgres"

    @_storage_errors
    async def write(self, blob_id: str, offset: int, data: bytes) -> None:
        try:
            await self._pool.execute(
                """INSERT INTO attachment_chunks (attachment_id, pos, data) VALUES ($1, $2, $3)
                   ON CONFLICT (attachment_id, pos) DO UPDATE SET data = EXCLUDED.data""",
                blob_id,
                offset,
                data,
            )
        except asyncpg.ForeignKeyViolationError:
            raise NotFound(f"upload {blob_id} does not exist") from None

    async def _parts(self, blob_id: str) -> AsyncGenerator[tuple[int, bytes], None]:
        pos = 0
        while True:
            try:
                rows = await self._pool.fetch(
                    """SELECT pos, data FROM attachment_chunks
                       WHERE attachment_id = $1 AND pos >= $2 ORDER BY pos LIMIT $3""",
                    blob_id,
                    pos,
                    READ_PAGE_PARTS,
                )
            except _CONNECTION_ERRORS as exc:
                raise Unavailable("the attachment store is unreachable; retry shortly") from exc
            for row in rows:
                yield row["pos"], bytes(row["data"])
            if len(rows) < READ_PAGE_PARTS:
                return
            pos = rows[-1]["pos"] + 1

    def read(self, blob_id: str, size: int) -> AsyncGenerator[bytes, None]:
        return contiguous(self._parts(blob_id), size)

    @_storage_errors
    async def delete(self, blob_id: str) -> None:
        await self._pool.execute("DELETE FROM attachment_chunks WHERE attachment_id = $1", blob_id)

    async def close(self) -> None:
        return None  # the pool belongs to the app
