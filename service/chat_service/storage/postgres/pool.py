"""The connection pool every PostgreSQL store shares, and the base those stores build on."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chat_service.storage.postgres.errors import storage_errors
from chat_service.storage.postgres.replica import ReadRoute

# What a store's helpers accept: a pooled connection (inside a transaction) or a bare one.
Conn = asyncpg.Connection | PoolConnectionProxy


class PostgresStore:
    """One concern's statements over the shared pool (see repository.py for the whole)."""

    def __init__(self, pool: asyncpg.Pool, reads: ReadRoute | None = None) -> None:
        self._pool = pool
        # History, member lists, mentions: a replica when one is configured (replica.py)
        self._reads = reads or ReadRoute(pool)

    @storage_errors
    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")


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
