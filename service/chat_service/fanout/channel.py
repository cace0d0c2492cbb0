"""One group's delivery state on this pod (see fanout/hub.py): its local subscribers, the next
expected sequence number, early arrivals held for a gap fill, typers, and the large-group
outbox."""

from __future__ import annotations

import asyncio

from chat_service.fanout.delivery import Delivery
from chat_service.fanout.subscriber import Subscriber
from chat_service.fanout.typing_state import Typers


class Channel:
    __slots__ = (
        "fill_target",
        "filling",
        "flush_due",
        "flush_handle",
        "group_id",
        "lag_seen",
        "last_flush",
        "lateness",
        "next_seq",
        "outbox",
        "pending",
        "rate",
        "rate_at",
        "subs",
        "typers",
    )

    def __init__(self, group_id: int) -> None:
        self.group_id = group_id
        self.subs: set[Subscriber] = set()
        self.next_seq: int | None = None  # unknown until the first subscriber reads the head
        self.pending: dict[int, Delivery] = {}
        self.filling = False
        self.fill_target = 0
        self.lag_seen: int | None = None
        self.typers = Typers(group_id)
        # Large groups: events held for the next flush (see fanout/gathering.py)
        self.outbox: list[Delivery] = []
        self.flush_handle: asyncio.Handle | None = None
        self.last_flush = 0.0
        self.flush_due = 0.0  # loop time the scheduled flush should run at
        self.lateness = 0.0  # how late this pod's loop ran recent flushes (smoothed)
        self.rate = 0.0  # events per second, decaying with a 1 s time constant
        self.rate_at = 0.0
