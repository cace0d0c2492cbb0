"""Which group shards this pod reads, and from which position (the Redis broker's bookkeeping).

The hub follows a group when the group gets its first subscriber on this pod and unfollows it
when the last one leaves; a shard is read while at least one followed group hashes to it.

Positions, so that nothing is lost or delivered twice when the read set changes:
- A newly followed shard is read from the `since` position its first follower gives: the
  Redis time taken *before* the subscriber read its groups from PostgreSQL (fanout/session.py),
  or the broadcast entry that announced a join. Every event committed after that read was
  added to Redis after that time, so it is read; earlier entries are not (PostgreSQL has them).
- A shard that is already read keeps its position (the reader is behind or level with the
  new follower's `since`; events of a group without a channel are skipped by the hub, as
  they always were, and messages among them are repaired from PostgreSQL by sequence).
- Several groups followed on a new shard before any read of it answered: the earliest
  `since` wins; the overlap can only repeat events committed before a follower's storage
  read: messages the hub drops by sequence, changes that carry a message's whole state.
- An unfollowed shard forgets its position at once, so a later follow starts afresh; entries
  of a dropped shard that a read in flight returns are handed over (the hub skips groups
  without a channel) but do not move any position.
"""

from __future__ import annotations

from typing import Protocol

from chat_service.fanout.stream_keys import StreamKeys, earlier


class Interest(Protocol):
    """What the hub tells the broker: which groups this pod needs (fanout/broker.py)."""

    async def position(self) -> str: ...

    def follow(self, group_id: int, since: str = "") -> None: ...

    def unfollow(self, group_id: int) -> None: ...


class Everything:
    """No broker to tell (before one is set, and in unit tests)."""

    async def position(self) -> str:
        return ""

    def follow(self, group_id: int, since: str = "") -> None:
        return None

    def unfollow(self, group_id: int) -> None:
        return None


class ShardInterest:
    def __init__(self, keys: StreamKeys) -> None:
        self._keys = keys
        self._groups: dict[int, int] = {}  # group -> follow count
        self._per_shard: dict[int, int] = {}  # shard -> followed groups on it
        self.positions: dict[str, str] = {}  # shard key -> last entry id read
        self._fresh: set[str] = set()  # followed shards no read has answered for yet

    @property
    def shard_count(self) -> int:
        return len(self._per_shard)

    def following(self, group_id: int) -> bool:
        return group_id in self._groups

    def follow(self, group_id: int, since: str) -> int | None:
        """Count one more follower of the group; return its lane when the shard is new."""
        self._groups[group_id] = self._groups.get(group_id, 0) + 1
        if self._groups[group_id] > 1:
            return None
        shard = self._keys.shard_of(group_id)
        key = self._keys.shard_key(shard)
        count = self._per_shard.get(shard, 0)
        self._per_shard[shard] = count + 1
        if count:
            if key in self._fresh:  # not read yet: start early enough for this one too
                self.positions[key] = earlier(self.positions[key], since)
            return None
        self.positions[key] = since
        self._fresh.add(key)
        return self._keys.lane_of_shard(shard)

    def unfollow(self, group_id: int) -> None:
        count = self._groups.get(group_id, 0)
        if count <= 0:
            return
        if count > 1:
            self._groups[group_id] = count - 1
            return
        del self._groups[group_id]
        shard = self._keys.shard_of(group_id)
        left = self._per_shard.get(shard, 0) - 1
        if left > 0:
            self._per_shard[shard] = left
            return
        self._per_shard.pop(shard, None)
        key = self._keys.shard_key(shard)
        self.positions.pop(key, None)
        self._fresh.discard(key)

    def lane_positions(self, lane: int) -> dict[str, str]:
        keys = self._keys
        return {key: pos for key, pos in self.positions.items()
                if keys.lanes == 1 or _lane_of_key(keys, key) == lane}

    def advance(self, key: str, entry_id: str) -> None:
        """The reader got up to `entry_id` on `key` (ignored once the shard is dropped)."""
        if key in self.positions:
            self.positions[key] = entry_id
            self._fresh.discard(key)

    def read_answered(self, keys: list[str]) -> None:
        """A read naming these keys came back: their positions now hold what was read."""
        self._fresh.difference_update(keys)


def _lane_of_key(keys: StreamKeys, key: str) -> int:
    shard = int(key.rsplit(":", 1)[1])
    return keys.lane_of_shard(shard)
