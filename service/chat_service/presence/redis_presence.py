"""Presence across pods: heartbeats with expiry in Redis.

Each pod records, per user it holds a stream for, `chat:presence:{user}` → sorted set of
pod names scored by expiry time, refreshed every ttl/3. A user is online while any pod's entry
is unexpired, so the users of a killed pod go offline by themselves after the TTL. Changes
are published as PresenceChanged events to the groups the user belongs to: by the pod that
saw the first connect / last disconnect, and for expiries by a janitor that one pod at a time
runs under a short Redis lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import RedisError

from chat_service.domain.ports import EventPublisher, GroupsOf
from chat_service.fanout.redis_connect import RedisClient
from chat_service.presence.announce import announce, announce_all
from chat_service.presence.arrivals import Arrival, Arrivals
from chat_service.telemetry import metrics

log = logging.getLogger(__name__)


_INDEX = "chat:presence:index"
_LOCK = "chat:presence:janitor"
# Users refreshed per pipeline: a pod holding 10,000 streams would otherwise build (and keep
# the heap grown to) one pipeline of 30,000 commands and replies every ttl/3.
MARK_BATCH = 500


def _key(user_id: int) -> str:
    return f"chat:presence:{user_id}"


class RedisPresence:
    def __init__(
        self,
        client: RedisClient,
        *,
        pod: str,
        ttl_seconds: int,
        events: EventPublisher,
        groups_of: GroupsOf,
    ) -> None:
        self._redis = client
        self._pod = pod
        self._ttl = ttl_seconds
        self._events = events
        self._groups_of = groups_of
        self._local: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._arrivals = Arrivals(self._mark_arrivals, MARK_BATCH)

    # ---- queries ----

    async def online_users(self, user_ids: Sequence[int]) -> set[int]:
        if not user_ids:
            return set()
        now = time.time()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for uid in user_ids:
                    pipe.zcount(_key(uid), now, "+inf")
                counts = await pipe.execute()
        except (RedisError, OSError):
            metrics.REDIS_ERRORS.labels("presence").inc()
            # Without Redis we still know who is connected here.
            return {u for u in user_ids if self._local.get(u)}
        return {u for u, n in zip(user_ids, counts, strict=True) if n}

    # ---- this pod's streams ----

    async def connected(self, user_id: int, group_ids: Sequence[int] | None = None) -> None:
        """`group_ids`, when the caller already knows them, saves reading them again. The
        stream is counted before anything is awaited; the user's first stream here waits
        until they are marked (and announced), together with the others of that moment."""
        count = self._local.get(user_id, 0)
        self._local[user_id] = count + 1
        if count:
            return
        await self._arrivals.arrive(user_id, group_ids)

    async def _mark_arrivals(self, batch: list[Arrival]) -> None:
        """One round trip for the batch: was each user online elsewhere, and mark them online
        here; then the ones who were not are announced in one publish. A user whose streams
        all ended before the batch was sent is left alone (`disconnected` saw to them)."""
        arrivals = [a for a in batch if a.user_id in self._local]
        if not arrivals:
            return
        now = time.time()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for a in arrivals:
                    pipe.zcount(_key(a.user_id), now, "+inf")
                    self._queue_mark(pipe, a.user_id, now + self._ttl)
                replies = await pipe.execute()
        except (RedisError, OSError):
            metrics.REDIS_ERRORS.labels("presence").inc()
            return
        per_user = len(replies) // len(arrivals)
        await announce_all(self._events, self._groups_of, [
            (a.user_id, True, a.group_ids)
            for i, a in enumerate(arrivals) if not replies[i * per_user]
        ])

    async def disconnected(self, user_id: int) -> None:
        count = self._local.get(user_id, 0) - 1
        if count > 0:
            self._local[user_id] = count
            return
        self._local.pop(user_id, None)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrem(_key(user_id), self._pod)
                pipe.zcount(_key(user_id), time.time(), "+inf")
                still = (await pipe.execute())[1]
            if not still:
                await self._redis.zrem(_INDEX, str(user_id))
        except (RedisError, OSError):
            metrics.REDIS_ERRORS.labels("presence").inc()
            return
        if not still:
            await self._announce(user_id, False)

    async def _mark(self, user_ids: Sequence[int]) -> None:
        expiry = time.time() + self._ttl
        for start in range(0, len(user_ids), MARK_BATCH):
            async with self._redis.pipeline(transaction=False) as pipe:
                for uid in user_ids[start:start + MARK_BATCH]:
                    self._queue_mark(pipe, uid, expiry)
                await pipe.execute()

    def _queue_mark(self, pipe: Pipeline | ClusterPipeline, user_id: int, expiry: float) -> None:
        pipe.zadd(_key(user_id), {self._pod: expiry})
        pipe.expire(_key(user_id), self._ttl * 2)
        pipe.zadd(_INDEX, {str(user_id): expiry}, gt=True)

    async def _announce(
        self, user_id: int, online: bool, group_ids: Sequence[int] | None = None
    ) -> None:
        await announce(self._events, self._groups_of, user_id, online, group_ids)

    # ---- background: heartbeats and expiry ----

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="presence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Arrivals still being marked first, so no mark lands after the removals below.
        await self._arrivals.drain()
        # Leave cleanly: our users go offline now rather than after the TTL.
        for uid in list(self._local):
            self._local[uid] = 1
            with contextlib.suppress(Exception):
                await self.disconnected(uid)

    async def _loop(self) -> None:
        interval = max(self._ttl / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            try:
                if self._local:
                    await self._mark(list(self._local))
                await self.expire_once()
            except (RedisError, OSError):
                metrics.REDIS_ERRORS.labels("presence").inc()

    async def expire_once(self) -> list[int]:
        """Announce users whose every pod stopped refreshing (one pod at a time does this)."""
        lock_ms = int(max(self._ttl / 3, 0.2) * 1000)
        if not await self._redis.set(_LOCK, self._pod, nx=True, px=lock_ms):
            return []
        now = time.time()
        expired = await self._redis.zrangebyscore(_INDEX, "-inf", now, start=0, num=1000)
        gone: list[int] = []
        for raw in expired:
            uid = int(raw if isinstance(raw, (bytes, str)) else raw[0])
            await self._redis.zremrangebyscore(_key(uid), "-inf", now)
            if await self._redis.zcard(_key(uid)) == 0 and await self._redis.zrem(_INDEX, str(uid)):
                gone.append(uid)
        for uid in gone:
            await self._announce(uid, False)
        return gone
