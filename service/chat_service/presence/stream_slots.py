"""How many streams (Subscribe, StreamMessages) a user holds open, across every pod.

`acquire(user_id)` admits a stream or raises ResourceExhausted when the user already holds
`max_per_user`; `release(slot)` gives it back when the stream ends.

Redis: one sorted set per user, `chat:streams:{user}`, members "<pod>:<stream id>" scored by
an expiry time. A Lua script admits atomically (drop expired entries, refuse at ZCARD >= max,
else ZADD), so two pods admitting at once cannot both take the last slot. Each pod re-scores
its live streams every ttl/3 (the presence heartbeat's rhythm) and removes an entry when its
stream closes; a pod that dies stops refreshing and its entries expire within the TTL. If
Redis is unreachable the stream is admitted (fail open, counted in
`chat_redis_errors_total{op="stream_slots"}`) and still tracked here, so the next refresh
records it once Redis is back.

Memory (BROKER=memory, one process): the same interface, counted in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError

from chat_service.domain.errors import ResourceExhausted
from chat_service.fanout.redis_connect import RedisClient
from chat_service.telemetry import metrics

log = logging.getLogger(__name__)

# Entries refreshed per pipeline (as presence does): bounded memory for pods with many streams.
REFRESH_BATCH = 500

# KEYS[1] the user's set; ARGV: now, expiry, max, member, key ttl (seconds).
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _key(user_id: int) -> str:
    return f"chat:streams:{user_id}"


@dataclass(frozen=True)
class StreamSlot:
    user_id: int
    member: str


class StreamSlots(Protocol):
    async def acquire(self, user_id: int) -> StreamSlot:
        """Admit one more stream of this user, or raise ResourceExhausted."""
        ...

    async def release(self, slot: StreamSlot) -> None: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


def _refused(max_per_user: int, where: str) -> ResourceExhausted:
    return ResourceExhausted(
        f"at most {max_per_user} open streams per user {where}; "
        "close one before opening another"
    )


class LocalStreamSlots:
    """One process: counts this process's streams. `max_per_user` <= 0 means no cap."""

    def __init__(self, max_per_user: int) -> None:
        self._max = max_per_user
        self._open: dict[int, int] = {}
        self._ids = itertools.count(1)

    def open_count(self, user_id: int) -> int:
        return self._open.get(user_id, 0)

    async def acquire(self, user_id: int) -> StreamSlot:
        count = self._open.get(user_id, 0)
        if self._max > 0 and count >= self._max:
            raise _refused(self._max, "on one server")
        self._open[user_id] = count + 1
        return StreamSlot(user_id, str(next(self._ids)))

    async def release(self, slot: StreamSlot) -> None:
        count = self._open.get(slot.user_id, 0) - 1
        if count > 0:
            self._open[slot.user_id] = count
        else:
            self._open.pop(slot.user_id, None)

    def start(self) -> None:
        """No background work for one process."""

    async def stop(self) -> None:
        self._open.clear()


class RedisStreamSlots:
    """Every pod's streams, counted together in Redis. `max_per_user` <= 0 means no cap."""

    def __init__(
        self, client: RedisClient, *, pod: str, max_per_user: int, ttl_seconds: float
    ) -> None:
        self._redis = client
        self._max = max_per_user
        self._ttl = max(float(ttl_seconds), 1.0)
        # Unique per process, so a restarted pod with the same name never touches the entries
        # its previous life left to expire.
        self._prefix = f"{pod}:{uuid.uuid4().hex[:8]}"
        self._ids = itertools.count(1)
        self._admit = client.register_script(_ADMIT)
        self._live: dict[str, int] = {}  # member -> user id, this pod's open streams
        self._task: asyncio.Task[None] | None = None

    async def acquire(self, user_id: int) -> StreamSlot:
        slot = StreamSlot(user_id, f"{self._prefix}:{next(self._ids)}")
        if self._max <= 0:
            return slot
        now = time.time()
        try:
            admitted = await self._admit(
                keys=[_key(user_id)],
                args=[now, now + self._ttl, self._max, slot.member, int(self._ttl * 2) + 1],
            )
        except (RedisError, OSError):
            metrics.REDIS_ERRORS.labels("stream_slots").inc()
            log.warning("stream slots unavailable; admitting the stream", exc_info=True)
            admitted = 1
        if not admitted:
            raise _refused(self._max, "across all servers")
        self._live[slot.member] = user_id
        return slot

    async def release(self, slot: StreamSlot) -> None:
        # Forget it here first (no await before this), so a refresh cannot re-add it even if
        # this task is cancelled while Redis answers.
        if self._live.pop(slot.member, None) is None:
            return
        try:
            await self._redis.zrem(_key(slot.user_id), slot.member)
        except (RedisError, OSError):
            metrics.REDIS_ERRORS.labels("stream_slots").inc()  # it expires within the TTL

    async def refresh(self) -> None:
        """Push the expiry of every live stream of this pod forward. A refresh racing a release
        may re-add that one entry; it then expires within the TTL."""
        live = list(self._live.items())
        expiry = time.time() + self._ttl
        key_ttl = int(self._ttl * 2) + 1
        for start in range(0, len(live), REFRESH_BATCH):
            async with self._redis.pipeline(transaction=False) as pipe:
                for member, uid in live[start:start + REFRESH_BATCH]:
                    pipe.zadd(_key(uid), {member: expiry})
                    pipe.expire(_key(uid), key_ttl)
                await pipe.execute()

    def start(self) -> None:
        if self._max > 0:
            self._task = asyncio.create_task(self._loop(), name="stream-slots")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for member, uid in list(self._live.items()):
            with contextlib.suppress(Exception):
                await self.release(StreamSlot(uid, member))

    async def _loop(self) -> None:
        interval = max(self._ttl / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            try:
                if self._live:
                    await self.refresh()
            except (RedisError, OSError):
                metrics.REDIS_ERRORS.labels("stream_slots").inc()
