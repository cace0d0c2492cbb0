"""How events travel between pods. `EventFanout` is the domain's EventPublisher."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from chat_service.domain.models import ChatEvent, PresenceChanged
from chat_service.wire import convert

# (group_id, serialized ChatEvent) pairs, in publish order per shard.
PayloadSink = Callable[[Iterable[tuple[int, bytes]]], None]


class Broker(Protocol):
    """Carries serialized ChatEvents, keyed by group, to every pod (including this one)."""

    async def publish(self, items: Sequence[tuple[int, bytes]]) -> None: ...

    async def start(self, sink: PayloadSink) -> None: ...

    async def close(self) -> None: ...

    @property
    def healthy(self) -> bool: ...


class EventFanout:
    """Encodes domain events once and hands them to the broker."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def publish(self, events: Sequence[ChatEvent]) -> None:
        items: list[tuple[int, bytes]] = []
        for e in events:
            if isinstance(e, PresenceChanged):
                payload = convert.event(e).SerializeToString()
                items.extend((gid, payload) for gid in e.group_ids)
            else:
                items.append((convert.group_of(e), convert.event(e).SerializeToString()))
        if items:
            await self._broker.publish(items)
