"""Local fan-out: routes events from the broker to this pod's subscribers, in order.

For each group with local subscribers a channel keeps the next expected sequence number.
Messages published after concurrent commits can arrive out of order, or not at all (a
publish that failed while Redis was down): a channel holds early arrivals briefly and fills
any gap from storage once for the whole pod, and a periodic sweep compares channels with
the groups' heads in storage so a lost event is delivered within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from chat_service.fanout.channel import Channel
from chat_service.fanout.delivery import Delivery
from chat_service.fanout.gathering import Gathering
from chat_service.fanout.recent import FetchRange, RecentMessages
from chat_service.fanout.subscriber import Subscriber
from chat_service.gen import chat_pb2 as pb
from chat_service.telemetry import metrics

log = logging.getLogger(__name__)

FetchHeads = Callable[[Sequence[int]], Awaitable[dict[int, int]]]

_PENDING_MAX = 10_000
# First byte of a serialized ChatEvent whose oneof is `member` (field 3, length-delimited).
_MEMBER_TAG = bytes([3 << 3 | 2])
_FILL_PAGE = 1000


class Hub:
    def __init__(
        self,
        fetch_range: FetchRange,
        fetch_heads: FetchHeads,
        *,
        reorder_wait: float = 0.05,
        sweep_interval: float = 2.0,
        typing_ttl: float = 6.0,
        recent_per_group: int = 500,
        recent_total: int = 50_000,
        large_group: int = 64,
        large_group_flush: float = 0.1,
        large_group_busy_rate: float = 25.0,
    ) -> None:
        self._gather = Gathering(large_group=large_group, window=large_group_flush,
                                 busy_rate=large_group_busy_rate)
        self.recent = RecentMessages(fetch_range, per_group=recent_per_group, total=recent_total)
        self._fetch_heads = fetch_heads
        self._reorder_wait = reorder_wait
        self._sweep_interval = sweep_interval
        self._typing_ttl = typing_ttl
        self._typing_task: asyncio.Task[None] | None = None
        self.channels: dict[int, Channel] = {}
        self.by_user: dict[int, set[Subscriber]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # ---- lifecycle ----

    def start(self) -> None:
        if self._sweeper is None and self._sweep_interval > 0:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="hub-sweep")
        if self._typing_task is None:
            self._typing_task = asyncio.create_task(self._typing_loop(), name="hub-typing")

    async def stop(self) -> None:
        for channel in self.channels.values():
            self._gather.cancel(channel)
        background = [t for t in (self._sweeper, self._typing_task) if t is not None]
        tasks = [*self._tasks, *background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._sweeper = None

    def close_all(self, reason: str) -> None:
        for subs in list(self.by_user.values()):
            for sub in list(subs):
                sub.close(reason)

    # ---- registration ----

    def add(self, sub: Subscriber, group_ids: Iterable[int]) -> None:
        self.by_user.setdefault(sub.user_id, set()).add(sub)
        for gid in group_ids:
            self.attach(sub, gid)

    def attach(self, sub: Subscriber, group_id: int) -> None:
        channel = self.channels.get(group_id)
        if channel is None:
            channel = self.channels[group_id] = Channel(group_id)
        channel.subs.add(sub)
        sub.groups.add(group_id)

    def delivered_upto(self, group_id: int) -> int:
        """The last seq this pod delivered live for a group (0 when unknown)."""
        channel = self.channels.get(group_id)
        if channel is None or channel.next_seq is None:
            return 0
        return channel.next_seq - 1

    def set_heads(self, heads: dict[int, int]) -> None:
        """Tell channels that never had a position where their group stands in storage."""
        for gid, head in heads.items():
            channel = self.channels.get(gid)
            if channel is not None and channel.next_seq is None:
                channel.next_seq = head + 1
                early = channel.pending
                channel.pending = {}
                for seq in sorted(early):
                    self._offer(channel, early[seq])

    def detach(self, sub: Subscriber, group_id: int) -> None:
        sub.groups.discard(group_id)
        channel = self.channels.get(group_id)
        if channel is not None:
            channel.subs.discard(sub)
            if not channel.subs:
                self._gather.cancel(channel)
                del self.channels[group_id]

    def remove(self, sub: Subscriber) -> None:
        for gid in list(sub.groups):
            self.detach(sub, gid)
        subs = self.by_user.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.by_user[sub.user_id]

    # ---- dispatch ----

    def on_payloads(self, items: Iterable[tuple[int, bytes]]) -> None:
        """Entry point for the broker: (group, serialized ChatEvent), in order per shard.

        Every pod reads every shard; events of groups with no local subscriber are skipped
        without decoding. Member events are the exception: they may concern a local user who
        is not yet subscribed to that group (their first byte is the `member` field's tag)."""
        channels = self.channels
        for group_id, payload in items:
            if group_id and group_id not in channels and payload[:1] != _MEMBER_TAG:
                continue
            try:
                delivery = Delivery.from_payload(payload, group_id)
            except Exception:  # a malformed entry must not stop the stream for everyone
                log.exception("dropping undecodable event from the broker")
                continue
            self.dispatch(delivery)

    def dispatch(self, d: Delivery) -> None:
        if d.kind == "message":
            channel = self.channels.get(d.group_id)
            if channel is not None:
                self._offer(channel, d)
                msg = d.event.message
                if msg.timestamp_ms:
                    metrics.FANOUT_LAG.set(max(0.0, time.time() - msg.timestamp_ms / 1000))
        elif d.kind == "member":
            self._on_member(d)
        elif d.kind == "presence":
            self._on_presence(d)
        elif d.kind == "typing":
            self._on_typing(d)
        else:
            if d.kind == "updated":
                changed = d.event.updated
                self.recent.changed(changed.group_id, changed.seq, changed.id)
            channel = self.channels.get(d.group_id)
            if channel is not None and d.kind == "group_deleted":  # told, then detached
                self._gather.deliver_now(channel, d)
                for sub in list(channel.subs):
                    self.detach(sub, d.group_id)
            elif channel is not None:
                self._gather.deliver(channel, d)

    def _on_member(self, d: Delivery) -> None:
        ev = d.event.member
        subject = ev.user.id
        if ev.kind == pb.MemberEvent.JOINED:
            for sub in self.by_user.get(subject, ()):
                self.attach(sub, ev.group_id)
            channel = self.channels.get(ev.group_id)
            if channel is not None:
                if channel.next_seq is None:
                    # A brand-new channel: the join's SYSTEM message is the first to expect.
                    channel.next_seq = ev.seq
                self._gather.deliver_now(channel, d)
        else:
            channel = self.channels.get(ev.group_id)
            if channel is not None:
                self._gather.deliver_now(channel, d)
            # The departed user's streams see the event, then stop receiving the group.
            for sub in list(self.by_user.get(subject, ())):
                self.detach(sub, ev.group_id)

    def _on_typing(self, d: Delivery) -> None:
        """Keep the set of typers per group (fanout/typing_state.py); subscribers get the
        current set, which also expires by itself when a client stops refreshing it."""
        channel = self.channels.get(d.group_id)
        if channel is None:
            return
        ev = d.event.typing
        event = channel.typers.update(ev.user_id, ev.is_typing, time.monotonic(),
                                      self._typing_ttl)
        if event is not None:
            self._gather.deliver(channel, event)

    def expire_typing(self) -> None:
        now = time.monotonic()
        for channel in list(self.channels.values()):
            if channel.typers:
                for event in channel.typers.expire(now):
                    self._gather.deliver(channel, event)

    async def _typing_loop(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._typing_ttl / 4))
            self.expire_typing()

    def _on_presence(self, d: Delivery) -> None:
        # Presence events are addressed by the broker to the groups the user shares.
        channel = self.channels.get(d.group_id)
        if channel is not None:
            self._gather.deliver(channel, d)

    def _offer(self, channel: Channel, d: Delivery) -> None:
        nxt = channel.next_seq
        if nxt is None:
            if len(channel.pending) < _PENDING_MAX:
                channel.pending[d.seq] = d
            return
        if d.seq < nxt:
            return  # already delivered
        if d.seq > nxt:
            channel.pending[d.seq] = d
            channel.fill_target = max(channel.fill_target, d.seq - 1)
            if len(channel.pending) > _PENDING_MAX:
                self._skip_ahead(channel)
            else:
                self._schedule_fill(channel)
            return
        remember = self.recent.remember
        self._gather.deliver(channel, d)
        remember(d)
        nxt += 1
        pending = channel.pending
        while pending and nxt in pending:
            d = pending.pop(nxt)
            self._gather.deliver(channel, d)
            remember(d)
            nxt += 1
        channel.next_seq = nxt

    def _skip_ahead(self, channel: Channel) -> None:
        """Storage cannot fill the gap fast enough: move on; each stream fills its own gap."""
        first = min(channel.pending)
        log.warning("group %s: skipping to seq %s without the fill", channel.group_id, first)
        channel.next_seq = first
        pending = channel.pending
        channel.pending = {}
        for seq in sorted(pending):
            self._offer(channel, pending[seq])

    def _schedule_fill(self, channel: Channel) -> None:
        if channel.filling:
            return
        channel.filling = True
        task = asyncio.create_task(self._fill(channel), name=f"fill-{channel.group_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, channel: Channel) -> None:
        try:
            await asyncio.sleep(self._reorder_wait)  # most reorderings resolve by themselves
            failures = 0
            while (
                self.channels.get(channel.group_id) is channel
                and channel.next_seq is not None
                and channel.fill_target >= channel.next_seq
            ):
                after = channel.next_seq - 1
                try:
                    messages = await self.recent.read(
                        channel.group_id, after, channel.fill_target, _FILL_PAGE
                    )
                except Exception:
                    failures += 1
                    log.warning("gap fill for group %s failed", channel.group_id, exc_info=True)
                    if failures >= 5:
                        if channel.pending:
                            self._skip_ahead(channel)
                        return
                    await asyncio.sleep(min(2.0, 0.1 * 2**failures))
                    continue
                if not messages:
                    if channel.pending:
                        self._skip_ahead(channel)
                    return
                metrics.GAP_FILLS.labels("hub").inc(len(messages))
                for d in messages:
                    if channel.next_seq is not None and d.seq >= channel.next_seq:
                        self._offer(channel, d)
        finally:
            channel.filling = False

    async def sweep_once(self) -> None:
        """Compare channels with storage; fill a group whose lag persists between sweeps."""
        ids = [gid for gid, ch in self.channels.items() if ch.next_seq is not None]
        if not ids:
            return
        heads = await self._fetch_heads(ids)
        for gid, head in heads.items():
            channel = self.channels.get(gid)
            if channel is None or channel.next_seq is None:
                continue
            if head >= channel.next_seq:
                if channel.lag_seen is not None and channel.lag_seen >= channel.next_seq:
                    channel.fill_target = max(channel.fill_target, channel.lag_seen)
                    self._schedule_fill(channel)
                channel.lag_seen = head
            else:
                channel.lag_seen = None

    async def resync(self) -> None:
        """Catch every channel up with storage now (after the broker lost events)."""
        # Lost events may include changes to cached messages.
        self.recent.clear()
        ids = [gid for gid, ch in self.channels.items() if ch.next_seq is not None]
        if not ids:
            return
        heads = await self._fetch_heads(ids)
        for gid, head in heads.items():
            channel = self.channels.get(gid)
            if channel is not None and channel.next_seq is not None and head >= channel.next_seq:
                channel.fill_target = max(channel.fill_target, head)
                self._schedule_fill(channel)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await self.sweep_once()
            except Exception:
                log.warning("fan-out sweep failed", exc_info=True)
