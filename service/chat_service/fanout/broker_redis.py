"""Redis Streams broker: every pod tails every shard (a plain XREAD, no consumer group).

Events of a group go to shard `group_id % shards`, so one hot key does not cap throughput
and per-group order is kept. Streams are bounded with approximate MAXLEN trimming. Redis is
transport only: PostgreSQL has every message, and the hub's sweep repairs anything lost
while Redis was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from chat_service.fanout.broker import PayloadSink
from chat_service.telemetry import metrics, tracing
from chat_service.wire import redis_entry
from chat_service.wire.redis_entry import decode_text

log = logging.getLogger(__name__)

def shard_key(prefix: str, group_id: int, shards: int) -> str:
    return f"{prefix}:{group_id % shards}"


class RedisStreamsBroker:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        password: str = "",
        shards: int = 8,
        maxlen: int = 100_000,
        prefix: str = "chat:events",
        on_recovered: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self._shards = shards
        self._maxlen = maxlen
        self._prefix = prefix
        common: dict[str, Any] = {
            "host": host,
            "port": port,
            "password": password or None,
            "socket_connect_timeout": 1.0,
        }
        # Publishing happens after the commit, before the acknowledgement: never let a Redis
        # outage hold the ack for long. No retries, a short timeout, and while the tail reader
        # knows Redis is down publishing is skipped outright (the storage sweep delivers).
        self._writer = aioredis.Redis(
            **common, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        self._reader = aioredis.Redis(**common, socket_timeout=10.0)
        self._keys = [f"{prefix}:{i}" for i in range(shards)]
        self._task: asyncio.Task[None] | None = None
        self._on_recovered = on_recovered
        self._healthy = False
        self._recovery: asyncio.Task[None] | None = None
        self._outbox: list[tuple[Sequence[tuple[int, bytes]], str, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def client(self) -> aioredis.Redis:
        return self._writer

    @property
    def stream_keys(self) -> list[str]:
        return list(self._keys)

    async def publish(self, items: Sequence[tuple[int, bytes]]) -> None:
        """Queue the entries for the publisher, which sends everything queued meanwhile in
        one pipeline (one round trip, one connection), and wait until Redis has them."""
        if not self._healthy:
            metrics.REDIS_ERRORS.labels("publish_skipped").inc()
            return
        traceparent = tracing.current_traceparent()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((items, traceparent, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="redis-publish")
        await done

    async def _flush(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                async with self._writer.pipeline(transaction=False) as pipe:
                    for items, traceparent, _ in batch:
                        for group_id, payload in items:
                            pipe.xadd(
                                shard_key(self._prefix, group_id, self._shards),
                                redis_entry.fields(group_id, payload, traceparent),
                                maxlen=self._maxlen,
                                approximate=True,
                            )
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                metrics.REDIS_ERRORS.labels("publish").inc()
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def start(self, sink: PayloadSink) -> None:
        ids = await self._tail_ids()
        self._healthy = True
        self._task = asyncio.create_task(self._read_loop(sink, ids), name="redis-tail")

    async def _tail_ids(self) -> dict[str, str]:
        ids: dict[str, str] = {}
        for key in self._keys:
            last = await self._reader.xrevrange(key, count=1)
            ids[key] = decode_text(last[0][0]) if last else "0-0"
        return ids

    async def _read_loop(self, sink: PayloadSink, ids: dict[str, str]) -> None:
        backoff = 0.05
        while True:
            try:
                replies = await self._reader.xread(ids, count=1000, block=5000)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                metrics.REDIS_ERRORS.labels("read").inc()
                if self._healthy:
                    log.warning("lost Redis; fan-out continues from storage when it is back")
                self._healthy = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if not self._healthy:
                self._healthy = True
                backoff = 0.05
                log.info("Redis is back; resynchronising subscribers from storage")
                if self._on_recovered is not None:
                    self._recovery = asyncio.create_task(self._on_recovered())
            self._deliver(replies, ids, sink)

    @staticmethod
    def _deliver(replies: Any, ids: dict[str, str], sink: PayloadSink) -> None:
        for key, entries in replies or ():
            name = decode_text(key)
            if entries:
                ids[name] = decode_text(entries[-1][0])
                if tracing.enabled():
                    for _, fields in entries:
                        if redis_entry.TRACE in fields:
                            tracing.record_delivery(
                                decode_text(fields[redis_entry.TRACE]),
                                redis_entry.group_of(fields),
                            )
                sink(
                    (redis_entry.group_of(fields), fields[redis_entry.PAYLOAD])
                    for _, fields in entries
                    if redis_entry.PAYLOAD in fields
                )

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._flusher, 1.0)
        if self._task is not None:
            # redis-py can swallow a cancellation that lands while XREAD is being sent (the
            # loop then blocks again, for ever): cancel until the tail reader has ended.
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=0.1)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._writer.aclose()
        await self._reader.aclose()
