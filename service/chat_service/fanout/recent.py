"""Recent messages per group, kept on the pod ready for the wire, so resuming streams and gap
fills are served from memory instead of storage.

Clients reconnect in waves (a deploy, a network blip, a laptop lid): hundreds of members of
the same group ask for the same few missed messages within a second. The first read goes to
storage and the rest wait for it (one read per group at a time); the hub adds every message
it delivers live, so a stream that only briefly dropped resumes without touching storage.

What is cached is exactly what storage returns for a committed message (viewer-independent,
already framed as a `SubscribeResponse.events` element). A message that changes afterwards
(edit, delete, reaction) is evicted when its `updated` event reaches the hub, together with
the replies quoting it; when the broker may have lost events the whole cache is dropped.
A range is served from memory only when every message in it is present, otherwise storage
is read, so the cache can only be incomplete, never wrong.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from chat_service.domain.models import Message
from chat_service.fanout.delivery import Delivery
from chat_service.telemetry import metrics

FetchRange = Callable[[int, int, int, int], Awaitable[list[Message]]]


class RecentMessages:
    def __init__(self, fetch_range: FetchRange, *, per_group: int, total: int) -> None:
        self._fetch = fetch_range
        self._per_group = max(0, per_group)
        self._total = max(0, total)
        # group -> {seq: delivery} in insertion order (oldest first); groups in LRU order
        self._groups: OrderedDict[int, dict[int, Delivery]] = OrderedDict()
        self._size = 0
        self._loading: dict[int, asyncio.Future[None]] = {}
        self._dirty: set[int] = set()  # groups that changed while storage was being read

    @property
    def enabled(self) -> bool:
        return self._per_group > 0 and self._total > 0

    def __len__(self) -> int:
        return self._size

    # ---- filling ----

    def remember(self, d: Delivery) -> None:
        """A committed message, as delivered live or read from storage."""
        if not self.enabled or d.kind != "message":
            return
        group = self._groups.get(d.group_id)
        if group is None:
            group = self._groups[d.group_id] = {}
        else:
            self._groups.move_to_end(d.group_id)
        if d.seq not in group:
            self._size += 1
        group[d.seq] = d
        while len(group) > self._per_group:
            del group[next(iter(group))]
            self._size -= 1
        while self._size > self._total:
            self._evict_oldest_group_entry()

    def _evict_oldest_group_entry(self) -> None:
        gid, group = next(iter(self._groups.items()))
        if group:
            del group[next(iter(group))]
            self._size -= 1
        if not group:
            del self._groups[gid]

    # ---- invalidation ----

    def changed(self, group_id: int, seq: int, message_id: int) -> None:
        """Message `seq` changed: drop it, and the cached replies whose quote shows it."""
        if group_id in self._loading:
            self._dirty.add(group_id)  # what storage is returning may predate the change
        group = self._groups.get(group_id)
        if group is None:
            return
        stale = [s for s, d in group.items()
                 if s == seq or (message_id and d.event.message.reply_to_id == message_id)]
        for s in stale:
            del group[s]
        self._size -= len(stale)
        if not group:
            del self._groups[group_id]

    def clear(self) -> None:
        self._dirty.update(self._loading)
        self._groups.clear()
        self._size = 0

    # ---- reading ----

    def cached(self, group_id: int, after: int, upto: int) -> list[Delivery] | None:
        """Messages after..upto, if every one of them is in memory."""
        group = self._groups.get(group_id)
        if group is None:
            return None
        out: list[Delivery] = []
        for seq in range(after + 1, upto + 1):
            d = group.get(seq)
            if d is None:
                return None
            out.append(d)
        return out

    async def read(self, group_id: int, after: int, upto: int, limit: int) -> list[Delivery]:
        """Committed messages after `after` up to `upto` (at most `limit`), in seq order."""
        end = min(upto, after + limit)
        if end <= after:
            return []
        if not self.enabled:
            messages = await self._fetch(group_id, after, end, limit)
            return [Delivery.from_message(m) for m in messages]
        hit = self.cached(group_id, after, end)
        if hit is not None:
            metrics.REPLAY_READS.labels("memory").inc()
            return hit
        # One storage read per group at a time: concurrent resumers of the same group wait
        # for it and are then usually served from memory.
        while (loading := self._loading.get(group_id)) is not None:
            await asyncio.shield(loading)
            hit = self.cached(group_id, after, end)
            if hit is not None:
                metrics.REPLAY_READS.labels("memory").inc()
                return hit
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loading[group_id] = done
        try:
            messages = await self._fetch(group_id, after, end, limit)
        finally:
            del self._loading[group_id]
            done.set_result(None)
        metrics.REPLAY_READS.labels("storage").inc()
        out = [Delivery.from_message(m) for m in messages]
        if group_id in self._dirty:
            self._dirty.discard(group_id)
        else:
            for d in out:
                self.remember(d)
        return out
