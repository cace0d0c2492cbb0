"""Reads from a PostgreSQL streaming replica, with read-your-writes (DB_REPLICA_HOST).

History pages, member lists and mention searches may be served by a replica. A read goes to it
only once the replica has replayed everything the primary had committed when the read began:
the primary's current WAL position (`pg_current_wal_lsn()`, no table touched) is compared with
the replica's `pg_last_wal_replay_lsn()`. Every write acknowledged before the read (the caller's
own send, a join, an edit, on any pod) is therefore visible. A replica further behind is given
`max_wait` to catch up; after that, or when it is unreachable, the read goes to the primary
(`chat_db_reads_total{target}` counts where reads went). Without a replica every read goes to
the primary, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from chat_service.telemetry import metrics

log = logging.getLogger(__name__)

_POLL = 0.005


class ReadRoute:
    def __init__(
        self, primary: asyncpg.Pool, replica: asyncpg.Pool | None = None, *,
        max_wait: float = 0.1,
    ) -> None:
        self._primary = primary
        self._replica = replica
        self._max_wait = max_wait

    @property
    def replica(self) -> asyncpg.Pool | None:
        return self._replica

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        """A connection that sees every write committed before this call."""
        replica = self._replica
        if replica is not None:
            conn = await self._caught_up_replica(replica)
            if conn is not None:
                metrics.DB_READS.labels("replica").inc()
                try:
                    yield conn
                finally:
                    await replica.release(conn)
                return
            metrics.DB_READS.labels("primary_fallback").inc()
        async with self._primary.acquire() as conn:
            yield conn

    async def _caught_up_replica(
        self, replica: asyncpg.Pool
    ) -> asyncpg.pool.PoolConnectionProxy | None:
        try:
            target = await self._primary.fetchval("SELECT pg_current_wal_lsn()::text")
            conn = await replica.acquire(timeout=1.0)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log.debug("replica not used: %s", exc)
            return None
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._max_wait
            while True:
                replayed = await conn.fetchval(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", target
                )
                if replayed:
                    return conn
                if loop.time() >= deadline:
                    break
                await asyncio.sleep(_POLL)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log.debug("replica not used: %s", exc)
        await replica.release(conn)
        return None
