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
        "flush_handle",
        "group_id",
        "lag_seen",
        "last_flush",
        "next_seq",
        "outbox",
        "pending",
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
        self.flush_handle: asyncio.TimerHandle | None = None
        self.last_flush = 0.0
