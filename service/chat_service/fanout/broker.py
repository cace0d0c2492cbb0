"""How events travel between pods. `EventFanout` is the domain's EventPublisher."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from chat_service.domain.models import (
    ChatEvent,
    MemberChange,
    MembershipChanged,
    PresenceChanged,
    UserUpdated,
)
from chat_service.wire import convert

# (group_id, serialized ChatEvent) pairs, in publish order per shard.
PayloadSink = Callable[[Iterable[tuple[int, bytes]]], None]


class Broker(Protocol):
    """Carries serialized ChatEvents, keyed by group, to the pods that follow the group
    (including this one), and group-0 items to every pod.

    Twins: `broker_memory.MemoryBroker` (one process) and `broker_redis.RedisStreamsBroker`
    (every pod); tests/contract/test_broker_contract.py checks both against one body.

    Interest: a pod `follow`s a group while it has a subscriber of it, and `unfollow`s it
    after (calls are counted: as many unfollows as follows). A follower gets the group's
    items published after `since` (a `position()` taken earlier); a twin may hand over more
    (other groups, earlier items: the Redis twin reads whole shards), never fewer.

    Guarantees, once `start(sink)` has returned:
    - every (group, payload) published for a followed group, or for group 0, is handed to
      the sink unchanged, bytes and group id;
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

    async def publish(
        self, items: Sequence[tuple[int, bytes]], notices: Sequence[bytes] = ()
    ) -> None:
        """`notices`: join notices (serialized "joined" member events, already among `items`
        for their group) for a pod that does not follow the group yet; a twin whose pods see
        every group may drop them. They reach the sink as group-0 items."""
        ...

    async def position(self) -> str:
        """Now, on the transport (opaque; "" where it means nothing)."""
        ...

    def follow(self, group_id: int, since: str = "") -> None:
        """Hand over the group's items from `since` on ("": from about now)."""
        ...

    def unfollow(self, group_id: int) -> None: ...

    async def start(self, sink: PayloadSink) -> None: ...

    async def close(self) -> None: ...

    @property
    def healthy(self) -> bool: ...


class EventFanout:
    """Encodes domain events once and hands them to the broker.

    A "joined" member event is also a join notice for every pod: the pod that holds the new
    member's stream may not follow that group yet (fanout/hub.py)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def publish(self, events: Sequence[ChatEvent]) -> None:
        items: list[tuple[int, bytes]] = []
        notices: list[bytes] = []
        for e in events:
            if isinstance(e, PresenceChanged | UserUpdated):
                payload = convert.event(e).SerializeToString()
                items.extend((gid, payload) for gid in e.group_ids)
            else:
                payload = convert.event(e).SerializeToString()
                items.append((convert.group_of(e), payload))
                if isinstance(e, MembershipChanged) and e.change == MemberChange.JOINED:
                    notices.append(payload)
        if items:
            await self._broker.publish(items, notices)
