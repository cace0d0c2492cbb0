"""When a group's events go out to its streams on this pod: at once, or gathered into one write.

Each event pushed to a stream costs a wake-up and a write per subscriber, so a large group
(`large_group` or more subscribers on this pod) is flushed at most once per `window`: the first
event after a quiet window goes out at once, later ones are gathered in the channel's outbox
and go out together, so each stream gets one write per window instead of one per event. Under
a busy group this bounds the writes (the cost that grows with members x messages) and adds at
most one window of latency; quiet groups and small groups are not delayed. Order is kept: the
outbox is only ever non-empty while a flush is scheduled, and anything delivered "now"
(membership changes) first flushes what is held.

(Measured for issue 14: flushing on the next loop turn unless the group is busy or the pod runs
late gave no lower latency at 20 msg/s into 1,000 members on this 2-core machine, where the
load generator's receivers are the limit, and twice the writes: BENCHMARKS.md.)
"""

from __future__ import annotations

import asyncio

from chat_service.fanout.channel import Channel
from chat_service.fanout.delivery import Delivery


class Gathering:
    def __init__(
        self,
        *,
        large_group: int = 64,
        window: float = 0.1,
    ) -> None:
        self._large_group = large_group
        self._window = window

    def _gathers(self, channel: Channel) -> bool:
        return len(channel.subs) >= self._large_group and self._window > 0

    def deliver(self, channel: Channel, d: Delivery) -> None:
        """Queue an event for the channel's subscribers (see the module's rule)."""
        if channel.flush_handle is None and not self._gathers(channel):
            for sub in channel.subs:
                sub.push(d)
            return
        channel.outbox.append(d)
        if channel.flush_handle is None:
            loop = asyncio.get_running_loop()
            wait = channel.last_flush + self._window - loop.time()
            if wait <= 0:
                self.flush(channel)
            else:
                channel.flush_handle = loop.call_later(wait, self.flush, channel)

    def deliver_now(self, channel: Channel, d: Delivery) -> None:
        """Deliver before anything else happens to the channel (membership changes)."""
        self.flush(channel)
        for sub in channel.subs:
            sub.push(d)

    def flush(self, channel: Channel) -> None:
        if channel.flush_handle is not None:
            channel.flush_handle.cancel()
            channel.flush_handle = None
        if not channel.outbox:
            return
        events = channel.outbox
        channel.outbox = []
        channel.last_flush = asyncio.get_running_loop().time()
        for sub in channel.subs:
            sub.push_many(events)

    @staticmethod
    def cancel(channel: Channel) -> None:
        """The channel is going away: nothing scheduled may run for it."""
        if channel.flush_handle is not None:
            channel.flush_handle.cancel()
            channel.flush_handle = None
