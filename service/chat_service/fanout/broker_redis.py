"""Redis Streams broker: each pod reads only the shards its groups hash to.

Events of group `g` go to shard `g % shards` (fanout/stream_keys.py), so per-group order is
kept and one hot group does not cap the others. A pod follows a group while it has a
subscriber of it (the hub calls `follow`/`unfollow`) and reads, with plain XREAD (no consumer
group), only the followed shards, the broadcast stream (group-0 events and join notices) and
its own wake stream; fanout/interest.py says from which position a new shard is read. Streams
are bounded with approximate MAXLEN trimming. Redis is transport only: PostgreSQL has every
message, and the hub's sweep repairs anything lost while Redis was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chat_service.fanout.broker import PayloadSink
from chat_service.fanout.interest import ShardInterest
from chat_service.fanout.redis_connect import RedisClient, RedisConnector
from chat_service.fanout.stream_keys import StreamKeys, id_after_ms, parse_id
from chat_service.telemetry import metrics, tracing
from chat_service.wire import redis_entry
from chat_service.wire.redis_entry import decode_text

log = logging.getLogger(__name__)

_READ_COUNT = 1000
_BLOCK_MS = 5000
# A read that found entries within _BUSY_READ of being asked means they arrive faster than one
# XREAD's round trip: the next read waits _GATHER first, so that it carries several. Each XREAD
# costs Redis and this pod work per followed shard (up to STREAM_SHARDS keys), whatever it
# brings; at 400 msg/s this cut the server's CPU per message by ~13 % for <= 2 ms of latency.
# A quiet pod's reads block longer than _BUSY_READ and never wait.
_GATHER = 0.002
_BUSY_READ = 0.005


class RedisStreamsBroker:
    def __init__(
        self,
        connector: RedisConnector,
        *,
        keys: StreamKeys | None = None,
        maxlen: int = 100_000,
        on_recovered: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.keys = keys or StreamKeys()
        self._maxlen = maxlen
        # Publishing happens after the commit, before the acknowledgement: never let a Redis
        # outage hold the ack for long. No retries, a short timeout, and while the tail reader
        # knows Redis is down publishing is skipped outright (the storage sweep delivers).
        self._connector = connector
        self._writer = connector.client(socket_timeout=0.5, retries=0)
        self._readers: dict[int, aioredis.Redis] = {}  # per lane, made when first needed
        self._interest = ShardInterest(self.keys)
        self._token = uuid.uuid4().hex[:12]
        self._fixed: list[dict[str, str]] = []  # per lane: wake (and broadcast) positions
        self._blocked: set[int] = set()  # lanes whose XREAD is waiting
        self._waking: set[int] = set()
        self._clock = "0-0"  # the latest stream id seen: "now" on Redis, roughly
        self._context: str | None = None  # the broadcast entry being handed to the sink
        self._tasks: list[asyncio.Task[None]] = []
        self._on_recovered = on_recovered
        self._healthy = False
        self._recovery: asyncio.Task[None] | None = None
        self._outbox: list[tuple[Sequence[tuple[int, bytes]], str, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._time: asyncio.Future[str] | None = None  # the TIME call in flight (position)

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def client(self) -> RedisClient:
        return self._writer

    @property
    def stream_lanes(self) -> list[list[str]]:
        """Every event stream, per lane (one slot per lane): what the notifier reads. The
        broadcast stream (lane 0) carries group-0 events, e.g. backend-wide bans."""
        lanes = [self.keys.lane_shard_keys(lane) for lane in range(self.keys.lanes)]
        lanes[0].append(self.keys.broadcast_key)
        return lanes

    @property
    def shards_followed(self) -> int:
        return self._interest.shard_count

    # ---- interest ----

    async def position(self) -> str:
        """Now, on Redis: a subscriber takes it before reading storage, then follows its
        groups `since` it.

        Single flight: callers that arrive while a TIME call is in flight share its answer
        (a reconnect storm asks thousands of times a second). That answer is taken before it
        reaches any of them, so before each one reads storage: all the position has to be.
        It may be a little earlier than the caller's own call would have been, which only
        re-reads entries committed before that storage read (the hub and the session drop
        those by sequence; fanout/interest.py). A call that ended is never reused."""
        pending = self._time
        if pending is None or pending.done():
            pending = self._time = asyncio.create_task(self._redis_time())
        # Shielded: a caller cancelled while waiting does not cancel the others' answer.
        return await asyncio.shield(pending)

    async def _redis_time(self) -> str:
        try:
            sec, usec = await self._writer.time()
        except (RedisError, OSError):
            metrics.REDIS_ERRORS.labels("read").inc()
            return self._clock
        finally:
            self._time = None
        return id_after_ms(int(sec) * 1000 + int(usec) // 1000)

    def follow(self, group_id: int, since: str = "") -> None:
        """Read the group's shard from `since` on (default: the broadcast entry being handed
        over, else the latest position this pod has seen)."""
        lane = self._interest.follow(group_id, since or self._context or self._clock)
        metrics.BROKER_SHARDS_FOLLOWED.set(self._interest.shard_count)
        if lane is not None and lane in self._blocked:
            self._wake(lane)

    def unfollow(self, group_id: int) -> None:
        self._interest.unfollow(group_id)
        metrics.BROKER_SHARDS_FOLLOWED.set(self._interest.shard_count)

    def _wake(self, lane: int) -> None:
        if lane in self._waking or not self._healthy:
            return
        self._waking.add(lane)
        task = asyncio.create_task(self._send_wake(lane), name="redis-wake")
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def _send_wake(self, lane: int) -> None:
        key = self.keys.wake_key(lane, self._token)
        try:
            async with self._writer.pipeline(transaction=False) as pipe:
                pipe.xadd(key, {b"w": b""}, maxlen=1)
                pipe.expire(key, 3600)
                await pipe.execute()
        except (RedisError, OSError):
            metrics.REDIS_ERRORS.labels("publish").inc()  # the read ends by itself
        finally:
            self._waking.discard(lane)

    # ---- publishing ----

    async def publish(
        self, items: Sequence[tuple[int, bytes]], notices: Sequence[bytes] = ()
    ) -> None:
        """Queue the entries for the publisher, which sends everything queued meanwhile in
        one pipeline (one round trip, one connection), and wait until Redis has them. Join
        notices go to the broadcast stream after the group's own entries."""
        if not self._healthy:
            metrics.REDIS_ERRORS.labels("publish_skipped").inc()
            return
        if notices:
            items = [*items, *((0, payload) for payload in notices)]
        traceparent = tracing.current_traceparent()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((items, traceparent, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="redis-publish")
        await done

    def _key_of(self, group_id: int) -> str:
        return self.keys.group_key(group_id) if group_id else self.keys.broadcast_key

    async def _flush(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                async with self._writer.pipeline(transaction=False) as pipe:
                    for items, traceparent, _ in batch:
                        for group_id, payload in items:
                            pipe.xadd(
                                self._key_of(group_id),
                                redis_entry.fields(group_id, payload, traceparent),
                                maxlen=self._maxlen,
                                approximate=True,
                            )
                    ids = await pipe.execute()
            except (RedisError, OSError) as exc:
                metrics.REDIS_ERRORS.labels("publish").inc()
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            if ids:
                self._saw(decode_text(ids[-1]))
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)

    def _saw(self, entry_id: str) -> None:
        if parse_id(entry_id) > parse_id(self._clock):
            self._clock = entry_id

    # ---- reading ----

    async def start(self, sink: PayloadSink) -> None:
        now = await self.position()
        self._saw(now)
        for lane in range(self.keys.lanes):
            fixed = {self.keys.wake_key(lane, self._token): "0-0"}
            if lane == 0:
                fixed[self.keys.broadcast_key] = now
            self._fixed.append(fixed)
        self._healthy = True
        for lane in range(self.keys.lanes):
            self._tasks.append(
                asyncio.create_task(self._read_loop(sink, lane), name=f"redis-tail-{lane}")
            )

    async def _reader(self, lane: int) -> aioredis.Redis:
        reader = self._readers.get(lane)
        if reader is None:
            reader = self._readers[lane] = await self._connector.node_client(
                self._writer, self.keys.wake_key(lane, self._token),
                socket_timeout=(_BLOCK_MS / 1000) + 5.0,
            )
        return reader

    async def _drop_reader(self, lane: int) -> None:
        """After an error: the lane's slot may have moved (cluster) or the master changed."""
        reader = self._readers.pop(lane, None)
        if reader is not None and self.keys.lanes > 1:
            with contextlib.suppress(Exception):
                await reader.aclose()

    async def _read_loop(self, sink: PayloadSink, lane: int) -> None:
        backoff = 0.05
        fixed = self._fixed[lane]
        while True:
            shards = self._interest.lane_positions(lane)
            ids = {**fixed, **shards}
            self._blocked.add(lane)
            asked = asyncio.get_running_loop().time()
            try:
                reader = await self._reader(lane)
                replies = await reader.xread(ids, count=_READ_COUNT, block=_BLOCK_MS)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.keys.lanes > 1:
                    await self._drop_reader(lane)
                metrics.REDIS_ERRORS.labels("read").inc()
                if self._healthy:
                    log.warning("lost Redis (%s); fan-out continues from storage when it is "
                                "back", exc)
                self._healthy = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            finally:
                self._blocked.discard(lane)
            self._interest.read_answered(list(shards))
            if not self._healthy:
                self._healthy = True
                backoff = 0.05
                log.info("Redis is back; resynchronising subscribers from storage")
                if self._on_recovered is not None:
                    self._recovery = asyncio.create_task(self._on_recovered())
            self._deliver(replies, fixed, sink)
            if replies and asyncio.get_running_loop().time() - asked < _BUSY_READ:
                await asyncio.sleep(_GATHER)

    def _deliver(self, replies: Any, fixed: dict[str, str], sink: PayloadSink) -> None:
        broadcast = self.keys.broadcast_key
        for key, entries in replies or ():
            name = decode_text(key)
            if not entries:
                continue
            last = decode_text(entries[-1][0])
            self._saw(last)
            if name in fixed:
                fixed[name] = last
                if name == broadcast:
                    self._hand_over_broadcast(entries, sink)
                continue
            self._interest.advance(name, last)
            metrics.BROKER_ENTRIES_READ.labels("shard").inc(len(entries))
            self._trace(entries)
            items = [
                (redis_entry.group_of(fields), fields[redis_entry.PAYLOAD])
                for _, fields in entries
                if redis_entry.PAYLOAD in fields
            ]
            metrics.BROKER_BYTES_READ.inc(sum(len(p) for _, p in items))
            sink(items)

    def _hand_over_broadcast(self, entries: Any, sink: PayloadSink) -> None:
        """One entry at a time, so a shard followed because of it starts right there."""
        metrics.BROKER_ENTRIES_READ.labels("broadcast").inc(len(entries))
        try:
            for entry_id, fields in entries:
                payload = fields.get(redis_entry.PAYLOAD)
                if payload is None:
                    continue
                metrics.BROKER_BYTES_READ.inc(len(payload))
                self._context = decode_text(entry_id)
                sink([(redis_entry.group_of(fields), payload)])
        finally:
            self._context = None

    @staticmethod
    def _trace(entries: Any) -> None:
        if tracing.enabled():
            for _, fields in entries:
                if redis_entry.TRACE in fields:
                    tracing.record_delivery(
                        decode_text(fields[redis_entry.TRACE]), redis_entry.group_of(fields)
                    )

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._flusher, 1.0)
        for task in list(self._tasks):
            # redis-py can swallow a cancellation that lands while XREAD is being sent (the
            # loop then blocks again, for ever): cancel until the task has ended.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for lane in range(self.keys.lanes):  # one key per command: lanes are other slots
            with contextlib.suppress(RedisError, OSError):
                await self._writer.delete(self.keys.wake_key(lane, self._token))
        await self._writer.aclose()
        for reader in {id(r): r for r in self._readers.values()}.values():
            await reader.aclose()
