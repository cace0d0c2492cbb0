"""How events travel between pods. `EventFanout` is the domain's EventPublisher."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from chat_service.domain.models import ChatEvent, PresenceChanged, UserUpdated
from chat_service.wire import convert

# (group_id, serialized ChatEvent) pairs, in publish order per shard.
PayloadSink = Callable[[Iterable[tuple[int, bytes]]], None]


class Broker(Protocol):
    """Carries serialized ChatEvents, keyed by group, to every pod (including this one).

    Twins: `broker_memory.MemoryBroker` (one process) and `broker_redis.RedisStreamsBroker`
    (every pod); tests/contract/test_broker_contract.py checks both against one body.

    Guarantees, once `start(sink)` has returned:
    - every (group, payload) published is handed to the sink unchanged, bytes and group id;
    - one group's payloads arrive in publish order (the order of the `publish` calls, then of
      the items within one); there is no order between different groups;
    - a burst, or a consumer behind by many reads, loses nothing up to the transport's bound
      (Redis: `STREAM_MAXLEN` entries per shard, trimmed approximately).
    Not guaranteed: history. Nothing published before `start` is delivered, nothing is kept
    across a restart, and what is published while the transport is down (Redis unreachable:
    `healthy` is False, publishing is skipped or raises) is lost to the broker. PostgreSQL is
    the source of truth: the hub's sweep, and `on_recovered` in the Redis twin, deliver it
    from storage. `publish` may raise; callers log and carry on.
    """

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
            if isinstance(e, PresenceChanged | UserUpdated):
                payload = convert.event(e).SerializeToString()
                items.extend((gid, payload) for gid in e.group_ids)
            else:
                items.append((convert.group_of(e), convert.event(e).SerializeToString()))
        if items:
            await self._broker.publish(items)
