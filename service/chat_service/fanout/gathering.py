"""When a group's events go out to its streams on this pod: at once, or gathered into one write.

Each event pushed to a stream costs a wake-up and a write per subscriber, so a large group
(many subscribers on this pod) gathers its events in the channel's outbox and pushes them as
one batch. Gathering holds events only when it pays:

- the events of one broker read always go together, on the loop's next turn;
- while the group is busy (more than `busy_rate` events/s, smoothed over a second and
  remembered as at most twice that, so a burst's effect ends soon after it) it is flushed at
  most once per `window`;
- while the pod is behind (its loop runs flushes more than 2 ms late) events wait twice that
  lateness, capped at `window`.

A quiet group on an idle pod adds no latency; small groups are never delayed. Order is kept:
the outbox is only ever non-empty while a flush is scheduled, and anything delivered "now"
(membership changes) first flushes what is held.
"""

from __future__ import annotations

import asyncio
import math

from chat_service.fanout.channel import Channel
from chat_service.fanout.delivery import Delivery
from chat_service.telemetry import metrics

_HELD_BUSY = metrics.LARGE_GROUP_HOLDS.labels("busy")
_HELD_LATE = metrics.LARGE_GROUP_HOLDS.labels("late")

# A loop that runs a scheduled flush later than this is behind: large groups' events are held.
_BUSY_LATENESS = 0.002


class Gathering:
    def __init__(
        self,
        *,
        large_group: int = 64,
        window: float = 0.1,
        busy_rate: float = 25.0,
    ) -> None:
        self._large_group = large_group
        self._window = window
        self._busy_rate = busy_rate

    def _gathers(self, channel: Channel) -> bool:
        return len(channel.subs) >= self._large_group and self._window > 0

    def deliver(self, channel: Channel, d: Delivery) -> None:
        """Queue an event for the channel's subscribers (see the module's rules)."""
        if channel.flush_handle is None and not self._gathers(channel):
            for sub in channel.subs:
                sub.push(d)
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        # Capped, so that a burst (a reconnect wave's presence events) leaves the busy state
        # within ~1-2 s of ending instead of as long as its count takes to decay.
        channel.rate = min(channel.rate * math.exp(channel.rate_at - now) + 1.0,
                           2 * self._busy_rate)
        channel.rate_at = now
        channel.outbox.append(d)
        if channel.flush_handle is not None:
            return
        late = channel.lateness
        busy = channel.rate > self._busy_rate
        if busy:
            hold = self._window
        else:
            hold = min(self._window, 2 * late) if late > _BUSY_LATENESS else 0.0
        due = channel.last_flush + hold
        if due <= now:
            channel.flush_due = now
            channel.flush_handle = loop.call_soon(self._flush_on_time, channel)
        else:
            (_HELD_BUSY if busy else _HELD_LATE).inc()
            channel.flush_due = due
            channel.flush_handle = loop.call_later(due - now, self._flush_on_time, channel)

    def deliver_now(self, channel: Channel, d: Delivery) -> None:
        """Deliver before anything else happens to the channel (membership changes)."""
        self.flush(channel)
        for sub in channel.subs:
            sub.push(d)

    def _flush_on_time(self, channel: Channel) -> None:
        """The scheduled flush: also measures how late the loop ran it (rises at once, decays
        slowly, so holding stays steady while the pod is busy)."""
        late = max(0.0, asyncio.get_running_loop().time() - channel.flush_due)
        channel.lateness = late if late > channel.lateness else 0.8 * channel.lateness + 0.2 * late
        self.flush(channel)

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
